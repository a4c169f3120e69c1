//! `secureinfer train-semantic` (builds with the `semantic` feature): embeds labelled rows
//! with the MiniLM encoder, trains the logistic head over the embeddings, calibrates it on
//! held-out benign rows, and writes the head file with its manifest (inputs and hashes,
//! command, encoder weights' hash, measured quality with and without the semantic tier).
//!
//! Deterministic: the same encoder, inputs, seed and options give a byte-identical head.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use secureinfer_guard::classifier::synth::Grammar;
use secureinfer_guard::{Guard, GuardConfig, SecondTier, Thresholds};
use secureinfer_semantic::train::{HeadConfig, train_head};
use secureinfer_semantic::{Encoder, SemanticDetector};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::scan_cli::{Row, quality_json, quality_table};
use crate::train_cli::{describe, load, synth_rows};

#[derive(Args, Debug)]
pub struct TrainSemanticArgs {
    /// Directory with the encoder files (scripts/fetch-minilm.sh).
    #[arg(long, env = "SEMANTIC_MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Labelled JSONL training files; repeatable.
    #[arg(long = "data", required = true)]
    pub data: Vec<PathBuf>,
    /// Labelled JSONL rows held out from training: their benign rows choose the calibration;
    /// all are measured. Repeatable.
    #[arg(long = "calibrate")]
    pub calibrate: Vec<PathBuf>,
    /// Labelled JSONL rows only measured and recorded in the manifest.
    #[arg(long = "eval")]
    pub eval: Vec<PathBuf>,
    /// Synthetic rows composed for training (half attacks, half hard negatives).
    #[arg(long, default_value_t = 4000)]
    pub synth: usize,
    /// Synthetic rows, from another seed, added to the calibration set.
    #[arg(long, default_value_t = 1000)]
    pub synth_calibrate: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 40)]
    pub epochs: u32,
    /// Where to write the head; the manifest is also written beside it as `<out>.json`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Window embeddings of every row, in order.
fn embed_rows(enc: &Encoder, rows: &[Row]) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
    rows.iter()
        .map(|r| enc.embed(&r.text).map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

pub fn run(args: TrainSemanticArgs) -> anyhow::Result<ExitCode> {
    let start = std::time::Instant::now();
    let encoder = crate::semantic_model::load_encoder(&args.model_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.model_dir.display()))?;
    let grammar = Grammar::builtin().context("synthetic grammar")?;
    let train_inputs = load(&args.data)?;
    let cal_inputs = load(&args.calibrate)?;
    let eval_inputs = load(&args.eval)?;
    let mut train_rows: Vec<Row> = train_inputs.iter().flat_map(|i| i.rows.clone()).collect();
    train_rows.extend(synth_rows(&grammar, args.synth, args.seed));
    let mut cal_rows: Vec<Row> = cal_inputs.iter().flat_map(|i| i.rows.clone()).collect();
    cal_rows.extend(synth_rows(
        &grammar,
        args.synth_calibrate,
        args.seed.wrapping_add(1_000_003),
    ));
    if train_rows.iter().all(|r| r.label != Some(true))
        || train_rows.iter().all(|r| r.label != Some(false))
    {
        bail!("training data needs both attack (label 1) and benign (label 0) rows");
    }

    let train_emb = embed_rows(&encoder, &train_rows)?;
    let examples: Vec<(Vec<f32>, bool)> = train_emb
        .into_iter()
        .zip(&train_rows)
        .flat_map(|(windows, r)| {
            let y = r.label == Some(true);
            windows.into_iter().map(move |e| (e, y))
        })
        .collect();
    let benign_cal: Vec<Row> = cal_rows
        .iter()
        .filter(|r| r.label == Some(false))
        .cloned()
        .collect();
    let cal_emb = embed_rows(&encoder, &benign_cal)?;
    let embed_time = start.elapsed();

    let cfg = HeadConfig {
        seed: args.seed,
        epochs: args.epochs,
        ..HeadConfig::default()
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut provenance = json!({
        "command": argv.join(" "),
        "seed": args.seed,
        "config": {"epochs": cfg.epochs, "learning_rate": cfg.learning_rate, "l2": cfg.l2},
        "train": describe(&train_inputs),
        "train_windows": examples.len(),
        "synth": {"rows": args.synth, "calibration_rows": args.synth_calibrate,
                  "grammar_sha256": hex::encode(Sha256::digest(secureinfer_guard::classifier::synth::GRAMMAR.as_bytes()))},
        "calibrate": describe(&cal_inputs),
        "eval": describe(&eval_inputs),
    });
    let head = train_head(
        &examples,
        &cal_emb,
        encoder.id().clone(),
        &cfg,
        provenance.clone(),
    );

    // Quality with and without the semantic tier, at the shipped thresholds.
    let t = Thresholds::default();
    let base = Guard::new(GuardConfig::default())
        .context("pattern catalogue")?
        .with_classifier(
            Arc::new(secureinfer_guard::Classifier::builtin().context("built-in classifier")?),
            1.0,
        );
    let detector = Arc::new(SemanticDetector::new(encoder, head.clone())?);
    let with_tier2 = base
        .clone()
        .with_second_tier(detector.clone() as Arc<dyn SecondTier>);
    let measure = |rows: &[Row]| -> (Vec<(u8, bool, String)>, Value, usize) {
        let mut asked = 0usize;
        let scored: Vec<(u8, bool, String)> = rows
            .iter()
            .map(|r| {
                let a = with_tier2.score_text(&r.text);
                asked += usize::from(a.semantic.is_some());
                (a.score, r.label == Some(true), r.source.clone())
            })
            .collect();
        let before: Vec<(u8, bool, String)> = rows
            .iter()
            .map(|r| {
                (
                    base.score_text(&r.text).score,
                    r.label == Some(true),
                    r.source.clone(),
                )
            })
            .collect();
        let q = json!({"with_semantic": quality_json(&scored, t),
                       "without_semantic": quality_json(&before, t), "semantic_asked": asked});
        (scored, q, asked)
    };
    let (cal_scored, cal_q, cal_asked) = measure(&cal_rows);
    let mut evals = Vec::new();
    for i in &eval_inputs {
        let (s, q, asked) = measure(&i.rows);
        evals.push((i.name.clone(), s, q, asked));
    }
    let eval_q: serde_json::Map<String, Value> = evals
        .iter()
        .map(|(n, _, q, _)| (n.clone(), q.clone()))
        .collect();
    if let Some(p) = provenance.as_object_mut() {
        p.insert(
            "quality".into(),
            json!({"calibration": cal_q, "eval": eval_q}),
        );
    }
    let mut head = head;
    head.manifest.provenance = provenance;
    let bytes = head.to_bytes();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut manifest_path = args.out.clone().into_os_string();
    manifest_path.push(".json");
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&head.manifest)? + "\n",
    )
    .context("cannot write the manifest")?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "trained on {} windows of {} rows ({} synthetic); embedding {:.1?}, total {:.1?}; head {} (sha256 {})",
        examples.len(),
        train_rows.len(),
        args.synth,
        embed_time,
        start.elapsed(),
        args.out.display(),
        hex::encode(Sha256::digest(&bytes)),
    )?;
    writeln!(
        out,
        "calibration (logit): {}",
        serde_json::to_string(&head.manifest.calibration)?
    )?;
    writeln!(
        out,
        "\nheld-out calibration rows, heuristics + classifier + semantic ({cal_asked} rows asked tier 2):"
    )?;
    quality_table(&mut out, &cal_scored, t)?;
    for (name, scored, _, asked) in &evals {
        writeln!(out, "\n{name} (measured only; {asked} rows asked tier 2):")?;
        quality_table(&mut out, scored, t)?;
    }
    Ok(ExitCode::SUCCESS)
}
