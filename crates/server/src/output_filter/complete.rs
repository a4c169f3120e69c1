//! Non-streamed answers: scan every choice's content and tool-call arguments, redact in place,
//! and drop log-probability entries of redacted text (their `token` fields would otherwise
//! hand the secret back).

use secureinfer_guard::output::{Action, Finding, OutputGuard, RequestContext};
use serde_json::Value;

use super::record::{Field, FindingLog};

/// Byte spans `[start, end)` that were cut out of a text.
pub(super) fn cuts(findings: &[Finding]) -> Vec<(usize, usize)> {
    findings
        .iter()
        .filter(|f| matches!(f.action, Action::Redact | Action::Block))
        .map(|f| (f.start, f.end))
        .collect()
}

pub(super) fn overlaps(cuts: &[(usize, usize)], start: usize, end: usize) -> bool {
    cuts.iter()
        .any(|&(s, e)| start < e && (end > s || (start == end && start >= s)))
}

pub(super) fn token_len(entry: &Value) -> Option<usize> {
    entry.get("token").and_then(Value::as_str).map(str::len)
}

/// Spans of logprob entries laid end to end from `at`, or `None` when their tokens do not
/// add up to `text_len` (then no entry can be placed, and all are treated as covering the text).
pub(super) fn entry_spans(
    entries: &[Value],
    at: usize,
    text_len: usize,
) -> Option<Vec<(usize, usize)>> {
    let mut spans = Vec::with_capacity(entries.len());
    let mut pos = at;
    for e in entries {
        let len = token_len(e)?;
        spans.push((pos, pos + len));
        pos += len;
    }
    (pos == at + text_len).then_some(spans)
}

/// Scans one string in place; returns the findings (the text is untouched when blocked).
fn scan_in_place(
    guard: &OutputGuard,
    ctx: &RequestContext,
    text: &mut String,
) -> (Vec<Finding>, bool) {
    let r = guard.scan(text, ctx);
    let findings = r.findings;
    let blocked = r.blocked;
    if let std::borrow::Cow::Owned(new) = r.text {
        *text = new;
    }
    (findings, blocked)
}

/// Filters a `chat.completion` body. Stops at the first block (`log.blocked`).
pub fn filter_completion(
    guard: &OutputGuard,
    ctx: &RequestContext,
    body: &mut Value,
    log: &mut FindingLog,
) {
    let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for (pos, choice) in choices.iter_mut().enumerate() {
        let index = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        let mut content_cuts = None;
        if let Some(Value::String(text)) = choice.pointer_mut("/message/content") {
            let original_len = text.len();
            let (findings, blocked) = scan_in_place(guard, ctx, text);
            log.add(index, Field::Content, &findings);
            if blocked {
                return;
            }
            let c = cuts(&findings);
            if !c.is_empty() {
                content_cuts = Some((c, original_len));
            }
        }
        if let Some((cuts, len)) = content_cuts {
            drop_logprobs(choice, &cuts, len);
        }
        let calls = choice
            .pointer_mut("/message/tool_calls")
            .and_then(Value::as_array_mut);
        for (k, call) in calls.into_iter().flatten().enumerate() {
            let k = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(k as u64);
            if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                let (findings, blocked) = scan_in_place(guard, ctx, args);
                log.add(index, Field::ToolArguments(k), &findings);
                if blocked {
                    return;
                }
            }
        }
    }
}

/// Removes the log-probability entries of redacted text; when the tokens cannot be aligned
/// with the text, removes them all.
fn drop_logprobs(choice: &mut Value, cuts: &[(usize, usize)], text_len: usize) {
    let Some(entries) = choice
        .pointer_mut("/logprobs/content")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    match entry_spans(entries, 0, text_len) {
        Some(spans) => {
            let mut keep = spans.iter().map(|&(s, e)| !overlaps(cuts, s, e));
            entries.retain(|_| keep.next().unwrap_or(false));
        }
        None => entries.clear(),
    }
}
