//! Helpers shared by the output-guard tests.
// Tests may unwrap/panic: a failing assertion is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

use secureinfer_guard::output::{Finding, OutputGuard, RequestContext, StreamStep};

/// Streams `chunks` and returns (emitted text, findings sorted, blocked).
pub fn stream(
    guard: &OutputGuard,
    ctx: &RequestContext,
    chunks: &[&str],
) -> (String, Vec<Finding>, bool) {
    let mut s = guard.stream(ctx.clone());
    let mut text = String::new();
    let mut findings = Vec::new();
    let mut blocked = false;
    let mut take = |step: StreamStep| {
        if blocked {
            assert!(step.text.is_empty(), "text emitted after block");
        }
        text.push_str(&step.text);
        findings.extend(step.findings);
        blocked |= step.blocked;
    };
    for c in chunks {
        take(s.push(c));
    }
    take(s.finish());
    findings.sort_by_key(|f| (f.start, f.end));
    (text, findings, blocked)
}

/// Asserts that streaming `chunks` is indistinguishable from scanning their concatenation.
pub fn assert_equivalent(guard: &OutputGuard, ctx: &RequestContext, chunks: &[&str]) {
    let full: String = chunks.concat();
    let scanned = guard.scan(&full, ctx);
    let (text, findings, blocked) = stream(guard, ctx, chunks);
    assert_eq!(blocked, scanned.blocked, "blocked differs for {chunks:?}");
    if !blocked {
        assert_eq!(text, scanned.text, "text differs for {chunks:?}");
        assert_eq!(findings, scanned.findings, "findings differ for {chunks:?}");
    }
}

/// Every split of `text` into two chunks at a char boundary.
pub fn assert_all_two_splits(guard: &OutputGuard, ctx: &RequestContext, text: &str) {
    for (i, _) in text.char_indices().skip(1) {
        assert_equivalent(guard, ctx, &[&text[..i], &text[i..]]);
    }
    assert_equivalent(guard, ctx, &[text]);
}
