//! Detection-quality metrics over labelled scores, for the eval example and CLI.

use serde::Serialize;

use crate::scorer::Thresholds;

/// Confusion counts and rates at one cut-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AtCutoff {
    pub cutoff: u8,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
    pub tpr: f64,
    pub fpr: f64,
    pub precision: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub attacks: usize,
    pub benign: usize,
    /// Flagged = WARN or BLOCK (score >= warn).
    pub flagged: AtCutoff,
    /// Flagged = BLOCK only (score >= block).
    pub blocked: AtCutoff,
    /// Best TPR over all cut-offs whose FPR is at most 1%, and that cut-off.
    pub tpr_at_1pct_fpr: f64,
    pub cutoff_at_1pct_fpr: u8,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub fn at_cutoff(rows: &[(u8, bool)], cutoff: u8) -> AtCutoff {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for &(score, attack) in rows {
        match (score >= cutoff, attack) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let tpr = ratio(tp, tp + fn_);
    let precision = ratio(tp, tp + fp);
    let f1 = if tpr + precision > 0.0 {
        2.0 * tpr * precision / (tpr + precision)
    } else {
        0.0
    };
    AtCutoff {
        cutoff,
        tp,
        fp,
        tn,
        fn_,
        tpr,
        fpr: ratio(fp, fp + tn),
        precision,
        f1,
    }
}

pub fn evaluate(rows: &[(u8, bool)], t: Thresholds) -> Metrics {
    let attacks = rows.iter().filter(|r| r.1).count();
    let mut best = (0.0f64, 101u16);
    // Cut-off 101 flags nothing; try every reachable score, lowest first so ties keep the
    // most sensitive cut-off.
    for c in 1..=100u8 {
        let m = at_cutoff(rows, c);
        if m.fpr <= 0.01 && m.tpr > best.0 {
            best = (m.tpr, u16::from(c));
        }
    }
    Metrics {
        attacks,
        benign: rows.len() - attacks,
        flagged: at_cutoff(rows, t.warn),
        blocked: at_cutoff(rows, t.block),
        tpr_at_1pct_fpr: best.0,
        cutoff_at_1pct_fpr: u8::try_from(best.1).unwrap_or(100),
    }
}
