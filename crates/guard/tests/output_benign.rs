//! No false redaction on ordinary model output: numbers, code, versions, dates, URLs, hashes.

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
