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
use crate::scorer::{Assessment, ChatMessage};
pub use model::{Calibration, Manifest, ModelError};

/// The model shipped with this build (trained by `secureinfer train`; see docs/detection-quality.md).
const BUILTIN: &[u8] = include_bytes!("../../models/detector.bin");

/// Factor and reason id the learned detector reports under.
pub const FACTOR: &str = "classifier";
pub const REASON_ID: &str = "classifier.linear";
/// Points below this neither count nor appear as a reason: a low-confidence verdict would
/// only make the reported score jitter between similar benign prompts.
pub const MIN_POINTS: u8 = 20;
/// The most heuristic points a benign verdict takes back (see `discount`). Security work that
/// quotes attacks ("Sample: '...ignore all previous instructions...'" in an alert ticket, a
/// vendor questionnaire asking whether the assistant can be made to reveal other customers'
/// data) matches the patterns at 85-90 points, and such texts set the score a detector
/// needs to keep 99% of benign traffic below; the model, which weighs those same pattern
/// matches among its inputs, can read their words as benign. Bounded, so an 85-point override the
/// model misreads still scores 65 (WARN), and no flagged score drops below WARN: the
/// model can soften a verdict, never clear it.
pub const MAX_DISCOUNT: u8 = 20;

/// Heuristic points a benign verdict takes back. Two conditions, and the smaller share
/// wins. The whole logit must be below the one that earns [`MIN_POINTS`]: the model gives
/// the text nothing. And the text's own words (`sparse`, the logit without the bias and the
/// heuristic inputs) must point to benign: a text the model merely does not recognise has
/// words near 0 and gets no discount, however low the bias pulls its logit. Both shares are
/// measured in units of the calibration's WARN-minus-floor span, so they mean the same
/// after a retrain. A logit or word sum that is not finite gives 0.
fn discount(cal: &Calibration, logit: f32, sparse: f32, weight: f32) -> u8 {
    if !logit.is_finite() || !sparse.is_finite() {
        return 0;
    }
    let span = (cal.warn - cal.floor).max(f32::EPSILON);
    let below = (cal.logit_for(f32::from(MIN_POINTS)) - logit) / span;
    let benign_words = -sparse / span;
    let share = below.min(benign_words).clamp(0.0, 1.0);
    (share * f32::from(MAX_DISCOUNT) * weight.clamp(0.0, 1.0)).round() as u8
}

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
    /// Heuristic points taken back because the model is confident the text is benign (see
    /// [`apply`]); 0 when it is not, when it read nothing, or when a scored text was too short
    /// to read.
    pub discount: u8,
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
    /// The table as stored (i8 × `manifest.scale`): a quarter of the size of floats, so
    /// the random look-ups of scoring mostly stay in a core's L2 cache.
    weights: Vec<i8>,
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

/// Running verdict over the messages of one request: the highest chunk score of the sparse
/// features so far. The dense part (heuristic evidence) is the same for every chunk, so it
/// is added once, by [`Classifier::finish`], when the heuristic assessment is complete.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    best: f32,
    chunks: u32,
    /// A scored text was too short to read: its pattern hits had no second opinion.
    unread: bool,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            best: f32::NEG_INFINITY,
            chunks: 0,
            unread: false,
        }
    }
}

impl Classifier {
    /// Parses and verifies a model file's bytes (checksum, version, shapes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier, ModelError> {
        let (manifest, weights) = model::decode(bytes)?;
        let norm =
            Normalizer::new().map_err(|e| ModelError::Incompatible(format!("normaliser: {e}")))?;
        Ok(Classifier {
            manifest,
            weights,
            norm,
        })
    }

    /// The model compiled into this build.
    pub fn builtin() -> Result<Classifier, ModelError> {
        Self::from_bytes(BUILTIN)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Sparse part of the highest chunk logit of one already-normalised text, and the
    /// number of chunks.
    fn sparse_max(&self, text: &str) -> (f32, u32) {
        let bits = self.manifest.bits;
        let mut best = f32::NEG_INFINITY;
        let mut n = 0u32;
        for chunk in features::chunks(text) {
            let (mut sw, mut sc) = (0i32, 0i32);
            let (nw, nc) = features::for_each_feature(chunk, bits, |g, b| {
                let w = i32::from(self.weights.get(b).copied().unwrap_or(0));
                match g {
                    features::Group::Word => sw += w,
                    features::Group::Char => sc += w,
                }
            });
            let z = self.manifest.scale * (scaled(sw, nw) + scaled(sc, nc));
            best = best.max(z);
            n += 1;
        }
        (best, n)
    }

    /// Adds one already-normalised message (see [`Classifier::normalize`]) to a request's
    /// running verdict. Messages too short to judge are skipped.
    pub fn observe(&self, running: &mut Running, normalized: &str) {
        if !long_enough(normalized) {
            running.unread = true;
            return;
        }
        let (z, n) = self.sparse_max(normalized);
        running.best = running.best.max(z);
        running.chunks += n;
    }

    /// The request's verdict, once the heuristic assessment (the dense inputs) is complete.
    pub fn finish(&self, running: Running, heuristic: &Assessment, weight: f32) -> LearnedScore {
        let m = &self.manifest;
        let dense_part: f32 = m
            .dense_weights
            .iter()
            .zip(features::dense_values(heuristic))
            .map(|(w, x)| w * x)
            .sum();
        // With nothing long enough to read, the logit is the model's prior, not a verdict.
        let sparse = if running.chunks == 0 {
            0.0
        } else {
            running.best
        };
        let logit = m.bias + dense_part + sparse;
        let points = if running.chunks == 0 {
            0
        } else {
            (m.calibration.points(logit) * weight.clamp(0.0, 2.0))
                .round()
                .clamp(0.0, 95.0) as u8
        };
        let discount = if running.chunks == 0 || running.unread {
            0
        } else {
            discount(&m.calibration, logit, sparse, weight)
        };
        LearnedScore {
            logit,
            probability: 1.0 / (1.0 + (-logit).exp()),
            points,
            chunks: running.chunks,
            band: m.calibration.band(logit),
            discount,
        }
    }

    /// The text view the model reads: NFKC, lowercased, invisible characters removed,
    /// look-alike letters folded to ASCII when the text is mostly Latin. The guard's
    /// heuristic pass computes the same view and hands it over, so a request is
    /// normalised once.
    pub fn normalize<'b>(&self, text: &str, buf: &'b mut Normalized) -> &'b str {
        let mut budget = 0usize;
        self.norm.run(text, false, &mut budget, buf);
        buf.latin_view()
    }

    /// Scores messages on their own, given their heuristic assessment (the guard does the
    /// same while it scans; this is for callers holding only the model). It reads the
    /// messages' own text; the guard also reads the payloads its decoders unhide, so on a
    /// message that carries one the guard's verdict can be higher.
    pub fn score(
        &self,
        msgs: &[ChatMessage<'_>],
        heuristic: &Assessment,
        score_system: bool,
        weight: f32,
    ) -> LearnedScore {
        let mut buf = Normalized::default();
        let mut running = Running::default();
        for m in msgs {
            if m.role.scored(score_system) {
                let text = self.normalize(m.text, &mut buf);
                self.observe(&mut running, text);
            }
        }
        self.finish(running, heuristic, weight)
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
fn scaled(sum: i32, n: u32) -> f32 {
    if n == 0 {
        0.0
    } else {
        sum as f32 / (n as f32).sqrt()
    }
}

/// Adds the learned factor to a heuristic assessment (reason, score, details). The model
/// already weighs the heuristic evidence (it is among its inputs), so the two are not
/// stacked: the stronger verdict stands. A confident benign verdict first lowers a flagged
/// heuristic score by its `discount` (at most [`MAX_DISCOUNT`]), but never below the
/// shipped WARN threshold: what the patterns flag stays flagged. The reasons keep their
/// points, and the discount is reported with the verdict.
pub(crate) fn apply(a: &mut Assessment, s: LearnedScore) {
    // The shipped WARN is the floor for the reported score; a gateway with other
    // thresholds keeps the flag through `softened_from` (see `Thresholds::softened_score`).
    let warn = crate::Thresholds::default().warn;
    // At CLASSIFIER_WEIGHT above 1 a low logit can still earn points; then it is no
    // benign verdict. Evidence the model cannot weigh is never softened: an injection in a
    // tool result, a repeated attempt, or an instruction that was hidden or disguised.
    let unweighable = |a: &Assessment| {
        a.reasons
            .iter()
            .any(|r| r.factor == "obfuscation" || r.pattern.starts_with("conversation."))
    };
    if s.discount > 0 && s.points < MIN_POINTS && a.score > warn && !unweighable(a) {
        a.softened_from = a.score;
        a.score = a.score.saturating_sub(s.discount).max(warn);
    }
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
