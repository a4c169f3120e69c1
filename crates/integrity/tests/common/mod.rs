//! Builders for throwaway Ollama stores, model directories and EC keys.
// Test helpers: a failed setup step should abort the test loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::OsRng;
use secureinfer_integrity::{ModelSource, VerificationReport, VerifyOptions};
use sha2::{Digest, Sha256};

pub const MODEL_TYPE: &str = "application/vnd.ollama.image.model";

pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Writes blobs and a manifest under `root` and returns the manifest path.
/// `layers` are (mediaType, content); the first is used as the config.
pub fn add_model(root: &Path, manifest_rel: &str, layers: &[(&str, &[u8])]) -> PathBuf {
    let mut descs = Vec::new();
    for (media, data) in layers {
        let hex = sha(data);
        write(&root.join("blobs").join(format!("sha256-{hex}")), data);
        descs.push(serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": data.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descs[0],
        "layers": descs[1..],
    });
    let path = root.join("manifests").join(manifest_rel);
    write(&path, serde_json::to_string(&manifest).unwrap().as_bytes());
    path
}

pub const GGUF: &[u8] = b"GGUF\x03\x00\x00\x00 pretend weights for a tiny test model";

/// A store holding `registry.ollama.ai/library/tiny:latest`.
pub fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let m = add_model(
        &root,
        "registry.ollama.ai/library/tiny/latest",
        &[
            (
                "application/vnd.docker.container.image.v1+json",
                br#"{"model_format":"gguf"}"#,
            ),
            (MODEL_TYPE, GGUF),
            ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
        ],
    );
    (dir, m)
}

pub fn blob_path(root: &Path, data: &[u8]) -> PathBuf {
    root.join("blobs").join(format!("sha256-{}", sha(data)))
}

/// A model directory with nested files, as vLLM would load.
pub fn model_dir(parent: &Path) -> PathBuf {
    let root = parent.join("my-model");
    write(&root.join("model.safetensors"), &vec![7u8; 300_000]);
    write(&root.join("config.json"), br#"{"architectures":["Tiny"]}"#);
    write(&root.join("tokenizer/tokenizer.json"), b"{}");
    write(&root.join("a-b"), b"sorts differently from a/ as a string");
    write(&root.join("empty.txt"), b"");
    root
}

pub enum Curve {
    P256,
    P384,
}

/// Writes a fresh PKCS#8 private key and SPKI public key; returns their paths.
pub fn keypair(dir: &Path, curve: Curve, stem: &str) -> (PathBuf, PathBuf) {
    let (sk, pk) = match curve {
        Curve::P256 => {
            let k = p256::ecdsa::SigningKey::random(&mut OsRng);
            (
                k.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
                k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            )
        }
        Curve::P384 => {
            let k = p384::ecdsa::SigningKey::random(&mut OsRng);
            (
                k.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
                k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            )
        }
    };
    let skp = dir.join(format!("{stem}.key.pem"));
    let pkp = dir.join(format!("{stem}.pub.pem"));
    write(&skp, sk.as_bytes());
    write(&pkp, pk.as_bytes());
    (skp, pkp)
}

pub fn opts(source: ModelSource) -> VerifyOptions {
    VerifyOptions {
        source,
        expected_hash: None,
        signature: None,
        public_key: None,
        require_signature: false,
        allowlist: None,
    }
}

pub fn run(o: &VerifyOptions) -> VerificationReport {
    secureinfer_integrity::verify(o, &|_, _| {})
}

pub fn ollama(root: &Path, model: &str) -> ModelSource {
    ModelSource::OllamaStore {
        models_dir: root.to_path_buf(),
        model: model.to_owned(),
    }
}

pub fn flip_byte(path: &Path, at: usize) {
    let mut d = std::fs::read(path).unwrap();
    d[at] ^= 0x01;
    std::fs::write(path, d).unwrap();
}

pub fn has_failure(r: &VerificationReport, path_part: &str, reason_part: &str) -> bool {
    r.failures
        .iter()
        .any(|f| f.path.contains(path_part) && f.reason.contains(reason_part))
}

/// Runs a shell pipeline, or returns None when its tools are missing.
pub fn shell(script: &str, cwd: &Path) -> Option<String> {
    for tool in ["sha256sum", "sort", "find", "xargs"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipping pipeline check: `{tool}` is not available");
            return None;
        }
    }
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pipeline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}
