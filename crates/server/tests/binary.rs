#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `secureinfer` binary: configuration errors at start-up, graceful shutdown on
//! SIGTERM with a stream in flight, the `tenant` CLI against a running `serve`, model
//! integrity at start-up, `secureinfer model …` and `demo tampering`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ADMIN_KEY, chat, expect_error, stream_chat};
use futures::StreamExt;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secureinfer");

/// A command with a clean environment, run in `dir` (so no stray `.env` is read).
fn cmd(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().current_dir(dir);
    if let Ok(path) = std::env::var("PATH") {
        c.env("PATH", path);
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

fn db_url(dir: &std::path::Path) -> String {
    common::database_url(dir)
}

/// A running `serve`: its URL and the stdout lines printed before the listening line.
struct Served {
    child: Child,
    url: String,
    banner: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Served {
    // A panic before `Served` exists only happens when the child failed to start or print.
    #[allow(clippy::zombie_processes)]
    fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Served {
        let db = db_url(dir);
        let mut all = vec![
            ("API_HOST", "127.0.0.1"),
            ("API_PORT", "0"),
            ("UPSTREAM", "mock"),
            ("MODEL_NAME", common::MODEL),
            ("DATABASE_URL", db.as_str()),
            ("LOG_LEVEL", "info"),
        ];
        all.extend_from_slice(vars);
        let mut child = cmd(dir, &all)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Drain stderr (logs) on a thread so the child never blocks on a full pipe.
        let mut err = child.stderr.take().unwrap();
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("serve did not print its listening line");
            if let Some(url) = line.strip_prefix("secureinfer listening on ") {
                let url = url.trim().to_string();
                return Served {
                    child,
                    url,
                    banner,
                    stderr,
                };
            }
            banner.push(line);
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends SIGTERM and waits for the exit status (callers bound the wait).
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bad_config_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let short_admin = [("ADMIN_API_KEY", "too-short")];
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("API_PORT", "abc")], "API_PORT"),
        (&[("API_PORT", "70000")], "API_PORT"),
        (&[("UPSTREAM", "foo")], "UPSTREAM"),
        (&[("SECUREINFER_ENV", "production")], "ADMIN_API_KEY"),
        (&[("UPSTREAM_TIMEOUT", "soon")], "UPSTREAM_TIMEOUT"),
        (&short_admin, "ADMIN_API_KEY"),
        (&[("MODEL_EXPECTED_HASH", "abc123")], "MODEL_EXPECTED_HASH"),
        (
            &[
                ("MODEL_SIGNATURE", "/missing/m.sig"),
                ("MODEL_PUBLIC_KEY", "/missing/k.pub"),
            ],
            "MODEL_PUBLIC_KEY",
        ),
    ];
    for (vars, name) in cases {
        let mut all = vec![("DATABASE_URL", db.as_str()), ("UPSTREAM", "mock")];
        all.extend_from_slice(vars);
        let out = cmd(dir.path(), &all).arg("serve").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?} started");
        assert!(
            stderr.contains(name),
            "{vars:?}: stderr does not name {name}: {stderr}"
        );
        assert!(
            !stderr.contains("too-short"),
            "a secret was echoed: {stderr}"
        );
    }
    // The same through a flag.
    let out = cmd(dir.path(), &[("DATABASE_URL", &db)])
        .args(["serve", "--upstream", "bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UPSTREAM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &[("MOCK_TOKEN_DELAY", "40ms")]);
    // Development with an empty database: a bootstrap banner with a demo tenant key.
    let key = served
        .banner
        .iter()
        .find(|l| l.contains("tenant \"demo\""))
        .and_then(|l| l.rsplit(' ').next())
        .expect("no demo tenant key in the banner")
        .to_string();
    assert!(served.banner.iter().any(|l| l.contains("admin key")));
    let client = common::client();
    let resp = client
        .post(format!("{}/v1/chat/completions", served.url))
        .bearer_auth(&key)
        .json(&stream_chat("tell me something", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    text.push_str(std::str::from_utf8(&first).unwrap());
    // The stream is in flight (~25 tokens x 40 ms to go): ask the process to stop.
    let finished = tokio::task::spawn_blocking(move || served.terminate());
    while let Some(piece) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("stream stalled after SIGTERM")
    {
        text.push_str(std::str::from_utf8(&piece.unwrap()).unwrap());
    }
    let chunks = common::sse_chunks_done(&text);
    assert!(chunks.len() > 5, "{text}");
    let (status, stderr) = tokio::time::timeout(Duration::from_secs(30), finished)
        .await
        .expect("serve did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

fn tenant_cli(dir: &std::path::Path, args: &[&str]) -> String {
    let db = db_url(dir);
    let out = cmd(dir, &[("DATABASE_URL", &db)])
        .arg("tenant")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tenant {args:?} failed: {stderr}");
    stdout
}

fn key_of(stdout: &str) -> String {
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    v["api_key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_cli_keys_work_against_serve_on_the_same_db() {
    let dir = tempfile::tempdir().unwrap();
    let created = tenant_cli(dir.path(), &["create", "--name", "cli-team"]);
    let key = key_of(&created);
    assert!(key.starts_with("sk-si-"));
    let list = tenant_cli(dir.path(), &["list"]);
    assert!(
        list.contains("cli-team") && !list.contains("sk-si-"),
        "{list}"
    );

    // The CLI writes to the database behind serve's back: serve notices when its cached
    // key row expires (AUTH_CACHE_TTL), not at once as with the admin API.
    let served = Served::start(
        dir.path(),
        &[("ADMIN_API_KEY", ADMIN_KEY), ("AUTH_CACHE_TTL", "200ms")],
    );
    assert!(
        served.banner.is_empty(),
        "no bootstrap with tenants present: {:?}",
        served.banner
    );
    let client = common::client();
    let chat_as = |key: String| {
        let client = client.clone();
        let url = format!("{}/v1/chat/completions", served.url);
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&chat("hi"))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(chat_as(key.clone()).await.status(), 200);
    // Polls until serve refuses `key`; fails if that takes longer than the cache allows.
    let refused_soon = |key: String| {
        let chat_as = &chat_as;
        async move {
            let since = std::time::Instant::now();
            loop {
                let resp = chat_as(key.clone()).await;
                if resp.status() == 401 {
                    return expect_error(resp, 401, Some("invalid_api_key")).await;
                }
                assert_eq!(resp.status(), 200);
                assert!(
                    since.elapsed() < std::time::Duration::from_secs(3),
                    "a key changed at the CLI was still accepted after {:?} (AUTH_CACHE_TTL=200ms)",
                    since.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };

    // Rotation by name at the CLI: old key out, new key in, without restarting serve.
    let rotated = key_of(&tenant_cli(dir.path(), &["rotate-key", "cli-team"]));
    refused_soon(key.clone()).await;
    assert_eq!(chat_as(rotated.clone()).await.status(), 200);

    let revoked = tenant_cli(dir.path(), &["revoke", "cli-team"]);
    assert!(revoked.contains("revoked"), "{revoked}");
    refused_soon(rotated).await;

    // Unknown tenant: a clear error, non-zero exit.
    let out = cmd(dir.path(), &[("DATABASE_URL", &db_url(dir.path()))])
        .args(["tenant", "revoke", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
    drop(served);
}

/// A tenant created through the admin API of a running `serve`; returns its key.
async fn admin_create_tenant(url: &str, name: &str) -> String {
    let resp = common::client()
        .post(format!("{url}/v1/tenants"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["api_key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serve_with_a_tampered_model_refuses_inference_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::model_store::ollama_store();
    common::model_store::flip_byte(&store.gguf_blob, 1234);
    let root = store.root.display().to_string();
    let served = Served::start(
        dir.path(),
        &[
            ("SECUREINFER_ENV", "production"),
            ("ADMIN_API_KEY", ADMIN_KEY),
            ("MODEL_NAME", common::model_store::MODEL_NAME),
            ("OLLAMA_MODELS", &root),
            ("MODEL_EXPECTED_HASH", &store.aggregate),
        ],
    );
    let key = admin_create_tenant(&served.url, "prod-team").await;
    let client = common::client();
    let mut body = chat("hi");
    body["model"] = common::model_store::MODEL_NAME.into();
    let resp = client
        .post(format!("{}/v1/chat/completions", served.url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 503, Some("model_integrity_failed")).await;
    assert!(
        err["message"].as_str().unwrap().contains(&store.gguf_hex),
        "{err}"
    );
    let health = client
        .get(format!("{}/health", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);

    let (status, stderr) = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{stderr}");
    // Production logs are JSON lines; the failure is an error naming the blob and the consequence.
    let line = stderr
        .lines()
        .find(|l| l.contains("model integrity check failed"))
        .unwrap_or_else(|| panic!("no integrity error in the log: {stderr}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "ERROR");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains(&store.gguf_hex), "{msg}");
    assert!(msg.contains("refusing inference"), "{msg}");
}

/// `secureinfer model …` with a clean environment; returns (exit code, stdout).
fn model_cli(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = cmd(dir, &[]).arg("model").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn model_cli_hashes_and_verifies_an_ollama_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::model_store::ollama_store();
    let root = store.root.display().to_string();
    let target = ["--ollama-models", root.as_str(), "--model", "tiny:1b"];

    let (code, out) = model_cli(dir.path(), &[&["hash"][..], &target].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("aggregate: {}", store.aggregate)),
        "{out}"
    );

    let verify = [
        &["verify"][..],
        &target,
        &["--expected-hash", &store.aggregate],
    ]
    .concat();
    let (code, out) = model_cli(dir.path(), &verify);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VALID"), "{out}");

    common::model_store::flip_byte(&store.gguf_blob, 9);
    let (code, out) = model_cli(dir.path(), &verify);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("INVALID"), "{out}");
    assert!(
        out.contains(&format!("FAIL blobs/sha256-{}", store.gguf_hex)),
        "{out}"
    );

    let (code, _) = model_cli(dir.path(), &["verify", "/nonexistent/model"]);
    assert_eq!(code, 2);
}

#[test]
fn demo_tampering_shows_every_step_as_described() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path(), &[])
        .args(["demo", "tampering"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    for step in [
        "✓ the untouched model verifies",
        "✓ inference is refused with 503 model_integrity_failed",
        "✓ the model verifies and inference resumes",
        "✓ against the pinned hash the swapped model fails",
        "All steps behaved as described",
    ] {
        assert!(stdout.contains(step), "missing {step:?}: {stdout}");
    }
}
