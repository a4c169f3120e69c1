//! The second tier as the guard sees it: the encoder plus a head trained on its embedding.

use secureinfer_guard::{SecondTier, SemanticScore};
use thiserror::Error;

use crate::MAX_CHUNKS;
use crate::encoder::Encoder;
use crate::head::Head;

#[derive(Debug, Error)]
pub enum DetectorError {
    #[error(
        "the semantic head was trained on other encoder weights (head expects model.safetensors \
         with SHA-256 {expected}, found {found}); retrain it with `secureinfer train-semantic`"
    )]
    EncoderMismatch { expected: String, found: String },
}

#[derive(Debug)]
pub struct SemanticDetector {
    encoder: Encoder,
    head: Head,
}

impl SemanticDetector {
    /// Pairs an encoder with a head, refusing a head trained on other weights.
    pub fn new(encoder: Encoder, head: Head) -> Result<SemanticDetector, DetectorError> {
        let (want, have) = (
            &head.manifest.encoder.weights_sha256,
            &encoder.id().weights_sha256,
        );
        if want != have {
            return Err(DetectorError::EncoderMismatch {
                expected: want.clone(),
                found: have.clone(),
            });
        }
        Ok(SemanticDetector { encoder, head })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

impl SecondTier for SemanticDetector {
    fn score(&self, texts: &[&str]) -> SemanticScore {
        let mut best = f32::NEG_INFINITY;
        let (mut chunks, mut skipped) = (0u32, 0u32);
        for text in texts {
            // A text the tokenizer cannot read scores nothing: the other tiers still stand.
            let Ok(windows) = self.encoder.windows(text) else {
                continue;
            };
            for w in windows {
                if chunks as usize >= MAX_CHUNKS {
                    skipped += 1;
                    continue;
                }
                if let Ok(e) = self.encoder.embed_window(&w) {
                    best = best.max(self.head.logit(&e));
                    chunks += 1;
                }
            }
        }
        let points = if chunks == 0 {
            0
        } else {
            self.head.points(best)
        };
        SemanticScore {
            logit: best,
            points,
            chunks,
            skipped_chunks: skipped,
        }
    }
}
