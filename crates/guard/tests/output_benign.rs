//! No false redaction on ordinary model output: numbers, code, versions, dates, URLs, hashes.
// Tests may unwrap/panic: a failing assertion is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "output_common.rs"]
mod output_common;

use secureinfer_guard::output::{Action, Category, OutputGuard, OutputPolicy, RequestContext};

const CORPUS: &str = include_str!("data/output_benign.txt");

fn lines() -> impl Iterator<Item = &'static str> {
    CORPUS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[test]
fn corpus_is_big_enough() {
    assert!(lines().count() >= 60);
}

#[test]
fn benign_corpus_is_untouched() {
    let guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let ctx = RequestContext::default();
    let mut failures = Vec::new();
    for line in lines() {
        let r = guard.scan(line, &ctx);
        let bad: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.category != Category::IpAddress || f.action != Action::Log)
            .map(|f| (f.category, &line[f.start..f.end]))
            .collect();
        if !bad.is_empty() || r.text != line {
            failures.push(format!("{line:?} -> {bad:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn benign_corpus_streams_identically() {
    let guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let ctx = RequestContext::default();
    let whole = lines().collect::<Vec<_>>().join("\n");
    let chunks: Vec<&str> = whole
        .char_indices()
        .step_by(5)
        .map(|(i, _)| i)
        .chain([whole.len()])
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| &whole[w[0]..w[1]])
        .collect();
    output_common::assert_equivalent(&guard, &ctx, &chunks);
    assert_eq!(guard.scan(&whole, &ctx).text, whole);
}

/// Every 2-chunk split of every benign line (plus near-miss variants) under a policy that
/// redacts everything: look-ahead past a match must never see a truncated buffer as "clear".
#[test]
fn benign_lines_split_everywhere() {
    use secureinfer_guard::output::CategoryGroup;
    let mut p = OutputPolicy::default();
    for g in [
        CategoryGroup::Secret,
        CategoryGroup::Pii,
        CategoryGroup::Network,
    ] {
        p.set_group(g, Action::Redact);
    }
    let guard = OutputGuard::new(p).unwrap();
    let ctx = RequestContext::default();
    let near_misses = [
        "SSN 123-45-6789.5 and 123-45-6789/2",
        "call 212-555-0147,9 or 212-555-0147:1",
        "card 4111 1111 1111 1111.5 or 4111111111111111,7",
        "ip 10.0.0.12.7 and 10.0.0.1",
        "mail a.b@example.com-x and a@b.co",
    ];
    for line in lines().chain(near_misses) {
        output_common::assert_all_two_splits(&guard, &ctx, line);
    }
}
