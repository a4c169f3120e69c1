//! Model integrity for SecureInfer: hashes the model an inference server will
//! load (an Ollama store entry, or GGUF/safetensors files for vLLM and
//! llama.cpp), detects tampering, pins an aggregate hash, and verifies or
//! produces OpenSSF `model_signing` signatures and a signed Ollama allowlist.
//!
//! See `docs/model-integrity.md` for the threat model and the exact,
//! reproducible definition of the aggregate hash.

use std::path::PathBuf;

use serde::Serialize;

mod allowlist;
mod bundle;
pub mod cli;
mod error;
mod hashing;
mod keys;
mod model;
mod ollama;
mod signed;
mod tree;
mod verify;

pub use allowlist::{ALLOWLIST_PAYLOAD_TYPE, AllowedModel, Allowlist, sign_allowlist};
pub use error::IntegrityError;
pub use model::{FileDigest, ModelHash, hash_model};
pub use ollama::ModelRef;
pub use signed::{SignOutcome, sign_path};
pub use verify::verify_ignoring;

/// Where the model lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An Ollama store (`~/.ollama/models` or `$OLLAMA_MODELS`) and a model
    /// name such as `llama3`, `library/llama3:latest` or `myreg.io/ns/m:tag`.
    OllamaStore { models_dir: PathBuf, model: String },
    /// A model file or directory (GGUF, safetensors, ...).
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    pub source: ModelSource,
    /// Aggregate hash to pin (hex, optionally `sha256:`-prefixed). For Ollama
    /// the manifest digest shown by `/api/tags` is accepted as well.
    pub expected_hash: Option<String>,
    /// `model_signing` bundle (Sigstore bundle v0.3 JSON).
    pub signature: Option<PathBuf>,
    /// PEM public key for `signature` and `allowlist`.
    pub public_key: Option<PathBuf>,
    /// Fail unless a signature or allowlist entry verified.
    pub require_signature: bool,
    /// Signed allowlist (Ollama stores only).
    pub allowlist: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerificationReport {
    pub valid: bool,
    pub message: String,
    pub model: String,
    /// Aggregate digest, hex; `None` when some file could not be hashed.
    pub digest: Option<String>,
    /// Ollama only: SHA-256 of the manifest, hex.
    pub manifest_digest: Option<String>,
    pub files: usize,
    pub failures: Vec<FileFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFailure {
    pub path: String,
    pub reason: String,
}

/// Verifies a model as configured. Synchronous (run it on a blocking thread);
/// never panics; every problem, including I/O errors, ends up in the report.
/// `progress(done, total)` is called with hashed byte counts.
pub fn verify(opts: &VerifyOptions, progress: &dyn Fn(u64, u64)) -> VerificationReport {
    verify_ignoring(opts, &[], progress)
}
