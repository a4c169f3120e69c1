//! The hook for the optional second learned tier (a sentence encoder with a logistic head,
//! `crates/semantic`, built with the `semantic` feature). The core only decides *when* to
//! ask it and how its points join the verdict; the model itself lives outside this crate so
//! the default build does not compile a neural-network runtime.
//!
//! It is asked only about prompts the first tier finds borderline (its logit between the
//! calibrated floor and block points): clear cases stay on the fast path (µs), and the
//! encoder's milliseconds are spent where a second opinion can change the decision.

use serde::Serialize;

use crate::scorer::{Assessment, ChatMessage, Reason};

/// Factor and reason id the second tier reports under.
pub const FACTOR: &str = "semantic";
pub const REASON_ID: &str = "semantic.minilm";

/// What the second tier said about a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SemanticScore {
    /// Highest chunk logit of the head over the scored messages.
    pub logit: f32,
    /// Risk points (0..=95) after calibration.
    pub points: u8,
    /// Chunks (of at most 256 tokens) encoded.
    pub chunks: u32,
    /// Chunks beyond the per-request cap, left to the other tiers (reported, never silent).
    pub skipped_chunks: u32,
}

/// A second-opinion scorer over the raw texts of the scored messages. Implementations are
/// synchronous and must not panic; a failure to encode scores nothing (0 points).
pub trait SecondTier: Send + Sync + std::fmt::Debug {
    fn score(&self, texts: &[&str]) -> SemanticScore;
}

/// Whether the second tier should be asked: the first tier's logit lies in
/// `[floor, block)`, or (without a first tier) the heuristics have not already blocked.
pub(crate) fn borderline(a: &Assessment, block_points: u8) -> bool {
    if a.score >= block_points {
        return false;
    }
    match a.learned {
        // Also when tier 1 softened the patterns: the two disagree, so ask the third voice.
        Some(s) => {
            s.chunks > 0 && (s.band == crate::classifier::Band::Borderline || a.softened_from > 0)
        }
        None => true,
    }
}

/// The texts the second tier reads: the same roles the heuristics score, long enough for a
/// model to judge.
pub(crate) fn texts<'a>(msgs: &'a [ChatMessage<'a>], score_system: bool) -> Vec<&'a str> {
    msgs.iter()
        .filter(|m| m.role.scored(score_system))
        .map(|m| m.text)
        .filter(|t| super::long_enough(t))
        .collect()
}

/// Adds the second tier's verdict: like the first tier, the stronger verdict stands (max).
pub(crate) fn apply(a: &mut Assessment, s: SemanticScore) {
    if s.points >= super::MIN_POINTS {
        a.score = a.score.max(s.points);
        a.reasons.push(Reason {
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
    a.semantic = Some(s);
}
