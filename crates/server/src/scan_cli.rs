//! `secureinfer scan`: the gate's verdict for prompts from files or stdin, without a server.
//!
//! Input lines are plain text, or JSONL objects with a `text` field (and, for `--labels`,
//! `label` 0/1 and optionally `source`). Without `--labels` each line's verdict is printed as
//! one JSON line; with it, detection quality (overall and per source) is reported instead.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use secureinfer_guard::eval::{Metrics, evaluate};
use secureinfer_guard::{Guard, GuardConfig, Thresholds};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files to read (plain lines or JSONL with a `text` field); stdin when none.
    pub files: Vec<PathBuf>,
    /// Rows carry `label` (1 attack, 0 benign): report TPR, FPR, precision, F1 and TPR at ≤1% FPR.
    #[arg(long)]
    pub labels: bool,
    /// Print the quality report as JSON.
    #[arg(long)]
    pub json: bool,
    /// WARN threshold (defaults to RISK_THRESHOLD_WARN, then 50).
    #[arg(long, env = "RISK_THRESHOLD_WARN")]
    pub warn: Option<u8>,
    /// BLOCK threshold (defaults to RISK_THRESHOLD_BLOCK, then 80).
    #[arg(long, env = "RISK_THRESHOLD_BLOCK")]
    pub block: Option<u8>,
    /// Add the learned detector (true/false; defaults to CLASSIFIER_ENABLED, then true).
    #[arg(long, env = "CLASSIFIER_ENABLED")]
    pub classifier_enabled: Option<String>,
    /// Model file to use instead of the built-in one (defaults to CLASSIFIER_MODEL).
    #[arg(long, env = "CLASSIFIER_MODEL")]
    pub classifier_model: Option<String>,
    /// Multiplier for the learned detector's points, 0..=2 (defaults to CLASSIFIER_WEIGHT, then 1).
    #[arg(long, env = "CLASSIFIER_WEIGHT")]
    pub classifier_weight: Option<String>,
    /// Directory holding the MiniLM encoder files: adds the semantic tier (builds with the
    /// `semantic` feature only; defaults to SEMANTIC_MODEL_DIR).
    #[arg(long, env = "SEMANTIC_MODEL_DIR")]
    pub semantic_model_dir: Option<String>,
    /// Also score with the heuristics alone and report both (with --labels).
    #[arg(long)]
    pub compare: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub text: String,
    pub label: Option<bool>,
    pub source: String,
}

fn parse_line(line: &str, where_: &str) -> anyhow::Result<Row> {
    if line.trim_start().starts_with('{')
        && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line)
    {
        let text = obj
            .get("text")
            .and_then(Value::as_str)
            .with_context(|| format!("{where_}: no string `text` field"))?;
        let label = match obj.get("label") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => bail!("{where_}: `label` must be 0 or 1"),
            },
        };
        let source = obj
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        return Ok(Row {
            text: text.to_string(),
            label,
            source,
        });
    }
    Ok(Row {
        text: line.to_string(),
        label: None,
        source: "-".to_string(),
    })
}

pub(crate) fn read_rows(files: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut read = |reader: &mut dyn BufRead, name: &str| -> anyhow::Result<()> {
        for (i, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: read error"))?;
            if line.trim().is_empty() {
                continue;
            }
            rows.push(parse_line(&line, &format!("{name}:{}", i + 1))?);
        }
        Ok(())
    };
    if files.is_empty() {
        read(&mut std::io::stdin().lock(), "stdin")?;
    }
    for f in files {
        let file =
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        read(&mut std::io::BufReader::new(file), &f.display().to_string())?;
    }
    Ok(rows)
}

pub(crate) fn metrics_json(m: &Metrics) -> Value {
    json!({
        "attacks": m.attacks, "benign": m.benign,
        "tpr": m.flagged.tpr, "fpr": m.flagged.fpr, "precision": m.flagged.precision, "f1": m.flagged.f1,
        "tpr_block": m.blocked.tpr, "fpr_block": m.blocked.fpr,
        "tpr_at_1pct_fpr": m.tpr_at_1pct_fpr, "cutoff_at_1pct_fpr": m.cutoff_at_1pct_fpr,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn by_source(rows: &[(u8, bool, String)]) -> BTreeMap<&str, Vec<(u8, bool)>> {
    let mut m: BTreeMap<&str, Vec<(u8, bool)>> = BTreeMap::new();
    for (score, label, source) in rows {
        m.entry(source.as_str()).or_default().push((*score, *label));
    }
    m
}

/// Overall and per-source metrics as JSON.
pub(crate) fn quality_json(rows: &[(u8, bool, String)], t: Thresholds) -> Value {
    let all: Vec<(u8, bool)> = rows.iter().map(|r| (r.0, r.1)).collect();
    let sources: serde_json::Map<String, Value> = by_source(rows)
        .iter()
        .map(|(s, r)| (s.to_string(), metrics_json(&evaluate(r, t))))
        .collect();
    json!({"thresholds": t, "overall": metrics_json(&evaluate(&all, t)), "sources": sources})
}

/// Overall and per-source metrics as a table.
pub(crate) fn quality_table(
    out: &mut dyn Write,
    rows: &[(u8, bool, String)],
    t: Thresholds,
) -> std::io::Result<()> {
    writeln!(
        out,
        "thresholds: warn {} / block {} (flagged = WARN or BLOCK)",
        t.warn, t.block
    )?;
    writeln!(
        out,
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>9} {:>6} {:>8} {:>12}",
        "source", "attacks", "benign", "TPR", "FPR", "precision", "F1", "TPR@blk", "TPR@1%FPR"
    )?;
    let all: Vec<(u8, bool)> = rows.iter().map(|r| (r.0, r.1)).collect();
    report(out, "ALL", &evaluate(&all, t))?;
    for (source, r) in &by_source(rows) {
        report(out, source, &evaluate(r, t))?;
    }
    Ok(())
}

fn report(out: &mut dyn Write, name: &str, m: &Metrics) -> std::io::Result<()> {
    writeln!(
        out,
        "{name:<28} {:>7} {:>7} {:>7} {:>7} {:>9} {:>6} {:>8} {:>12}",
        m.attacks,
        m.benign,
        pct(m.flagged.tpr),
        pct(m.flagged.fpr),
        pct(m.flagged.precision),
        format!("{:.3}", m.flagged.f1),
        pct(m.blocked.tpr),
        format!("{} (≥{})", pct(m.tpr_at_1pct_fpr), m.cutoff_at_1pct_fpr),
    )
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let defaults = Thresholds::default();
    let thresholds = Thresholds {
        warn: args.warn.unwrap_or(defaults.warn),
        block: args.block.unwrap_or(defaults.block),
    };
    thresholds
        .validate()
        .map_err(|m| anyhow::anyhow!("thresholds: {m}"))?;
    let lookup = |key: &str| match key {
        "CLASSIFIER_ENABLED" => args.classifier_enabled.clone(),
        "CLASSIFIER_MODEL" => args.classifier_model.clone(),
        "CLASSIFIER_WEIGHT" => args.classifier_weight.clone(),
        "SEMANTIC_MODEL_DIR" => args.semantic_model_dir.clone(),
        _ => None,
    };
    let classifier = crate::config::classifier_settings(&lookup)?;
    let guard = crate::gate::build_guard(false, &classifier)?;
    let rows = read_rows(&args.files)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if !args.labels {
        for row in &rows {
            let a = guard.score_text(&row.text);
            let line = json!({
                "score": a.score,
                "decision": thresholds.decide_softened(a.score, a.softened_from),
                "factors": a.reason_names(),
                "reasons": a.reasons,
                "classifier": a.learned,
                "semantic": a.semantic,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let heuristic = Guard::new(GuardConfig::default())?;
    let (mut scored, mut base) = (Vec::with_capacity(rows.len()), Vec::new());
    let mut semantic_asked = 0usize;
    for (i, row) in rows.iter().enumerate() {
        let label = row
            .label
            .with_context(|| format!("row {}: --labels needs a `label` on every row", i + 1))?;
        let a = guard.score_text(&row.text);
        semantic_asked += usize::from(a.semantic.is_some());
        // Counted as the gate decides: what the patterns flagged stays flagged.
        let counted = thresholds.softened_score(a.score, a.softened_from);
        scored.push((counted, label, row.source.clone()));
        if args.compare {
            base.push((
                heuristic.score_text(&row.text).score,
                label,
                row.source.clone(),
            ));
        }
    }
    let detector = match (guard.classifier().is_some(), guard.has_second_tier()) {
        (true, true) => "heuristics + classifier + semantic",
        (true, false) => "heuristics + classifier",
        (false, true) => "heuristics + semantic",
        (false, false) => "heuristics only",
    };
    if args.json {
        let mut report = quality_json(&scored, thresholds);
        report["detector"] = json!(detector);
        if guard.has_second_tier() {
            report["semantic_asked"] = json!(semantic_asked);
        }
        if args.compare {
            report["heuristics_only"] = quality_json(&base, thresholds);
        }
        writeln!(out, "{report}")?;
    } else {
        if guard.has_second_tier() {
            writeln!(
                out,
                "detector: {detector} (the semantic tier was asked about {semantic_asked} rows)"
            )?;
        } else {
            writeln!(out, "detector: {detector}")?;
        }
        quality_table(&mut out, &scored, thresholds)?;
        if args.compare {
            writeln!(out, "\ndetector: heuristics only")?;
            quality_table(&mut out, &base, thresholds)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
