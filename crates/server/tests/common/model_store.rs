//! Throwaway model stores for the integrity tests: an Ollama layout (manifest + blobs) and a
//! plain model directory, with the aggregate hash computed here from its definition
//! (docs/model-integrity.md), independently of the library under test.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const MODEL_NAME: &str = "tiny:1b";

pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA-256 over the sorted `"<hex>  <name>\n"` lines, as `sha256sum | LC_ALL=C sort | sha256sum`.
pub fn aggregate(files: &[(&str, &[u8])]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|(name, data)| format!("{}  {name}\n", sha(data)))
        .collect();
    lines.sort();
    sha(lines.concat().as_bytes())
}

pub struct OllamaStore {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Aggregate hash of `tiny:1b`.
    pub aggregate: String,
    /// The GGUF blob of `tiny:1b`.
    pub gguf_blob: PathBuf,
    pub gguf_hex: String,
}

pub const CONFIG: &[u8] = br#"{"model_format":"gguf"}"#;
pub const TEMPLATE: &[u8] = b"{{ .Prompt }}";

pub fn gguf(seed: u8) -> Vec<u8> {
    let mut v = b"GGUF\x03\x00\x00\x00".to_vec();
    v.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed));
    v
}

/// Writes one model (config, GGUF, template) under `root` as `library/<name>:<tag>`.
pub fn add_model(root: &Path, name: &str, tag: &str, weights: &[u8]) {
    let blobs = root.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descs = Vec::new();
    for (media, data) in [
        ("application/vnd.docker.container.image.v1+json", CONFIG),
        ("application/vnd.ollama.image.model", weights),
        ("application/vnd.ollama.image.template", TEMPLATE),
    ] {
        let hex = sha(data);
        std::fs::write(blobs.join(format!("sha256-{hex}")), data).unwrap();
        descs.push(serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": data.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descs[0],
        "layers": descs[1..],
    });
    let dir = root.join("manifests/registry.ollama.ai/library").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(tag), serde_json::to_vec(&manifest).unwrap()).unwrap();
}

pub fn manifest(root: &Path, name: &str, tag: &str) -> PathBuf {
    root.join("manifests/registry.ollama.ai/library")
        .join(name)
        .join(tag)
}

/// A store holding `tiny:1b` (and `other:latest`, for re-pointing).
pub fn ollama_store() -> OllamaStore {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let weights = gguf(0);
    add_model(&root, "tiny", "1b", &weights);
    add_model(&root, "other", "latest", &gguf(0x5a));
    let names: Vec<(String, &[u8])> = [CONFIG, weights.as_slice(), TEMPLATE]
        .into_iter()
        .map(|d| (format!("sha256-{}", sha(d)), d))
        .collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let gguf_hex = sha(&weights);
    OllamaStore {
        aggregate: aggregate(&files),
        gguf_blob: root.join("blobs").join(format!("sha256-{gguf_hex}")),
        gguf_hex,
        root,
        _dir: dir,
    }
}

pub fn flip_byte(path: &Path, at: usize) {
    let mut d = std::fs::read(path).unwrap();
    d[at] ^= 0x01;
    std::fs::write(path, d).unwrap();
}

/// A fixed P-256 key pair, generated for these tests only (never used to sign anything real).
pub const TEST_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghQH+YUu1ka7TqwdW
Yt2imPgmBpu/1PSa6wOS2QrNDLyhRANCAAQVVbahNz2Euf/vXTBr0yO3puE/toKv
ZBE1ncIapcoAfc1Hb1RioM/c7HvhgdzBEhkPf6jTeP0LbFccOKRWWKJ0
-----END PRIVATE KEY-----
";
pub const TEST_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFVW2oTc9hLn/710wa9Mjt6bhP7aC
r2QRNZ3CGqXKAH3NR29UYqDP3Ox74YHcwRIZD3+o03j9C2xXHDikVliidA==
-----END PUBLIC KEY-----
";

/// Writes the test key pair into `dir`; returns (private, public) paths.
pub fn keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let (sk, pk) = (dir.join("signer.key"), dir.join("signer.pub"));
    std::fs::write(&sk, TEST_PRIVATE_KEY).unwrap();
    std::fs::write(&pk, TEST_PUBLIC_KEY).unwrap();
    (sk, pk)
}

/// A model directory as vLLM loads it; returns its path.
pub fn model_dir(parent: &Path) -> PathBuf {
    let root = parent.join("my-model");
    std::fs::create_dir_all(root.join("tokenizer")).unwrap();
    std::fs::write(root.join("model.safetensors"), vec![7u8; 100_000]).unwrap();
    std::fs::write(root.join("config.json"), br#"{"architectures":["Tiny"]}"#).unwrap();
    std::fs::write(root.join("tokenizer/tokenizer.json"), b"{}").unwrap();
    root
}
