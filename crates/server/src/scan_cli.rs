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
}

struct Row {
    text: String,
    label: Option<bool>,
    source: String,
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

fn read_rows(files: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
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

fn metrics_json(m: &Metrics) -> Value {
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
    let guard =
        Guard::new(GuardConfig::default()).context("the pattern catalogue failed to compile")?;
    let rows = read_rows(&args.files)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if !args.labels {
        for row in &rows {
            let a = guard.score_text(&row.text);
            let line = json!({
                "score": a.score,
                "decision": thresholds.decide(a.score),
                "factors": a.reason_names(),
                "reasons": a.reasons,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut overall = Vec::with_capacity(rows.len());
    let mut by_source: BTreeMap<&str, Vec<(u8, bool)>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let label = row
            .label
            .with_context(|| format!("row {}: --labels needs a `label` on every row", i + 1))?;
        let score = guard.score_text(&row.text).score;
        overall.push((score, label));
        by_source
            .entry(row.source.as_str())
            .or_default()
            .push((score, label));
    }
    let total = evaluate(&overall, thresholds);
    if args.json {
        let sources: serde_json::Map<String, Value> = by_source
            .iter()
            .map(|(s, r)| (s.to_string(), metrics_json(&evaluate(r, thresholds))))
            .collect();
        writeln!(
            out,
            "{}",
            json!({"thresholds": thresholds, "overall": metrics_json(&total), "sources": sources})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "thresholds: warn {} / block {} (flagged = WARN or BLOCK)",
        thresholds.warn, thresholds.block
    )?;
    writeln!(
        out,
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>9} {:>6} {:>8} {:>12}",
        "source", "attacks", "benign", "TPR", "FPR", "precision", "F1", "TPR@blk", "TPR@1%FPR"
    )?;
    report(&mut out, "ALL", &total)?;
    for (source, rows) in &by_source {
        report(&mut out, source, &evaluate(rows, thresholds))?;
    }
    Ok(ExitCode::SUCCESS)
}
