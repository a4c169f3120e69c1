//! The verdict one observation produces, and the point curves that build it.

use serde::Serialize;

use super::config::ExtractionConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionStatus {
    Normal,
    /// Worth a human look; never blocks on its own (the distillation signal stops here).
    Review,
    Suspicious,
    Blocking,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractionSignal {
    pub name: &'static str,
    /// The measured quantity (a count, a ratio or a statistic; see docs/extraction.md).
    pub value: f64,
    pub points: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractionAssessment {
    /// 0..=100, the gate's `model_extraction` factor.
    pub score: u8,
    pub signals: Vec<ExtractionSignal>,
    pub status: ExtractionStatus,
}

impl ExtractionAssessment {
    pub(crate) fn from_signals(cfg: &ExtractionConfig, signals: Vec<ExtractionSignal>) -> Self {
        let total: u32 = signals.iter().map(|s| u32::from(s.points)).sum();
        let score = total.min(100) as u8;
        let status = if score >= cfg.block_at {
            ExtractionStatus::Blocking
        } else if score >= cfg.suspicious_at {
            ExtractionStatus::Suspicious
        } else if score >= cfg.review_at {
            ExtractionStatus::Review
        } else {
            ExtractionStatus::Normal
        };
        Self {
            score,
            signals,
            status,
        }
    }

    pub fn signal(&self, name: &str) -> Option<&ExtractionSignal> {
        self.signals.iter().find(|s| s.name == name)
    }
}

/// Counting signals: silent up to half the limit, 40 points at the limit, `top` points at twice
/// the limit. Ramping (rather than a step) makes the score move before the limit is crossed.
pub(crate) fn count_points(count: u32, limit: u32, top: u8) -> u8 {
    let limit = f64::from(limit.max(2));
    let c = f64::from(count);
    let half = limit / 2.0;
    let pts = if c <= half {
        0.0
    } else if c <= limit {
        40.0 * (c - half) / half
    } else {
        40.0 + (f64::from(top) - 40.0).max(0.0) * ((c - limit) / limit).min(1.0)
    };
    pts.round().clamp(0.0, f64::from(top)) as u8
}

/// Linear ramp from 0 points at `from` to `top` points at `to`.
pub(crate) fn ramp(value: f64, from: f64, to: f64, top: u8) -> u8 {
    if !value.is_finite() || value <= from || to <= from {
        return 0;
    }
    (f64::from(top) * ((value - from) / (to - from)).min(1.0)).round() as u8
}
