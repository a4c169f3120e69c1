//! Detector settings and the choice of LSH banding.

use serde::Serialize;

/// MinHash functions computed per query. 128 keeps the 8-bit signature estimate's standard
/// error near 0.03 at J = 0.85 while a signature still fits in two cache lines.
pub const NUM_HASHES: usize = 128;
/// Upper bound on LSH bands: each band is one counter update per query and one stored key per
/// window entry, so this bounds both per-check work and per-entry memory.
pub const MAX_BANDS: usize = 16;

/// Tuning of [`super::ExtractionDetector`]. Field docs name the gateway environment variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractionConfig {
    /// Sliding window length in ms (`EXTRACTION_WINDOW`, default 1h).
    pub window_ms: u64,
    /// Jaccard similarity at which two prompts count as near-duplicates
    /// (`EXTRACTION_SIMILARITY_THRESHOLD`, default 0.85).
    pub similarity_threshold: f64,
    /// Near-duplicates tolerated in the window before the signal reaches 40 points
    /// (`EXTRACTION_MAX_SIMILAR`, default 20).
    pub max_similar: u32,
    /// Same masked template tolerated in the window (`EXTRACTION_MAX_TEMPLATE`, default 20).
    pub max_template_repeats: u32,
    /// Queries per window before the velocity signal fires (`EXTRACTION_VELOCITY_BUDGET`,
    /// default 1000).
    pub velocity_budget: u32,
    /// Last-minute rate over the tenant's EWMA baseline that earns full burst points
    /// (`EXTRACTION_BASELINE_RATIO`, default 10).
    pub baseline_ratio: f64,
    /// Minutes of history before the baseline is trusted (default 30).
    pub baseline_warmup_minutes: u32,
    /// Entries kept per tenant; the oldest are dropped beyond it (`EXTRACTION_MAX_ENTRIES`,
    /// default 20,000).
    pub max_entries: usize,
    /// Words per shingle (default 1: the word-set Jaccard of the original design).
    pub shingle_words: usize,
    /// Prompts with fewer words are only counted for velocity (default 3).
    pub min_words: usize,
    /// PRADA: Shapiro-Wilk W below which the distance sample is called non-normal
    /// (`EXTRACTION_PRADA_DELTA`, default 0.90).
    pub prada_delta: f64,
    /// PRADA: distances needed before testing (default 64).
    pub prada_min_samples: usize,
    /// PRADA: most recent distances kept and tested (default 256).
    pub prada_max_samples: usize,
    /// Distinct logit-bias token ids per window that count as a sweep
    /// (`LOGIT_BIAS_SWEEP_THRESHOLD`, default 100).
    pub logit_bias_sweep_threshold: u32,
    /// Score at which the status becomes Review / Suspicious / Blocking (40 / 60 / 80).
    pub review_at: u8,
    pub suspicious_at: u8,
    pub block_at: u8,
    /// Seed of the MinHash and fingerprint hashes. Must be equal on every replica that shares
    /// Redis state, and is worth keeping private so band keys cannot be precomputed.
    pub hash_seed: u64,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self {
            window_ms: 60 * 60 * 1000,
            similarity_threshold: 0.85,
            max_similar: 20,
            max_template_repeats: 20,
            velocity_budget: 1000,
            baseline_ratio: 10.0,
            baseline_warmup_minutes: 30,
            max_entries: 20_000,
            shingle_words: 1,
            min_words: 3,
            prada_delta: 0.90,
            prada_min_samples: 64,
            prada_max_samples: 256,
            logit_bias_sweep_threshold: 100,
            review_at: 40,
            suspicious_at: 60,
            block_at: 80,
            hash_seed: 0x5ec0_1f3e_a7e5_7a11,
        }
    }
}

/// LSH banding: `bands` groups of `rows` MinHash values; two prompts become candidates when
/// any whole band agrees, which happens with probability `1 - (1 - s^rows)^bands`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LshParams {
    pub bands: usize,
    pub rows: usize,
}

impl LshParams {
    /// Picks the banding whose S-curve midpoint `(1/bands)^(1/rows)` is closest to
    /// `threshold`, using at most [`NUM_HASHES`] values and [`MAX_BANDS`] bands.
    pub fn for_threshold(threshold: f64) -> Self {
        let t = if threshold.is_finite() {
            threshold.clamp(0.05, 0.99)
        } else {
            0.85
        };
        let mut best = Self { bands: 9, rows: 14 };
        let mut best_err = f64::INFINITY;
        for rows in 1..=NUM_HASHES {
            let bands = (NUM_HASHES / rows).min(MAX_BANDS);
            if bands == 0 {
                break;
            }
            let err = (Self { bands, rows }.threshold() - t).abs();
            if err < best_err {
                best_err = err;
                best = Self { bands, rows };
            }
        }
        best
    }

    /// Similarity at which the candidate probability rises most steeply.
    pub fn threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }

    /// Probability that two prompts with Jaccard similarity `s` share at least one band.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }
}
