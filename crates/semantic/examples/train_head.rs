//! Trains the semantic head without the gateway binary (same library calls as
//! `secureinfer train-semantic`), and prints quality with and without tier 2.
//!
//! cargo run -p secureinfer-semantic --features semantic --example train_head -- \
//!   MODEL_DIR OUT TRAIN.jsonl CALIBRATE.jsonl [EVAL.jsonl ...]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use secureinfer_guard::classifier::synth::{self, Grammar};
use secureinfer_guard::eval::evaluate;
use secureinfer_guard::{Classifier, Guard, GuardConfig, Thresholds};
use secureinfer_semantic::train::{HeadConfig, train_head};
use secureinfer_semantic::{Encoder, SemanticDetector};
use serde_json::json;
use sha2::{Digest, Sha256};

struct Row {
    text: String,
    label: bool,
}

fn read_rows(path: &str) -> (Vec<Row>, String) {
    let bytes = std::fs::read(path).unwrap();
    let rows = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            Row {
                text: v["text"].as_str().unwrap().to_string(),
                label: v["label"].as_i64().unwrap() == 1,
            }
        })
        .collect();
    (rows, hex::encode(Sha256::digest(&bytes)))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, out, train_path, cal_path) = (&args[1], &args[2], &args[3], &args[4]);
    let evals = &args[5..];
    // Budget knobs: the encoder costs ~20 MFLOP per token, so on a small shared machine the
    // head is trained on a deterministic subsample, each row read through its first window
    // cut to `cap` tokens. Scoring still reads every window.
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (seed, synth_n, synth_cal) = (7u64, env("SYNTH", 600), env("SYNTH_CAL", 200));
    let (every, cal_every, cap) = (env("EVERY", 5), env("CAL_EVERY", 3), env("CAP", 96));
    let read = |n: &str| std::fs::read(std::path::Path::new(dir).join(n)).unwrap();
    let encoder = Encoder::from_bytes(
        &read("config.json"),
        &read("tokenizer.json"),
        read("model.safetensors"),
    )
    .unwrap();
    let g = Grammar::builtin().unwrap();
    let synth_rows = |n, s| {
        synth::generate(&g, n, s)
            .into_iter()
            .map(|r| Row {
                text: r.text,
                label: r.label,
            })
            .collect::<Vec<_>>()
    };
    let (train, train_sha) = read_rows(train_path);
    let train_file_rows = train.len();
    let mut train: Vec<Row> = train.into_iter().step_by(every).collect();
    train.extend(synth_rows(synth_n, seed));
    let (mut cal, cal_sha) = read_rows(cal_path);
    let cal_file_rows = cal.len();
    cal.extend(synth_rows(synth_cal, seed.wrapping_add(1_000_003)));
    let first = |text: &str| -> Vec<f32> {
        let mut w = encoder.windows(text).unwrap().swap_remove(0);
        if w.len() > cap {
            let sep = w[w.len() - 1];
            w.truncate(cap - 1);
            w.push(sep);
        }
        encoder.embed_window(&w).unwrap()
    };

    let t0 = std::time::Instant::now();
    let examples: Vec<(Vec<f32>, bool)> = train.iter().map(|r| (first(&r.text), r.label)).collect();
    eprintln!(
        "embedded {} training rows in {:.1?}",
        examples.len(),
        t0.elapsed()
    );
    let benign_cal: Vec<Vec<Vec<f32>>> = cal
        .iter()
        .filter(|r| !r.label)
        .step_by(cal_every)
        .map(|r| vec![first(&r.text)])
        .collect();
    eprintln!(
        "embedded {} windows + {} calibration rows in {:.1?}",
        examples.len(),
        benign_cal.len(),
        t0.elapsed()
    );
    let cfg = HeadConfig {
        seed,
        ..HeadConfig::default()
    };
    let provenance = json!({
        "command": args.join(" "),
        "equivalent": "secureinfer train-semantic (without its subsampling)",
        "seed": seed,
        "subsample": {"train_every": every, "calibration_every": cal_every, "tokens_per_row": cap},
        "config": {"epochs": cfg.epochs, "learning_rate": cfg.learning_rate, "l2": cfg.l2},
        "train": {"file": train_path, "sha256": train_sha, "rows": train_file_rows},
        "train_windows": examples.len(),
        "synth": {"rows": synth_n, "calibration_rows": synth_cal,
                  "grammar_sha256": hex::encode(Sha256::digest(synth::GRAMMAR.as_bytes()))},
        "calibrate": {"file": cal_path, "sha256": cal_sha, "rows": cal_file_rows},
    });
    let head = train_head(
        &examples,
        &benign_cal,
        encoder.id().clone(),
        &cfg,
        provenance,
    );
    std::fs::write(out, head.to_bytes()).unwrap();
    std::fs::write(
        format!("{out}.json"),
        serde_json::to_string_pretty(&head.manifest).unwrap() + "\n",
    )
    .unwrap();
    println!(
        "head {out}: calibration {}",
        serde_json::to_string(&head.manifest.calibration).unwrap()
    );

    let base = Guard::new(GuardConfig::default())
        .unwrap()
        .with_classifier(Arc::new(Classifier::builtin().unwrap()), 1.0);
    let with2 = base
        .clone()
        .with_second_tier(Arc::new(SemanticDetector::new(encoder, head).unwrap()));
    let th = Thresholds::default();
    let mut sets = vec![(format!("{cal_path} (+{synth_cal} synthetic)"), cal)];
    for e in evals {
        sets.push((e.clone(), read_rows(e).0));
    }
    for (name, rows) in &sets {
        let t1 = std::time::Instant::now();
        let mut asked = 0;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in rows {
            let x = with2.score_text(&r.text);
            asked += usize::from(x.semantic.is_some());
            a.push((x.score, r.label));
            b.push((base.score_text(&r.text).score, r.label));
        }
        let (ma, mb) = (evaluate(&a, th), evaluate(&b, th));
        println!(
            "{name}: {} rows, tier 2 asked for {asked} ({:.1?})",
            rows.len(),
            t1.elapsed()
        );
        for (label, m) in [("without tier 2", mb), ("with tier 2", ma)] {
            println!(
                "  {label:15} TPR {:.1}%  FPR {:.1}%  TPR@blk {:.1}%  TPR@1%FPR {:.1}%",
                100.0 * m.flagged.tpr,
                100.0 * m.flagged.fpr,
                100.0 * m.blocked.tpr,
                100.0 * m.tpr_at_1pct_fpr
            );
        }
    }
}
