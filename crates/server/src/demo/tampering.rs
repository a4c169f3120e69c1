//! The model-tampering demo: a throwaway Ollama store, a gateway that pins its model's hash,
//! then two attacks. A byte flipped in the weights (a runtime swap) and a tag re-pointed at
//! another model's blobs (a store that is consistent with itself). The gateway refuses
//! inference after each one and serves again once the model is back.
//!
//! Every step checks what it shows; the demo exits 1 if the gateway did not behave as
//! described, so it doubles as an end-to-end check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use secrecy::ExposeSecret;
use secureinfer_integrity::{ModelSource, hash_model};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DemoGateway, client, start_gateway};
use crate::auth::keys;
use crate::config::SecurityMode;

const MODEL: &str = "tinyllama:1.1b";
const OTHER: &str = "evil:latest";
/// Big enough that hashing is visible work, small enough for a demo (4 MiB).
const WEIGHTS_BYTES: usize = 4 << 20;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic filler standing in for GGUF weights (xorshift; no randomness needed).
fn weights(seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(WEIGHTS_BYTES + 8);
    out.extend_from_slice(b"GGUF\x03\x00\x00\x00");
    let mut x = seed | 1;
    while out.len() < WEIGHTS_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(WEIGHTS_BYTES);
    out
}

/// Writes the blobs and the manifest of one model, as `ollama pull` leaves them.
/// Returns the path of the GGUF blob.
fn add_model(root: &Path, name: &str, tag: &str, gguf: &[u8]) -> anyhow::Result<PathBuf> {
    let config = format!(r#"{{"model_format":"gguf","model_family":"{name}"}}"#);
    let layers: [(&str, &[u8]); 3] = [
        (
            "application/vnd.docker.container.image.v1+json",
            config.as_bytes(),
        ),
        ("application/vnd.ollama.image.model", gguf),
        ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
    ];
    let blobs = root.join("blobs");
    std::fs::create_dir_all(&blobs)?;
    let mut descs = Vec::new();
    for (media, data) in layers {
        let hex = sha(data);
        std::fs::write(blobs.join(format!("sha256-{hex}")), data)?;
        descs.push(
            json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": data.len()}),
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descs[0],
        "layers": descs[1..],
    });
    let dir = root.join("manifests/registry.ollama.ai/library").join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(tag), serde_json::to_vec(&manifest)?)?;
    Ok(blobs.join(format!("sha256-{}", sha(gguf))))
}

fn manifest_path(root: &Path, name: &str, tag: &str) -> PathBuf {
    root.join("manifests/registry.ollama.ai/library")
        .join(name)
        .join(tag)
}

fn flip_byte(path: &Path, at: u64) -> anyhow::Result<()> {
    let mut data = std::fs::read(path)?;
    let i = usize::try_from(at).context("offset")?;
    let b = data.get_mut(i).context("offset beyond the file")?;
    *b ^= 0x01;
    std::fs::write(path, data)?;
    Ok(())
}

/// Counts expectations; the exit code says whether they all held.
struct Expect {
    failed: Vec<String>,
}

impl Expect {
    fn check(&mut self, ok: bool, what: &str) {
        println!("    {} {what}", if ok { "✓" } else { "✗ UNEXPECTED:" });
        if !ok {
            self.failed.push(what.to_string());
        }
    }
}

struct Demo {
    http: std::sync::Arc<reqwest::Client>,
    gw: DemoGateway,
    admin: String,
}

impl Demo {
    async fn chat(&self) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}/v1/chat/completions", self.gw.url))
            .bearer_auth(&self.gw.key)
            .json(&json!({"model": MODEL, "max_tokens": 20,
                "messages": [{"role": "user", "content": "What is 6 * 7?"}]}))
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    async fn verify_now(&self) -> anyhow::Result<Value> {
        let v = self
            .http
            .post(format!("{}/v1/security/verify", self.gw.url))
            .bearer_auth(&self.admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v)
    }

    async fn health(&self) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .get(format!("{}/health", self.gw.url))
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    async fn integrity_events(&self) -> anyhow::Result<usize> {
        let v: Value = self
            .http
            .get(format!(
                "{}/v1/security/events?type=model_integrity",
                self.gw.url
            ))
            .bearer_auth(&self.admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["data"].as_array().map_or(0, Vec::len))
    }
}

fn show_verify(v: &Value) {
    println!(
        "    POST /v1/security/verify → valid={} status={}",
        v["valid"], v["status"]
    );
    for f in v["failures"].as_array().into_iter().flatten() {
        println!(
            "      failure: {}: {}",
            f["path"].as_str().unwrap_or("?"),
            f["reason"].as_str().unwrap_or("?")
        );
    }
}

fn show_chat(status: u16, body: &Value) {
    match status {
        200 => println!(
            "    chat → 200: {}",
            body.pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        s => println!(
            "    chat → {s} {}: {}",
            body.pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or(""),
            body.pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store = dir.path().join("models");
    let gguf = weights(0x5eed);
    let blob = add_model(&store, "tinyllama", "1.1b", &gguf)?;
    add_model(&store, "evil", "latest", &weights(0xbad))?;
    let mut expect = Expect { failed: Vec::new() };

    println!("Model tampering demo (a throwaway Ollama store; the mock upstream answers)\n");
    println!("1. The store at {}", store.display());
    println!(
        "   holds {MODEL} and {OTHER}; each is a manifest naming config, GGUF and template blobs."
    );
    let source = ModelSource::OllamaStore {
        models_dir: store.clone(),
        model: MODEL.into(),
    };
    let pinned = hash_model(&source, &[], &|_, _| {})?
        .digest
        .context("the fresh store failed its own checks")?;
    println!(
        "   `secureinfer model hash --ollama-models … --model {MODEL}` gives the value to pin:"
    );
    println!("   MODEL_EXPECTED_HASH={pinned}\n");

    let admin = keys::generate().key.expose_secret().to_string();
    let store_str = store.display().to_string();
    let gw = start_gateway(
        SecurityMode::Enforce,
        &[
            ("MODEL_NAME", MODEL),
            ("OLLAMA_MODELS", &store_str),
            ("MODEL_EXPECTED_HASH", &pinned),
            ("MODEL_INTEGRITY_MODE", "enforce"),
            ("ADMIN_API_KEY", &admin),
        ],
    )
    .await?;
    let demo = Demo {
        http: client()?,
        gw,
        admin,
    };
    println!(
        "2. A gateway at {} verified the model before it started listening.",
        demo.gw.url
    );
    let v: Value = demo
        .http
        .get(format!("{}/v1/security/verify", demo.gw.url))
        .bearer_auth(&demo.gw.key)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "    GET /v1/security/verify → valid={} digest={}",
        v["valid"],
        v["digest"].as_str().unwrap_or("-")
    );
    expect.check(v["valid"] == true, "the untouched model verifies");
    let (status, body) = demo.chat().await?;
    show_chat(status, &body);
    expect.check(status == 200, "inference is served");

    let offset = (gguf.len() / 2) as u64;
    println!(
        "\n3. Runtime swap: someone with disk access flips one bit at byte {offset} of the GGUF blob."
    );
    flip_byte(&blob, offset)?;
    println!("   Ollama would not notice: it checks digests only when pulling.");
    let v = demo.verify_now().await?;
    show_verify(&v);
    let names_blob = v["failures"].as_array().is_some_and(|fs| {
        fs.iter().any(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.contains(&sha(&gguf)[..16]))
        })
    });
    expect.check(
        v["valid"] == false && names_blob,
        "verification fails, naming the GGUF blob",
    );
    let (status, body) = demo.chat().await?;
    show_chat(status, &body);
    expect.check(
        status == 503 && body.pointer("/error/code") == Some(&json!("model_integrity_failed")),
        "inference is refused with 503 model_integrity_failed",
    );
    let (hs, h) = demo.health().await?;
    println!(
        "    GET /health → {hs} status={} checks.model_integrity={}",
        h["status"], h["checks"]["model_integrity"]
    );
    expect.check(
        hs == 503,
        "/health reports unhealthy (a load balancer stops routing here)",
    );
    let events = demo.integrity_events().await?;
    expect.check(
        events == 1,
        "one model_integrity security event is recorded",
    );

    println!(
        "\n4. The operator restores the file (here: flips the bit back) and asks for a check."
    );
    flip_byte(&blob, offset)?;
    let v = demo.verify_now().await?;
    show_verify(&v);
    let (status, body) = demo.chat().await?;
    show_chat(status, &body);
    expect.check(
        v["valid"] == true && status == 200,
        "the model verifies and inference resumes",
    );

    println!(
        "\n5. Tag re-pointing: the {MODEL} manifest is replaced by the one of {OTHER}, as a re-pull from a compromised registry would do."
    );
    std::fs::copy(
        manifest_path(&store, "evil", "latest"),
        manifest_path(&store, "tinyllama", "1.1b"),
    )?;
    let unpinned = secureinfer_integrity::verify(
        &secureinfer_integrity::VerifyOptions {
            source: source.clone(),
            expected_hash: None,
            signature: None,
            public_key: None,
            require_signature: false,
            allowlist: None,
        },
        &|_, _| {},
    );
    println!(
        "    without a pinned hash: valid={} ({})",
        unpinned.valid, unpinned.message
    );
    expect.check(
        unpinned.valid,
        "every blob still matches its own digest: only a pin or a signature can tell",
    );
    let v = demo.verify_now().await?;
    show_verify(&v);
    expect.check(
        v["valid"] == false,
        "against the pinned hash the swapped model fails",
    );
    let (status, body) = demo.chat().await?;
    show_chat(status, &body);
    expect.check(status == 503, "inference is refused again");
    let events = demo.integrity_events().await?;
    expect.check(
        events == 2,
        "a second security event (a different failure) is recorded",
    );

    println!();
    if expect.failed.is_empty() {
        println!(
            "All steps behaved as described. Try it on a real store: docs/model-integrity.md, \"Exercise\"."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} step(s) did not behave as described:",
            expect.failed.len()
        );
        for f in &expect.failed {
            println!("  - {f}");
        }
        Ok(ExitCode::from(1))
    }
}
