//! SecureInfer tier-2 prompt-attack detector: a small sentence encoder (all-MiniLM-L6-v2:
//! BERT, 6 layers, 384 dimensions, mean pooling, L2 norm) read in-process with candle, and a
//! logistic head over its embedding trained by `secureinfer train-semantic`.
//!
//! Why a second tier: the first (hashed n-grams) learns words and fragments; an encoder
//! places paraphrases near each other, so an attack worded unlike any training row can still
//! land near the attacks. It costs milliseconds instead of microseconds, so the guard asks it
//! only about prompts the first tier finds borderline (see
//! `secureinfer_guard::classifier::second`).
//!
//! Like the detection core this crate does no I/O: the caller reads the model files and
//! passes their bytes. The encoder is behind the `semantic` cargo feature (off by default);
//! without it the crate holds only the head, its training and its file format.

pub mod head;
pub mod train;

#[cfg(feature = "semantic")]
mod detector;
#[cfg(feature = "semantic")]
pub mod encoder;

#[cfg(feature = "semantic")]
pub use detector::{DetectorError, SemanticDetector};
#[cfg(feature = "semantic")]
pub use encoder::{Encoder, EncoderError};
pub use head::{Head, HeadError, HeadManifest};

/// Embedding width of all-MiniLM-L6-v2.
pub const DIM: usize = 384;
/// Tokens per encoder window, [CLS] and [SEP] included (the model's trained maximum).
pub const CHUNK_TOKENS: usize = 256;
/// Tokens shared by consecutive windows, so a phrase cut by a window edge is whole in one.
pub const CHUNK_OVERLAP: usize = 32;
/// Windows encoded per request at most (16k tokens, about 10 ms each on one core); the rest
/// are counted in `skipped_chunks` and left to the other tiers. Bounds the CPU one request
/// can take.
pub const MAX_CHUNKS: usize = 64;

/// The shipped head (trained by `secureinfer train-semantic`, see docs/detection-quality.md).
pub const BUILTIN_HEAD: &[u8] = include_bytes!("../models/head.bin");
