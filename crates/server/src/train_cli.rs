//! `secureinfer train`: trains the learned detector from labelled JSONL files plus rows
//! composed by the synthetic generator, calibrates it on held-out rows, and writes the
//! model file with a manifest (inputs and their SHA-256, the command, the measured quality).
//!
//! Deterministic: the same inputs, seed and options give a byte-identical model.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use secureinfer_guard::classifier::synth::{self, Grammar};
use secureinfer_guard::classifier::train::{
    CalibrationTargets, Example, Featurizer, TrainConfig, average, finish, train,
};
use secureinfer_guard::eval::evaluate;
use secureinfer_guard::{Guard, GuardConfig, Thresholds};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::scan_cli::{Row, metrics_json, quality_json, quality_table, read_rows};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Labelled JSONL training files (`text`, `label` 0/1, optional `source`); repeatable.
    #[arg(long = "data", required = true)]
    pub data: Vec<PathBuf>,
    /// Labelled JSONL rows held out from training: their benign rows choose the calibration
    /// and all of them are measured (e.g. dev.jsonl). Repeatable.
    #[arg(long = "calibrate")]
    pub calibrate: Vec<PathBuf>,
    /// Labelled JSONL rows only measured and recorded in the manifest (own out-of-family sets).
    #[arg(long = "eval")]
    pub eval: Vec<PathBuf>,
    /// Synthetic rows to compose for training (half attacks, half hard negatives).
    #[arg(long, default_value_t = 120000)]
    pub synth: usize,
    /// Synthetic rows, from another seed, added to the calibration set.
    #[arg(long, default_value_t = 4000)]
    pub synth_calibrate: usize,
    /// Seed for the generator and the training shuffle.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Models to train and average, each on its own draw of synthetic rows and its own
    /// shuffle (seeds `seed`, `seed+1`, ...). Averaging cuts the noise between retrains; the
    /// averaged model is as large and as fast as one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub bag: u32,
    /// log2 of the hashed-feature table (10..=22).
    #[arg(long, default_value_t = 18)]
    pub bits: u32,
    #[arg(long, default_value_t = 6)]
    pub epochs: u32,
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// L2 penalty per update (larger: smoother weights, less memorisation).
    #[arg(long, default_value_t = 2e-4)]
    pub l2: f32,
    /// Features seen in fewer training rows than this stay at zero.
    #[arg(long, default_value_t = 3)]
    pub min_df: u32,
    /// Print up to N flagged benign and N missed attack rows of the held-out and eval sets
    /// (a prefix of each), to see what the model gets wrong.
    #[arg(long, default_value_t = 0)]
    pub show_errors: usize,
    /// Where to write the model; the manifest is also written beside it as `<out>.json`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Per row: combined score, is-attack, source.
type Scored = Vec<(u8, bool, String)>;

pub(crate) struct Input {
    pub(crate) name: String,
    pub(crate) sha256: String,
    pub(crate) rows: Vec<Row>,
}

pub(crate) fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let rows = read_rows(std::slice::from_ref(p))?;
            if let Some((i, _)) = rows.iter().enumerate().find(|(_, r)| r.label.is_none()) {
                bail!("{}: row {} has no `label`", p.display(), i + 1);
            }
            Ok(Input {
                name: p.display().to_string(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                rows,
            })
        })
        .collect()
}

pub(crate) fn describe(inputs: &[Input]) -> Value {
    inputs
        .iter()
        .map(|i| {
            json!({
                "file": i.name, "sha256": i.sha256, "rows": i.rows.len(),
                "attacks": i.rows.iter().filter(|r| r.label == Some(true)).count(),
            })
        })
        .collect()
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let start = std::time::Instant::now();
    let grammar = Grammar::builtin().context("synthetic grammar")?;
    let featurizer = Featurizer::new(args.bits).map_err(|e| anyhow::anyhow!("{e}"))?;
    let train_inputs = load(&args.data)?;
    let cal_inputs = load(&args.calibrate)?;
    let eval_inputs = load(&args.eval)?;

    let train_rows: Vec<Row> = train_inputs.iter().flat_map(|i| i.rows.clone()).collect();
    let mut cal_rows: Vec<Row> = cal_inputs.iter().flat_map(|i| i.rows.clone()).collect();
    cal_rows.extend(synth_rows(
        &grammar,
        args.synth_calibrate,
        args.seed.wrapping_add(1_000_003),
    ));
    // The generator's rows alternate attack, benign, attack, ...
    let has_attack = args.synth >= 1 || train_rows.iter().any(|r| r.label == Some(true));
    let has_benign = args.synth >= 2 || train_rows.iter().any(|r| r.label == Some(false));
    if !has_attack || !has_benign {
        bail!("training data needs both attack (label 1) and benign (label 0) rows");
    }

    let featurize = |rows: &[Row]| -> Vec<Example> {
        rows.iter()
            .map(|r| featurizer.example(&r.text, r.label == Some(true), 1.0))
            .collect()
    };
    let cal_benign: Vec<Example> = featurize(&cal_rows)
        .into_iter()
        .filter(|e| !e.label)
        .collect();
    let cfg = TrainConfig {
        seed: args.seed,
        bits: args.bits,
        epochs: args.epochs,
        rounds: args.rounds,
        l2: args.l2,
        min_df: args.min_df,
        ..TrainConfig::default()
    };
    // One member at a time, so only one draw's features are in memory.
    let members: Vec<_> = (0..u64::from(args.bag))
        .map(|k| {
            let seed = args.seed.wrapping_add(k);
            let mut rows = train_rows.clone();
            rows.extend(synth_rows(&grammar, args.synth, seed));
            train(&featurize(&rows), &TrainConfig { seed, ..cfg })
        })
        .collect();
    let mean = average(&members).context("no model was trained")?;
    drop(members);
    let trained = finish(&mean, &cal_benign, CalibrationTargets::default());
    let clf = trained
        .classifier()
        .map_err(|e| anyhow::anyhow!("the trained model does not load: {e}"))?;

    let heuristic = Guard::new(GuardConfig::default()).context("pattern catalogue")?;
    let combined = heuristic.clone().with_classifier(Arc::new(clf), 1.0);
    let t = Thresholds::default();
    let score = |rows: &[Row]| -> (Scored, Value) {
        let scored: Vec<(u8, bool, String)> = rows
            .iter()
            .map(|r| {
                let label = r.label == Some(true);
                (combined.score_text(&r.text).score, label, r.source.clone())
            })
            .collect();
        let base: Vec<(u8, bool)> = rows
            .iter()
            .map(|r| (heuristic.score_text(&r.text).score, r.label == Some(true)))
            .collect();
        let q = json!({"combined": quality_json(&scored, t), "heuristics_only": metrics_json(&evaluate(&base, t))});
        (scored, q)
    };
    let (cal_scored, cal_quality) = score(&cal_rows);
    let evals: Vec<(String, Scored, Value)> = eval_inputs
        .iter()
        .map(|i| {
            let (s, q) = score(&i.rows);
            (i.name.clone(), s, q)
        })
        .collect();
    let eval_quality: BTreeMap<&str, &Value> =
        evals.iter().map(|(n, _, q)| (n.as_str(), q)).collect();
    let calibration = serde_json::to_value(trained.calibration)?;

    let argv: Vec<String> = std::env::args().collect();
    let provenance = json!({
        "command": argv.join(" "),
        "seed": args.seed,
        "bag": args.bag,
        "config": {"bits": cfg.bits, "epochs": cfg.epochs, "rounds": cfg.rounds, "l2": cfg.l2, "rate": cfg.rate, "min_df": cfg.min_df},
        "train": describe(&train_inputs),
        "synth": {"rows": args.synth, "calibration_rows": args.synth_calibrate,
                  "grammar_sha256": hex::encode(Sha256::digest(synth::GRAMMAR.as_bytes()))},
        "calibrate": describe(&cal_inputs),
        "eval": describe(&eval_inputs),
        "catalogue_sha256": hex::encode(Sha256::digest(secureinfer_guard::scorer::CATALOGUE.as_bytes())),
        "thresholds": t,
        "quality": {"calibration": cal_quality, "eval": eval_quality},
    });
    let bytes = trained.to_bytes(provenance.clone());
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut manifest_path = args.out.clone().into_os_string();
    manifest_path.push(".json");
    let manifest = json!({"calibration": calibration, "provenance": provenance});
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)? + "\n",
    )
    .with_context(|| "cannot write the manifest".to_string())?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "trained on {} rows ({} synthetic) in {:.1?}; model {} ({} KB, sha256 {})",
        train_rows.len() + args.synth,
        args.synth,
        start.elapsed(),
        args.out.display(),
        bytes.len() / 1024,
        hex::encode(Sha256::digest(&bytes)),
    )?;
    writeln!(out, "calibration (logit): {calibration}")?;
    writeln!(out, "\nheld-out calibration rows, heuristics + classifier:")?;
    quality_table(&mut out, &cal_scored, t)?;
    show_errors(&mut out, &cal_rows, &cal_scored, t, args.show_errors)?;
    for ((name, scored, _), input) in evals.iter().zip(&eval_inputs) {
        writeln!(out, "\n{name} (measured only):")?;
        quality_table(&mut out, scored, t)?;
        show_errors(&mut out, &input.rows, scored, t, args.show_errors)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn synth_rows(g: &Grammar, n: usize, seed: u64) -> Vec<Row> {
    synth::generate(g, n, seed)
        .into_iter()
        .map(|r| Row {
            text: r.text,
            label: Some(r.label),
            source: r.source,
        })
        .collect()
}

fn show_errors(
    out: &mut dyn Write,
    rows: &[Row],
    scored: &[(u8, bool, String)],
    t: Thresholds,
    n: usize,
) -> std::io::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let prefix = |s: &str| s.chars().take(150).collect::<String>().replace('\n', " ");
    let fp = rows
        .iter()
        .zip(scored)
        .filter(|(_, s)| !s.1 && s.0 >= t.warn);
    for (r, s) in fp.take(n) {
        writeln!(out, "  FP {:>3} [{}] {}", s.0, r.source, prefix(&r.text))?;
    }
    let missed = rows.iter().zip(scored).filter(|(_, s)| s.1 && s.0 < t.warn);
    for (r, s) in missed.take(n) {
        writeln!(out, "  FN {:>3} [{}] {}", s.0, r.source, prefix(&r.text))?;
    }
    Ok(())
}
