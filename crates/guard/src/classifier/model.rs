//! The model file: a readable JSON manifest, the quantised weight table, and a SHA-256 of
//! both, so a truncated or edited file is refused instead of scoring nonsense.
//!
//! ```text
//! "SIDETECT"            8 bytes magic
//! u32 LE                manifest length
//! manifest              JSON (see Manifest)
//! i8 × 2^bits          hashed-feature weights, multiplied by manifest.scale
//! [u8; 32]              SHA-256 of everything above
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::features::{CHUNK_BYTES, CHUNK_OVERLAP, FEATURE_VERSION, dense_names};

const MAGIC: &[u8; 8] = b"SIDETECT";
/// Table sizes a model may use (2^bits entries); bounds what a file can make us allocate.
pub const MIN_BITS: u32 = 10;
pub const MAX_BITS: u32 = 22;
const MAX_MANIFEST: usize = 1 << 20;

#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    #[error("not a SecureInfer detector model (bad magic bytes)")]
    BadMagic,
    #[error("model file is truncated ({0})")]
    Truncated(&'static str),
    #[error("model file is corrupted: checksum mismatch (expected {expected}, found {found})")]
    Checksum { expected: String, found: String },
    #[error("model manifest is not valid JSON: {0}")]
    Manifest(String),
    #[error("model is incompatible with this build: {0}")]
    Incompatible(String),
}

/// Where the weights came from and how good they were: everything a reviewer needs to
/// reproduce or judge the shipped model, plus the few numbers scoring needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub feature_version: u32,
    pub bits: u32,
    pub chunk_bytes: usize,
    pub chunk_overlap: usize,
    /// Multiplier turning the stored i8 weights into floats.
    pub scale: f32,
    pub bias: f32,
    pub dense_names: Vec<String>,
    pub dense_weights: Vec<f32>,
    pub calibration: Calibration,
    /// Provenance: the command, seed, inputs (with hashes) and measured quality.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// Logit cut points chosen on held-out rows: below `floor` the detector adds nothing, at
/// `warn` it alone reaches the WARN score (50), at `block` the BLOCK score (80).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub floor: f32,
    pub warn: f32,
    pub block: f32,
}

impl Calibration {
    /// Risk points (0..=95) for a logit. Piecewise linear through (floor, 0), (warn, 50),
    /// (block, 80), then approaching 95: the detector never claims certainty on its own.
    pub fn points(&self, logit: f32) -> f32 {
        if !logit.is_finite() || logit <= self.floor {
            return 0.0;
        }
        if logit < self.warn {
            return 50.0 * (logit - self.floor) / (self.warn - self.floor);
        }
        if logit < self.block {
            return 50.0 + 30.0 * (logit - self.warn) / (self.block - self.warn);
        }
        80.0 + 15.0 * (1.0 - (-(logit - self.block)).exp())
    }

    /// The logit that earns `points` (below 50): the inverse of [`Self::points`] on its
    /// first segment.
    pub fn logit_for(&self, points: f32) -> f32 {
        self.floor + (self.warn - self.floor) * points / 50.0
    }

    fn valid(&self) -> bool {
        self.floor.is_finite()
            && self.warn.is_finite()
            && self.block.is_finite()
            && self.floor < self.warn
            && self.warn < self.block
    }
}

/// 2: the table is stored as i8 (1: i16).
pub const FORMAT: u32 = 2;

/// Serialises a model. `weights` has `2^manifest.bits` entries.
pub fn encode(manifest: &Manifest, weights: &[i8]) -> Vec<u8> {
    let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    let mut out = Vec::with_capacity(8 + 4 + json.len() + weights.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for w in weights {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Parses and checks a model file: checksum, format, feature version and shapes.
pub fn decode(bytes: &[u8]) -> Result<(Manifest, Vec<i8>), ModelError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ModelError::BadMagic);
    }
    if bytes.len() < 8 + 4 + 32 {
        return Err(ModelError::Truncated("no header"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    let found = Sha256::digest(body);
    if found[..] != *sum {
        return Err(ModelError::Checksum {
            expected: hex(sum),
            found: hex(&found),
        });
    }
    let len_bytes: [u8; 4] = body
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .ok_or(ModelError::Truncated("no manifest length"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_MANIFEST {
        return Err(ModelError::Manifest(format!("manifest of {len} bytes")));
    }
    let json = body
        .get(12..12 + len)
        .ok_or(ModelError::Truncated("manifest"))?;
    let m: Manifest =
        serde_json::from_slice(json).map_err(|e| ModelError::Manifest(e.to_string()))?;
    check(&m)?;
    let table = body.get(12 + len..).unwrap_or_default();
    let n = 1usize << m.bits;
    if table.len() != n {
        return Err(ModelError::Truncated("weight table has the wrong length"));
    }
    let weights = table.iter().map(|&b| i8::from_le_bytes([b])).collect();
    Ok((m, weights))
}

fn check(m: &Manifest) -> Result<(), ModelError> {
    let bad = |s: String| Err(ModelError::Incompatible(s));
    if m.format != FORMAT {
        return bad(format!(
            "file format {} (this build reads {FORMAT})",
            m.format
        ));
    }
    if m.feature_version != FEATURE_VERSION {
        return bad(format!(
            "feature version {} (this build computes {FEATURE_VERSION}); retrain with `secureinfer train`",
            m.feature_version
        ));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&m.bits) {
        return bad(format!(
            "table of 2^{} entries (accepted 2^{MIN_BITS}..2^{MAX_BITS})",
            m.bits
        ));
    }
    if m.chunk_bytes != CHUNK_BYTES || m.chunk_overlap != CHUNK_OVERLAP {
        return bad(format!(
            "chunking {}/{} (this build uses {CHUNK_BYTES}/{CHUNK_OVERLAP})",
            m.chunk_bytes, m.chunk_overlap
        ));
    }
    if m.dense_names != dense_names() || m.dense_weights.len() != m.dense_names.len() {
        return bad(
            "dense inputs differ from this build's heuristic factors; retrain with `secureinfer train`"
                .to_string(),
        );
    }
    let finite =
        m.scale.is_finite() && m.bias.is_finite() && m.dense_weights.iter().all(|w| w.is_finite());
    if !finite || !m.calibration.valid() {
        return bad("non-finite weights or unordered calibration".to_string());
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
