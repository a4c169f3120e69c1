//! Scores labelled JSONL files and prints detection quality, overall and per `source`.
//!
//! ```text
//! cargo run --release -p secureinfer-guard --example eval -- [--warn 50] [--block 80] \
//!     [--show-fp] [--show-fn N] [--prefilter] FILE.jsonl...
//! ```
//!
//! Each line: `{"text": "...", "label": 0|1, "source": "..."}` (`source` optional).
//! `--show-fp` prints the reasons (pattern ids, not text) and a short prefix of each
//! benign row that was flagged; `--show-fn N` prints N missed attacks.

use std::collections::BTreeMap;
use std::io::BufRead;

use secureinfer_guard::eval::{Metrics, evaluate};
use secureinfer_guard::{Guard, GuardConfig, Thresholds};

struct Row {
    source: String,
    score: u8,
    attack: bool,
    text: String,
    reasons: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut t = Thresholds::default();
    let (mut show_fp, mut show_fn, mut prefilter) = (false, 0usize, false);
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--warn" => t.warn = args.next().ok_or("--warn needs a value")?.parse()?,
            "--block" => t.block = args.next().ok_or("--block needs a value")?.parse()?,
            "--show-fp" => show_fp = true,
            "--prefilter" => prefilter = true,
            "--show-fn" => show_fn = args.next().ok_or("--show-fn needs a value")?.parse()?,
            _ => files.push(a),
        }
    }
    t.validate()?;
    if files.is_empty() {
        return Err(
            "usage: eval [--warn N] [--block N] [--show-fp] [--show-fn N] FILE.jsonl...".into(),
        );
    }
    let guard = Guard::new(GuardConfig::default())?;
    let unanchored = guard.unanchored();
    if !unanchored.is_empty() {
        println!("patterns without a literal prefilter (run on every text): {unanchored:?}");
    }
    let mut rows = Vec::new();
    let start = std::time::Instant::now();
    let mut bytes = 0usize;
    for f in &files {
        let reader = std::io::BufReader::new(std::fs::File::open(f)?);
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line)?;
            let text = v["text"].as_str().unwrap_or_default().to_owned();
            let attack = v["label"].as_i64().unwrap_or(0) == 1;
            let source = v["source"].as_str().unwrap_or("-").to_owned();
            bytes += text.len();
            let a = guard.score_text(&text);
            let reasons = a
                .reasons
                .iter()
                .map(|r| format!("{}:{}", r.pattern, r.points))
                .collect();
            rows.push(Row {
                source,
                score: a.score,
                attack,
                text,
                reasons,
            });
        }
    }
    let elapsed = start.elapsed();
    if prefilter {
        // How often each pattern's regex had to run: anchors that fire on most rows cost
        // speed without adding precision.
        let mut fired: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rows {
            for id in guard.prefilter_hits(&r.text) {
                *fired.entry(id.to_owned()).or_default() += 1;
            }
        }
        let mut v: Vec<_> = fired.into_iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        println!("regex runs per pattern (top 25 of {}):", v.len());
        for (id, n) in v.iter().take(25) {
            println!("  {n:>6}  {id}");
        }
    }
    let all: Vec<(u8, bool)> = rows.iter().map(|r| (r.score, r.attack)).collect();
    println!(
        "{} rows, {:.1} MB scored in {:.2?} ({:.1} µs/row); thresholds warn={} block={}",
        rows.len(),
        bytes as f64 / 1e6,
        elapsed,
        elapsed.as_secs_f64() * 1e6 / rows.len().max(1) as f64,
        t.warn,
        t.block
    );
    print_header();
    print_row("ALL", &evaluate(&all, t));
    let mut by_source: BTreeMap<&str, Vec<(u8, bool)>> = BTreeMap::new();
    for r in &rows {
        by_source
            .entry(&r.source)
            .or_default()
            .push((r.score, r.attack));
    }
    for (src, v) in &by_source {
        print_row(src, &evaluate(v, t));
    }
    if show_fp {
        println!("\nflagged benign rows:");
        for r in rows.iter().filter(|r| !r.attack && r.score >= t.warn) {
            println!(
                "  [{}] {} {:?} :: {}",
                r.source,
                r.score,
                r.reasons,
                prefix(&r.text)
            );
        }
    }
    if show_fn > 0 {
        println!("\nmissed attacks (first {show_fn}):");
        for r in rows
            .iter()
            .filter(|r| r.attack && r.score < t.warn)
            .take(show_fn)
        {
            println!(
                "  [{}] {} {:?} :: {}",
                r.source,
                r.score,
                r.reasons,
                prefix(&r.text)
            );
        }
    }
    Ok(())
}

fn prefix(s: &str) -> String {
    s.chars().take(160).collect::<String>().replace('\n', " ")
}

fn print_header() {
    println!(
        "{:<26} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6} | {:>8} | {:>11} {:>4}",
        "source", "attack", "benign", "TPR", "FPR", "prec", "F1", "TPR@blk", "TPR@1%FPR", "cut"
    );
}

fn print_row(name: &str, m: &Metrics) {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    println!(
        "{:<26} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6} | {:>8} | {:>11} {:>4}",
        name,
        m.attacks,
        m.benign,
        pct(m.flagged.tpr),
        pct(m.flagged.fpr),
        pct(m.flagged.precision),
        format!("{:.3}", m.flagged.f1),
        pct(m.blocked.tpr),
        pct(m.tpr_at_1pct_fpr),
        m.cutoff_at_1pct_fpr
    );
}
