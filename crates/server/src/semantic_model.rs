//! Reads the semantic tier's files from SEMANTIC_MODEL_DIR (once, at start-up) and hands
//! their bytes to the pure `secureinfer-semantic` crate.
//!
//! The directory holds what `scripts/fetch-minilm.sh` unpacks: `config.json`,
//! `tokenizer.json`, `model.safetensors`. A head trained by `secureinfer train-semantic` and
//! saved there as `secureinfer-head.bin` replaces the head built into the binary.

use std::path::Path;

use secureinfer_semantic::{Encoder, Head, SemanticDetector};

/// File name of an operator-trained head inside the model directory.
pub const HEAD_FILE: &str = "secureinfer-head.bin";

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// The encoder alone (training needs it before there is a head).
pub fn load_encoder(dir: &Path) -> Result<Encoder, String> {
    let config = read(dir, "config.json")?;
    let tokenizer = read(dir, "tokenizer.json")?;
    let weights = read(dir, "model.safetensors")?;
    Encoder::from_bytes(&config, &tokenizer, weights).map_err(|e| e.to_string())
}

/// Encoder plus head: the operator's head file when present, else the built-in one.
pub fn load(dir: &Path) -> Result<SemanticDetector, String> {
    let encoder = load_encoder(dir)?;
    let head_path = dir.join(HEAD_FILE);
    let head = if head_path.exists() {
        let bytes = read(dir, HEAD_FILE)?;
        Head::from_bytes(&bytes).map_err(|e| format!("{}: {e}", head_path.display()))?
    } else {
        Head::builtin().map_err(|e| format!("built-in semantic head: {e}"))?
    };
    SemanticDetector::new(encoder, head).map_err(|e| e.to_string())
}
