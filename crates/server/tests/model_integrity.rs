#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Model integrity through the gateway: verify on start, refusal (503) in enforce mode,
//! reporting in /health and /v1/security/verify, admin re-checks, periodic re-checks,
//! security events, signatures, and configuration errors.

mod common;

use std::time::{Duration, Instant};

use common::model_store::{
    MODEL_NAME, OllamaStore, flip_byte, keypair, manifest, model_dir, ollama_store, sha,
};
use common::{ADMIN_KEY, Gateway, chat, expect_error, gateway};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_secureinfer");

/// A gateway serving `tiny:1b` from `store`, with `extra` settings.
async fn gw(store: &OllamaStore, extra: &[(&str, &str)]) -> Gateway {
    let root = store.root.display().to_string();
    let mut vars = vec![("MODEL_NAME", MODEL_NAME), ("OLLAMA_MODELS", root.as_str())];
    vars.extend_from_slice(extra);
    gateway(&vars).await
}

fn chat_tiny() -> Value {
    let mut body = chat("What is 6 * 7?");
    body["model"] = json!(MODEL_NAME);
    body
}

async fn verify_get(g: &Gateway, key: &str) -> Value {
    let resp = g
        .get("/v1/security/verify", Some(key))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn verify_now(g: &Gateway) -> Value {
    let resp = g
        .post("/v1/security/verify", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn health(g: &Gateway) -> (u16, Value) {
    let resp = g.get("/health", None).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn integrity_events(g: &Gateway, key: &str) -> Vec<Value> {
    let resp = g
        .get("/v1/security/events?type=model_integrity", Some(key))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["data"].as_array().unwrap().clone()
}

fn names(v: &Value, part: &str) -> bool {
    v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"].as_str().unwrap().contains(part))
}

#[tokio::test]
async fn untouched_model_verifies_at_start_and_is_served() {
    let store = ollama_store();
    let g = gw(&store, &[("MODEL_EXPECTED_HASH", &store.aggregate)]).await;

    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["status"], "valid", "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["trigger"], "start");
    assert_eq!(v["digest"], store.aggregate.as_str());
    assert_eq!(v["model"], "registry.ollama.ai/library/tiny:1b");
    assert_eq!(v["files"], 3);
    assert_eq!(v["failures"], json!([]));
    assert_eq!(v["mode"], "monitor", "development defaults to monitor");
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("aggregate hash matches")
    );

    let (status, h) = health(&g).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["checks"]["model_integrity"], true);
    assert_eq!(h["model_integrity"]["digest"], store.aggregate.as_str());

    assert_eq!(g.chat(&chat_tiny()).await.status(), 200);
}

#[tokio::test]
async fn tampered_blob_at_start_refuses_inference_in_enforce_mode() {
    let store = ollama_store();
    flip_byte(&store.gguf_blob, 5000);
    let g = gw(
        &store,
        &[
            ("MODEL_EXPECTED_HASH", &store.aggregate),
            ("MODEL_INTEGRITY_MODE", "enforce"),
        ],
    )
    .await;

    let err = expect_error(
        g.chat(&chat_tiny()).await,
        503,
        Some("model_integrity_failed"),
    )
    .await;
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(&store.gguf_hex), "names the blob: {msg}");
    assert!(msg.contains("tampered or corrupted"), "{msg}");
    assert!(msg.contains("Inference is refused"), "{msg}");
    assert_eq!(err["type"], "server_error");

    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["serving"], false);
    assert!(names(&v, &store.gguf_hex), "{v}");
    assert_eq!(v["digest"], Value::Null, "a broken model has no aggregate");

    let (status, h) = health(&g).await;
    assert_eq!(status, 503);
    assert_eq!(h["status"], "unhealthy");
    assert_eq!(h["checks"]["model_integrity"], false);
    assert_eq!(h["checks"]["upstream"], true);

    // Non-inference routes keep working.
    let resp = g.get("/v1/models", Some(&g.key)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn runtime_swap_is_found_by_an_admin_check_recorded_once_and_recovers() {
    let store = ollama_store();
    let g = gw(
        &store,
        &[
            ("MODEL_EXPECTED_HASH", &store.aggregate),
            ("MODEL_INTEGRITY_MODE", "enforce"),
        ],
    )
    .await;
    assert_eq!(g.chat(&chat_tiny()).await.status(), 200);

    // Only the admin may make the gateway re-read the model.
    let resp = g
        .post("/v1/security/verify", Some(&g.key))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, Some("admin_key_required")).await;
    let resp = g.post("/v1/security/verify", None).send().await.unwrap();
    expect_error(resp, 401, Some("invalid_api_key")).await;

    flip_byte(&store.gguf_blob, 100);
    // GET shows the cached result: it never hashes.
    assert_eq!(verify_get(&g, &g.key).await["valid"], true);
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["trigger"], "admin");
    assert!(names(&v, &store.gguf_hex), "{v}");
    expect_error(
        g.chat(&chat_tiny()).await,
        503,
        Some("model_integrity_failed"),
    )
    .await;

    // The same failure again: still refused, but no second event.
    verify_now(&g).await;
    let events = integrity_events(&g, ADMIN_KEY).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "model_integrity");
    assert_eq!(e["tenant_id"], Value::Null);
    assert_eq!(e["decision"], "block");
    assert_eq!(e["enforced"], true);
    assert_eq!(e["detail"]["trigger"], "admin");
    assert!(
        e["detail"]["failures"][0]["path"]
            .as_str()
            .unwrap()
            .contains(&store.gguf_hex)
    );
    // A gateway-wide event is not a tenant's data.
    assert!(integrity_events(&g, &g.key).await.is_empty());

    flip_byte(&store.gguf_blob, 100);
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["checks_total"], 4);
    assert_eq!(v["failed_checks_total"], 2);
    assert_eq!(g.chat(&chat_tiny()).await.status(), 200);
    assert_eq!(health(&g).await.0, 200);
}

#[tokio::test]
async fn monitor_mode_keeps_serving_but_reports_and_records() {
    let store = ollama_store();
    flip_byte(&store.gguf_blob, 0);
    // No pin: the blob's own digest catches the edit.
    let g = gw(&store, &[("MODEL_VERIFY_ON_START", "true")]).await;

    assert_eq!(g.chat(&chat_tiny()).await.status(), 200);
    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["serving"], true);
    assert_eq!(v["mode"], "monitor");
    let (status, h) = health(&g).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["checks"]["model_integrity"], false);
    let events = integrity_events(&g, ADMIN_KEY).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["decision"], "warn");
    assert_eq!(events[0]["enforced"], false);
    assert_eq!(events[0]["detail"]["trigger"], "start");
}

#[tokio::test]
async fn re_pointed_tag_passes_self_checks_but_fails_the_pin() {
    let store = ollama_store();
    let g = gw(
        &store,
        &[
            ("MODEL_EXPECTED_HASH", &store.aggregate),
            ("MODEL_INTEGRITY_MODE", "enforce"),
        ],
    )
    .await;
    std::fs::copy(
        manifest(&store.root, "other", "latest"),
        manifest(&store.root, "tiny", "1b"),
    )
    .unwrap();
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], false);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("does not match the expected hash"), "{msg}");
    assert_ne!(v["digest"], store.aggregate.as_str());
    expect_error(
        g.chat(&chat_tiny()).await,
        503,
        Some("model_integrity_failed"),
    )
    .await;
}

#[tokio::test]
async fn wrong_pin_fails_and_manifest_digest_is_accepted_as_a_pin() {
    let store = ollama_store();
    let wrong = format!("sha256:{}", "AB".repeat(32));
    let g = gw(&store, &[("MODEL_EXPECTED_HASH", &wrong)]).await;
    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["valid"], false);
    assert!(
        v["message"].as_str().unwrap().contains(&"ab".repeat(32)),
        "the pin is normalised to lower case: {v}"
    );

    let manifest_digest = sha(&std::fs::read(manifest(&store.root, "tiny", "1b")).unwrap());
    let g = gw(&store, &[("MODEL_EXPECTED_HASH", &manifest_digest)]).await;
    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["manifest_digest"], manifest_digest.as_str());
}

#[tokio::test]
async fn interval_re_verification_notices_a_swap() {
    let store = ollama_store();
    let g = gw(
        &store,
        &[
            ("MODEL_EXPECTED_HASH", &store.aggregate),
            ("MODEL_VERIFY_INTERVAL", "50ms"),
            ("MODEL_INTEGRITY_MODE", "enforce"),
        ],
    )
    .await;
    assert_eq!(verify_get(&g, &g.key).await["valid"], true);
    flip_byte(&store.gguf_blob, 7);
    // Poll the observable result until a periodic check has seen the change.
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = verify_get(&g, &g.key).await;
        if v["valid"] == false {
            break v;
        }
        assert!(Instant::now() < deadline, "no periodic check noticed: {v}");
        // Polling interval only; the loop waits on the observable result, not on this.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(v["trigger"], "interval");
    assert_eq!(v["interval_seconds"], 0.05);
    expect_error(
        g.chat(&chat_tiny()).await,
        503,
        Some("model_integrity_failed"),
    )
    .await;
}

/// Runs `secureinfer model …` as an operator would.
fn model_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .arg("model")
        .args(args)
        .env_remove("OLLAMA_MODELS")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn signed_model_directory_verifies_and_an_extra_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = model_dir(dir.path());
    let (sk, pk) = keypair(dir.path());
    let sig = dir.path().join("my-model.sig");
    let (code, out) = model_cli(&[
        "sign",
        root.to_str().unwrap(),
        "--private-key",
        sk.to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");

    let (root_s, sig_s, pk_s) = (
        root.display().to_string(),
        sig.display().to_string(),
        pk.display().to_string(),
    );
    let vars = [
        ("MODEL_PATH", root_s.as_str()),
        ("MODEL_SIGNATURE", sig_s.as_str()),
        ("MODEL_PUBLIC_KEY", pk_s.as_str()),
        ("MODEL_REQUIRE_SIGNATURE", "true"),
        ("MODEL_INTEGRITY_MODE", "enforce"),
    ];
    let g = gateway(&vars).await;
    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["valid"], true, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("signature verified")
    );
    assert_eq!(g.chat(&chat("hi")).await.status(), 200);

    std::fs::write(root.join("backdoor.py"), b"import os").unwrap();
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], false);
    assert!(names(&v, "backdoor.py"), "{v}");
    expect_error(
        g.chat(&chat("hi")).await,
        503,
        Some("model_integrity_failed"),
    )
    .await;
    std::fs::remove_file(root.join("backdoor.py")).unwrap();
    assert_eq!(verify_now(&g).await["valid"], true);

    // A signature edited after signing fails before any hashing.
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    let s = bundle["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = s.into_bytes();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = json!(String::from_utf8(bytes).unwrap());
    std::fs::write(&sig, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(names(&v, "my-model.sig"), "{v}");
}

#[tokio::test]
async fn without_integrity_settings_nothing_is_checked_until_the_admin_asks() {
    let store = ollama_store();
    let g = gw(&store, &[]).await;
    let v = verify_get(&g, &g.key).await;
    assert_eq!(v["status"], "disabled");
    assert_eq!(v["valid"], false);
    assert_eq!(v["checked_at"], Value::Null);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("MODEL_EXPECTED_HASH")
    );
    let (status, h) = health(&g).await;
    assert_eq!(status, 200);
    assert_eq!(h["checks"]["model_integrity"], Value::Null);
    assert_eq!(h["model_integrity"]["status"], "disabled");

    // The admin can still run the per-blob self-check on demand.
    let v = verify_now(&g).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["digest"], store.aggregate.as_str());
    assert_eq!(health(&g).await.1["checks"]["model_integrity"], true);
}

#[tokio::test]
async fn a_missing_key_file_stops_start_up_naming_the_variable() {
    let store = ollama_store();
    let map: std::collections::HashMap<&str, String> = [
        ("UPSTREAM", "mock".to_string()),
        ("DATABASE_URL", "sqlite::memory:".to_string()),
        ("OLLAMA_MODELS", store.root.display().to_string()),
        (
            "MODEL_ALLOWLIST",
            store.root.join("allow.json").display().to_string(),
        ),
        ("MODEL_PUBLIC_KEY", "/nonexistent/signer.pub".to_string()),
    ]
    .into_iter()
    .collect();
    let config = secureinfer::config::Config::from_lookup(&|k| map.get(k).cloned()).unwrap();
    let err = secureinfer::server::build_state(config)
        .await
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("MODEL_PUBLIC_KEY"), "{msg}");
    assert!(msg.contains("/nonexistent/signer.pub"), "{msg}");
}

#[test]
fn invalid_integrity_settings_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("MODEL_EXPECTED_HASH", "abc123")], "MODEL_EXPECTED_HASH"),
        (
            &[("MODEL_EXPECTED_HASH", &"g".repeat(64))],
            "MODEL_EXPECTED_HASH",
        ),
        (&[("MODEL_SIGNATURE", "/m.sig")], "MODEL_PUBLIC_KEY"),
        (&[("MODEL_ALLOWLIST", "/a.json")], "MODEL_PUBLIC_KEY"),
        (
            &[("MODEL_REQUIRE_SIGNATURE", "true")],
            "MODEL_REQUIRE_SIGNATURE",
        ),
        (
            &[("MODEL_REQUIRE_SIGNATURE", "maybe")],
            "MODEL_REQUIRE_SIGNATURE",
        ),
        (
            &[
                ("MODEL_PATH", "/models/m"),
                ("MODEL_ALLOWLIST", "/a.json"),
                ("MODEL_PUBLIC_KEY", "/k.pub"),
            ],
            "MODEL_ALLOWLIST",
        ),
        (
            &[("MODEL_VERIFY_INTERVAL", "often")],
            "MODEL_VERIFY_INTERVAL",
        ),
        (
            &[("MODEL_VERIFY_ON_START", "yes please")],
            "MODEL_VERIFY_ON_START",
        ),
        (&[("MODEL_INTEGRITY_MODE", "block")], "MODEL_INTEGRITY_MODE"),
    ];
    for (vars, var) in cases {
        let lookup = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        let err = secureinfer::config::Config::from_lookup(&lookup).unwrap_err();
        assert_eq!(err.var, *var, "{vars:?}: {err}");
    }
    // Defaults: pinning turns on the start-up check; production enforces.
    let pinned = [(
        "MODEL_EXPECTED_HASH",
        "sha256:".to_string() + &"A".repeat(64),
    )];
    let config = secureinfer::config::Config::from_lookup(&|k| {
        pinned.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    assert!(config.integrity.verify_on_start);
    assert_eq!(config.integrity.expected_hash, Some("a".repeat(64)));
    let prod = [
        ("SECUREINFER_ENV", "production"),
        ("ADMIN_API_KEY", common::ADMIN_KEY),
    ];
    let config = secureinfer::config::Config::from_lookup(&|k| {
        prod.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    assert!(!config.integrity.verify_on_start);
    assert_eq!(
        config.integrity.mode,
        secureinfer::config::IntegrityMode::Enforce
    );
}
