//! The project's own labelled sets: hard benign prompts must all ALLOW; own attacks
//! (plain, multilingual and obfuscated) must be flagged.

// Helpers outside #[test] fns may fail loudly too: a broken catalogue is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::OnceLock;

use secureinfer_guard::eval::evaluate;
use secureinfer_guard::{Decision, Guard, GuardConfig, Thresholds};

fn guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| Guard::new(GuardConfig::default()).expect("catalogue compiles"))
}

fn rows(src: &str) -> Vec<(String, bool)> {
    src.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("valid JSONL");
            (
                v["text"].as_str().expect("text").to_owned(),
                v["label"].as_i64() == Some(1),
            )
        })
        .collect()
}

#[test]
fn hard_benign_prompts_all_allow() {
    let t = Thresholds::default();
    let data = rows(include_str!("data/benign_hard.jsonl"));
    assert!(data.len() >= 120, "only {} benign prompts", data.len());
    let mut bad = Vec::new();
    for (text, label) in &data {
        assert!(!label);
        let a = guard().score_text(text);
        if t.decide(a.score) != Decision::Allow {
            bad.push((text.clone(), a.score, a.reasons));
        }
    }
    assert!(bad.is_empty(), "benign prompts flagged: {bad:#?}");
}

#[test]
fn own_attacks_are_flagged() {
    let t = Thresholds::default();
    let data = rows(include_str!("data/attacks.jsonl"));
    let scored: Vec<(u8, bool)> = data
        .iter()
        .map(|(x, l)| (guard().score_text(x).score, *l))
        .collect();
    let m = evaluate(&scored, t);
    assert!(m.flagged.tpr >= 0.95, "{m:?}");
    assert!(m.blocked.tpr >= 0.75, "{m:?}");
}

#[test]
fn eval_metrics_are_consistent() {
    let rows = [
        (90u8, true),
        (60, true),
        (10, true),
        (0, false),
        (55, false),
        (0, false),
    ];
    let m = evaluate(&rows, Thresholds::default());
    assert_eq!(
        (m.flagged.tp, m.flagged.fp, m.flagged.fn_, m.flagged.tn),
        (2, 1, 1, 2)
    );
    assert_eq!((m.blocked.tp, m.blocked.fp), (1, 0));
    assert!((m.flagged.tpr - 2.0 / 3.0).abs() < 1e-9);
    assert!((m.flagged.fpr - 1.0 / 3.0).abs() < 1e-9);
    // Best cut-off with zero false positives is 56..=60, catching 2 of 3.
    assert_eq!(m.cutoff_at_1pct_fpr, 56);
    assert!((m.tpr_at_1pct_fpr - 2.0 / 3.0).abs() < 1e-9);
}
