//! Learned detector (tier 1): a logistic regression over hashed word and character n-grams
//! of the normalised text, plus the heuristic factors and obfuscation counts as inputs.
//!
//! It exists because pattern lists only catch the phrasings their authors thought of; the
//! model learns from labelled rows (`secureinfer train`) which words and fragments make a
//! text an attempt to override instructions. Scoring is one pass over the text with table
//! look-ups: linear in length, no allocation beyond the normalised copy, a few µs per KB.
//!
//! The verdict is a logit. [`Calibration`] (chosen on held-out rows when the model was
//! trained) turns it into risk points that join the heuristic evidence as the
//! `classifier` factor.

pub mod features;
mod model;
pub mod second;
pub mod synth;
pub mod train;

use serde::Serialize;

use crate::normalize::{Normalized, Normalizer};
use crate::scorer::{Assessment, ChatMessage, Role};
pub use model::{Calibration, Manifest, ModelError};

/// The model shipped with this build (trained by `secureinfer train`; see docs/detection-quality.md).
const BUILTIN: &[u8] = include_bytes!("../../models/detector.bin");

/// Factor and reason id the learned detector reports under.
pub const FACTOR: &str = "classifier";
pub const REASON_ID: &str = "classifier.linear";
/// Points below this neither count nor appear as a reason: a low-confidence verdict would
/// only make the reported score jitter between similar benign prompts.
pub const MIN_POINTS: u8 = 20;

/// What the learned detector said about a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LearnedScore {
    /// Highest chunk logit over the scored messages.
    pub logit: f32,
    /// `sigmoid(logit)`: the model's own (uncalibrated) attack probability.
    pub probability: f32,
    /// Risk points added to the heuristic evidence (after calibration and weight).
    pub points: u8,
    /// Chunks scored (long messages are split, never truncated).
    pub chunks: u32,
    /// Where the logit falls against the calibration (decides whether tier 2 is asked).
    pub band: Band,
}

/// Where a logit falls against the calibration cut points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Below the floor: the detector adds nothing.
    Clear,
    /// In `[floor, block)`: the detector is unsure; the second tier may be asked.
    Borderline,
    /// At or above the block point.
    Confident,
}

impl Calibration {
    pub fn band(&self, logit: f32) -> Band {
        if !logit.is_finite() || logit < self.floor {
            Band::Clear
        } else if logit < self.block {
            Band::Borderline
        } else {
            Band::Confident
        }
    }
}

/// A loaded model. Cheap to share (`Arc`), immutable, `Send + Sync`.
#[derive(Clone)]
pub struct Classifier {
    manifest: Manifest,
    weights: Vec<f32>,
    norm: Normalizer,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("bits", &self.manifest.bits)
            .field("calibration", &self.manifest.calibration)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Parses and verifies a model file's bytes (checksum, version, shapes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier, ModelError> {
        let (manifest, weights) = model::decode(bytes)?;
        Self::from_parts(manifest, weights)
    }

    /// The model compiled into this build.
    pub fn builtin() -> Result<Classifier, ModelError> {
        Self::from_bytes(BUILTIN)
    }

    pub(crate) fn from_parts(
        manifest: Manifest,
        weights: Vec<f32>,
    ) -> Result<Classifier, ModelError> {
        let norm =
            Normalizer::new().map_err(|e| ModelError::Incompatible(format!("normaliser: {e}")))?;
        Ok(Classifier {
            manifest,
            weights,
            norm,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Highest chunk logit of one already-normalised text, and the number of chunks.
    pub fn logit_normalized(&self, text: &str, dense: &[f32]) -> (f32, u32) {
        let m = &self.manifest;
        let dense_part: f32 = m.dense_weights.iter().zip(dense).map(|(w, x)| w * x).sum();
        let mut best = f32::NEG_INFINITY;
        let mut n = 0u32;
        for chunk in features::chunks(text) {
            let (mut sw, mut sc) = (0.0f32, 0.0f32);
            let (nw, nc) = features::for_each_feature(chunk, m.bits, |g, b| {
                let w = self.weights.get(b).copied().unwrap_or(0.0);
                match g {
                    features::Group::Word => sw += w,
                    features::Group::Char => sc += w,
                }
            });
            let z = m.bias + dense_part + scaled(sw, nw) + scaled(sc, nc);
            best = best.max(z);
            n += 1;
        }
        (best, n)
    }

    /// The text view the model reads: NFKC, lowercased, invisible characters removed,
    /// look-alike letters folded to ASCII when the text is mostly Latin.
    pub fn normalize<'b>(&self, text: &str, buf: &'b mut Normalized) -> &'b str {
        let mut budget = 0usize;
        self.norm.run(text, false, &mut budget, buf);
        buf.latin_view()
    }

    /// Scores the messages the heuristics scored, using their assessment as dense inputs.
    pub fn score(
        &self,
        msgs: &[ChatMessage<'_>],
        heuristic: &Assessment,
        score_system: bool,
        weight: f32,
    ) -> LearnedScore {
        let mut dense = Vec::with_capacity(features::dense_len());
        features::dense_features(heuristic, &mut dense);
        let mut buf = Normalized::default();
        let (mut best, mut chunks) = (f32::NEG_INFINITY, 0u32);
        for m in msgs {
            let scored = match m.role {
                Role::User | Role::Tool => true,
                Role::System | Role::Developer => score_system,
                Role::Assistant => false,
            };
            if !scored {
                continue;
            }
            let text = self.normalize(m.text, &mut buf);
            if !long_enough(text) {
                continue;
            }
            let (z, n) = self.logit_normalized(text, &dense);
            best = best.max(z);
            chunks += n;
        }
        let points = if chunks == 0 {
            // Nothing long enough to read: the logit is the model's prior, not a verdict.
            best = self.logit_normalized("", &dense).0;
            0
        } else {
            (self.manifest.calibration.points(best) * weight.clamp(0.0, 2.0))
                .round()
                .clamp(0.0, 95.0) as u8
        };
        LearnedScore {
            logit: best,
            probability: 1.0 / (1.0 + (-best).exp()),
            points,
            chunks,
            band: self.manifest.calibration.band(best),
        }
    }
}

/// Messages with fewer non-space characters than this (after normalisation) are left to the
/// heuristics. On a few characters the model has almost no n-grams to weigh, so its verdict is
/// mostly its bias: "rules?" scored 84 and "hi" 33 before this floor. Short attacks ("you are
/// DAN now") are what the pattern catalogue already catches.
pub const MIN_SCORED_CHARS: usize = 20;

pub(crate) fn long_enough(text: &str) -> bool {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .take(MIN_SCORED_CHARS)
        .count()
        >= MIN_SCORED_CHARS
}

#[inline]
fn scaled(sum: f32, n: u32) -> f32 {
    if n == 0 { 0.0 } else { sum / (n as f32).sqrt() }
}

/// Adds the learned factor to a heuristic assessment (reason, score, details). The model
/// already weighs the heuristic evidence (it is among its inputs), so the two are not
/// stacked: the stronger verdict stands.
pub(crate) fn apply(a: &mut Assessment, s: LearnedScore) {
    if s.points >= MIN_POINTS {
        a.score = a.score.max(s.points);
        a.reasons.push(crate::scorer::Reason {
            factor: FACTOR,
            pattern: REASON_ID.to_string(),
            points: s.points,
        });
        a.reasons.sort_by(|x, y| {
            y.points
                .cmp(&x.points)
                .then_with(|| x.pattern.cmp(&y.pattern))
        });
    }
    a.learned = Some(s);
}
