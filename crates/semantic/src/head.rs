//! The logistic head over the encoder's embedding and its file: a readable JSON manifest
//! (encoder it was trained on, calibration, provenance), the weights, and a SHA-256 of both,
//! so a truncated or edited file is refused instead of scoring nonsense.
//!
//! ```text
//! "SISEMHD1"        8 bytes magic
//! u32 LE            manifest length
//! manifest          JSON (see HeadManifest)
//! f32 LE × dim      weights
//! [u8; 32]          SHA-256 of everything above
//! ```

use secureinfer_guard::classifier::Calibration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{CHUNK_OVERLAP, CHUNK_TOKENS, DIM};

const MAGIC: &[u8; 8] = b"SISEMHD1";
pub const FORMAT: u32 = 1;
const MAX_MANIFEST: usize = 1 << 20;

#[derive(Debug, Error, PartialEq)]
pub enum HeadError {
    #[error("not a SecureInfer semantic head (bad magic bytes)")]
    BadMagic,
    #[error("semantic head file is truncated ({0})")]
    Truncated(&'static str),
    #[error(
        "semantic head file is corrupted: checksum mismatch (expected {expected}, found {found})"
    )]
    Checksum { expected: String, found: String },
    #[error("semantic head manifest is not valid JSON: {0}")]
    Manifest(String),
    #[error("semantic head is incompatible with this build: {0}")]
    Incompatible(String),
}

/// Which encoder weights the head was trained on: a head only means something over the
/// exact embedding it learned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderId {
    pub name: String,
    /// SHA-256 (hex) of `model.safetensors`.
    pub weights_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadManifest {
    pub format: u32,
    pub dim: usize,
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub encoder: EncoderId,
    pub bias: f32,
    pub calibration: Calibration,
    /// The command, seed, inputs (with hashes) and measured quality.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// A loaded head. Immutable, cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub manifest: HeadManifest,
    pub weights: Vec<f32>,
}

impl Head {
    /// The head's logit for one (L2-normalised) embedding.
    pub fn logit(&self, embedding: &[f32]) -> f32 {
        self.manifest.bias
            + self
                .weights
                .iter()
                .zip(embedding)
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }

    /// Risk points (0..=95) for a logit, through the calibration chosen on held-out rows.
    pub fn points(&self, logit: f32) -> u8 {
        self.manifest
            .calibration
            .points(logit)
            .round()
            .clamp(0.0, 95.0) as u8
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + json.len() + 4 * self.weights.len() + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Parses and checks a head file: checksum, format, shapes, finite weights.
    pub fn from_bytes(bytes: &[u8]) -> Result<Head, HeadError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(HeadError::BadMagic);
        }
        if bytes.len() < 12 + 32 {
            return Err(HeadError::Truncated("no header"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        let found = Sha256::digest(body);
        if found[..] != *sum {
            return Err(HeadError::Checksum {
                expected: hex::encode(sum),
                found: hex::encode(found),
            });
        }
        let len_bytes: [u8; 4] = body
            .get(8..12)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeadError::Truncated("no manifest length"))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > MAX_MANIFEST {
            return Err(HeadError::Manifest(format!("manifest of {len} bytes")));
        }
        let json = body
            .get(12..12 + len)
            .ok_or(HeadError::Truncated("manifest"))?;
        let manifest: HeadManifest =
            serde_json::from_slice(json).map_err(|e| HeadError::Manifest(e.to_string()))?;
        check(&manifest)?;
        let table = body.get(12 + len..).unwrap_or_default();
        if table.len() != 4 * manifest.dim {
            return Err(HeadError::Truncated("weights have the wrong length"));
        }
        let weights: Vec<f32> = table
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(HeadError::Incompatible("non-finite weights".to_string()));
        }
        Ok(Head { manifest, weights })
    }

    /// The head shipped with this build.
    pub fn builtin() -> Result<Head, HeadError> {
        Head::from_bytes(crate::BUILTIN_HEAD)
    }
}

fn check(m: &HeadManifest) -> Result<(), HeadError> {
    let bad = |s: String| Err(HeadError::Incompatible(s));
    if m.format != FORMAT {
        return bad(format!(
            "file format {} (this build reads {FORMAT})",
            m.format
        ));
    }
    if m.dim != DIM {
        return bad(format!("{} dimensions (the encoder gives {DIM})", m.dim));
    }
    if m.chunk_tokens != CHUNK_TOKENS || m.chunk_overlap != CHUNK_OVERLAP {
        return bad(format!(
            "chunking {}/{} (this build uses {CHUNK_TOKENS}/{CHUNK_OVERLAP})",
            m.chunk_tokens, m.chunk_overlap
        ));
    }
    let c = m.calibration;
    let ordered = c.floor.is_finite()
        && c.warn.is_finite()
        && c.block.is_finite()
        && c.floor < c.warn
        && c.warn < c.block;
    if !m.bias.is_finite() || !ordered {
        return bad("non-finite bias or unordered calibration".to_string());
    }
    Ok(())
}
