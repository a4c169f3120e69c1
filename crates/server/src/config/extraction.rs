//! Settings of the model-extraction defence: the detector over each tenant's query stream and
//! the gateway-wide probability policy (per-tenant overrides live in the tenant's policy).

use std::time::Duration;

use secureinfer_guard::extraction::{ExtractionConfig, LogprobPolicy};

use super::ConfigError;
use super::parse::{duration, flag, get, invalid, number};

#[derive(Debug, Clone)]
pub struct ExtractionSettings {
    /// `EXTRACTION_DETECTION`: score query streams. The probability policy applies either way.
    pub detection: bool,
    pub detector: ExtractionConfig,
    pub policy: LogprobPolicy,
}

impl Default for ExtractionSettings {
    fn default() -> Self {
        ExtractionSettings {
            detection: true,
            detector: ExtractionConfig::default(),
            policy: LogprobPolicy::default(),
        }
    }
}

/// A decimal in `[min, max]`.
fn decimal(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, ConfigError> {
    let Some(raw) = get(lookup, var) else {
        return Ok(default);
    };
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(invalid(var, &raw, format!("a number from {min} to {max}"))),
    }
}

pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ExtractionSettings, ConfigError> {
    let d = ExtractionConfig::default();
    let window = duration(
        lookup,
        "EXTRACTION_WINDOW",
        Duration::from_millis(d.window_ms),
    )?;
    if window < Duration::from_secs(1) || window > Duration::from_secs(7 * 86_400) {
        return Err(invalid(
            "EXTRACTION_WINDOW",
            &humantime::format_duration(window).to_string(),
            "a duration from 1s to 7d, such as 10m or 1h",
        ));
    }
    let hash_seed = match get(lookup, "EXTRACTION_HASH_SEED") {
        None => d.hash_seed,
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            invalid(
                "EXTRACTION_HASH_SEED",
                "<hidden>",
                "a whole number from 0 to 18446744073709551615",
            )
        })?,
    };
    let detector = ExtractionConfig {
        window_ms: window.as_millis().min(u128::from(u64::MAX)) as u64,
        similarity_threshold: decimal(
            lookup,
            "EXTRACTION_SIMILARITY_THRESHOLD",
            d.similarity_threshold,
            0.5,
            0.99,
        )?,
        max_similar: number(lookup, "EXTRACTION_MAX_SIMILAR", d.max_similar, 2, 100_000)?,
        max_template_repeats: number(
            lookup,
            "EXTRACTION_MAX_TEMPLATE",
            d.max_template_repeats,
            2,
            100_000,
        )?,
        velocity_budget: number(
            lookup,
            "EXTRACTION_VELOCITY_BUDGET",
            d.velocity_budget,
            1,
            10_000_000,
        )?,
        baseline_ratio: decimal(
            lookup,
            "EXTRACTION_BASELINE_RATIO",
            d.baseline_ratio,
            3.5,
            1000.0,
        )?,
        max_entries: number(
            lookup,
            "EXTRACTION_MAX_ENTRIES",
            d.max_entries,
            100,
            1_000_000,
        )?,
        prada_delta: decimal(lookup, "EXTRACTION_PRADA_DELTA", d.prada_delta, 0.5, 0.99)?,
        logit_bias_sweep_threshold: number(
            lookup,
            "LOGIT_BIAS_SWEEP_THRESHOLD",
            d.logit_bias_sweep_threshold,
            2,
            4096,
        )?,
        hash_seed,
        ..d
    };
    let p = LogprobPolicy::default();
    let policy = LogprobPolicy {
        allow_logit_bias: flag(lookup, "LOGIT_BIAS_ALLOWED", p.allow_logit_bias)?,
        allow_positive_bias: flag(lookup, "LOGIT_BIAS_ALLOW_POSITIVE", p.allow_positive_bias)?,
        max_logit_bias_entries: number(
            lookup,
            "LOGIT_BIAS_MAX_ENTRIES",
            p.max_logit_bias_entries,
            1,
            300,
        )?,
        max_top_logprobs: number(lookup, "LOGPROBS_MAX_TOP", p.max_top_logprobs, 0, 20)?,
        round_decimals: number(lookup, "LOGPROBS_ROUND_DECIMALS", p.round_decimals, 0, 6)?,
        max_n: number(lookup, "LOGPROBS_MAX_N", p.max_n, 1, 8)?,
        daily_logprob_budget: number(
            lookup,
            "LOGPROB_DAILY_BUDGET",
            p.daily_logprob_budget,
            0,
            u64::MAX / 2,
        )?,
    };
    Ok(ExtractionSettings {
        detection: flag(lookup, "EXTRACTION_DETECTION", true)?,
        detector,
        policy,
    })
}
