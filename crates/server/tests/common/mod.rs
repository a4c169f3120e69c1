//! Shared helpers for the gateway's integration tests: an in-process gateway on 127.0.0.1:0
//! with a fresh SQLite file and one tenant, request builders, and OpenAI-shape assertions.
#![allow(dead_code)]

pub mod certs;
pub mod delay_proxy;
pub mod fake;
pub mod limits;
pub mod model_store;
pub mod pg;
pub mod process;
pub mod prom;
pub mod redis;

use std::collections::HashMap;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

#[allow(unused_imports)]
pub use fake::{Behaviour, Fake};

/// A 40-character admin key (the config demands at least 32).
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";
pub const MODEL: &str = "test-model";

pub struct Gateway {
    pub url: String,
    pub key: String,
    pub tenant_id: String,
    pub client: reqwest::Client,
    /// The gateway's database, for tests that act like the operator's CLI.
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The database a test gateway in `dir` uses: a SQLite file there, or with
/// `SECUREINFER_TEST_DATABASE=postgres` a fresh database on the test PostgreSQL server.
/// Calling it twice with the same `dir` names the same database.
pub fn database_url(dir: &std::path::Path) -> String {
    if !pg::suite_uses_postgres() {
        return format!("sqlite://{}/gw.db", dir.display());
    }
    static BY_DIR: std::sync::Mutex<Vec<(std::path::PathBuf, String)>> =
        std::sync::Mutex::new(Vec::new());
    let mut known = BY_DIR.lock().unwrap();
    if let Some((_, url)) = known.iter().find(|(d, _)| d == dir) {
        return url.clone();
    }
    let url = pg::fresh_database();
    known.push((dir.to_path_buf(), url.clone()));
    url
}

/// A database nobody else uses, for tests without a directory of their own.
pub fn scratch_database_url() -> String {
    if pg::suite_uses_postgres() {
        pg::fresh_database()
    } else {
        "sqlite::memory:".to_string()
    }
}

/// Gateway state on database `db`: development mode, the mock upstream, the test admin key,
/// then `vars` on top.
async fn state_on(db: &str, vars: &[(&str, &str)]) -> secureinfer::app::AppState {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in [
        ("SECUREINFER_ENV", "development"),
        ("LOG_LEVEL", "warn"),
        ("DATABASE_URL", db),
        ("ADMIN_API_KEY", ADMIN_KEY),
        ("UPSTREAM", "mock"),
        ("MODEL_NAME", MODEL),
        ("UPSTREAM_TIMEOUT", "5s"),
    ] {
        map.insert(k.into(), v.into());
    }
    for (k, v) in vars {
        map.insert((*k).into(), (*v).into());
    }
    let config = secureinfer::config::Config::from_lookup(&|k| map.get(k).cloned()).unwrap();
    secureinfer::server::build_state(config).await.unwrap()
}

/// Starts the real router in-process. `vars` override the defaults (mock upstream, dev mode).
pub async fn gateway(vars: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let state = state_on(&db, vars).await;
    let generated = secureinfer::auth::keys::generate();
    let tenant = state
        .store
        .create_tenant("acme", &generated.stored)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = secureinfer::app::router(state);
    // Connect info: the per-IP limit needs the peer address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gateway {
        url,
        key: generated.key.expose_secret().to_string(),
        tenant_id: tenant.id,
        client: client(),
        database_url: db.clone(),
        _dir: dir,
    }
}

/// Another gateway process-alike on the same database as `first` (same tenants and keys), with
/// its own state otherwise: a second replica. `vars` as for [`gateway`].
pub async fn replica_of(first: &Gateway, vars: &[(&str, &str)]) -> Gateway {
    let db = database_url(first._dir.path());
    let state = state_on(&db, vars).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = secureinfer::app::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gateway {
        url,
        key: first.key.clone(),
        tenant_id: first.tenant_id.clone(),
        client: client(),
        database_url: db.clone(),
        _dir: tempfile::tempdir().unwrap(),
    }
}

/// A gateway in front of a fake upstream speaking `kind` ("ollama" or "openai").
pub async fn gateway_for(fake: &Fake, kind: &str, extra: &[(&str, &str)]) -> Gateway {
    let mut vars = vec![("UPSTREAM", kind), ("UPSTREAM_URL", fake.url.as_str())];
    vars.extend_from_slice(extra);
    gateway(&vars).await
}

/// A minimal valid chat request.
pub fn chat(content: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": content}]})
}

pub fn stream_chat(content: &str, include_usage: bool) -> Value {
    let mut body = chat(content);
    body["stream"] = true.into();
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

impl Gateway {
    /// The database URL this gateway uses (SQLite file or PostgreSQL database).
    pub fn db_url(&self) -> String {
        database_url(self._dir.path())
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let rb = self.client.get(format!("{}{path}", self.url));
        match key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    pub fn post(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let rb = self.client.post(format!("{}{path}", self.url));
        match key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// POST /v1/chat/completions with the tenant key.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.chat_as(&self.key, body).await
    }

    pub async fn chat_as(&self, key: &str, body: &Value) -> reqwest::Response {
        self.post("/v1/chat/completions", Some(key))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a tenant through the admin API; returns (id, api key).
    pub async fn create_tenant(&self, name: &str) -> (String, String) {
        let resp = self
            .post("/v1/tenants", Some(ADMIN_KEY))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.unwrap();
        (
            v["tenant"]["id"].as_str().unwrap().to_string(),
            v["api_key"].as_str().unwrap().to_string(),
        )
    }
}

/// Asserts an error response: its status and the OpenAI error shape, with `code` if given.
/// Returns the `error` object.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: Option<&str>) -> Value {
    let got = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    check_error_shape(&v);
    if let Some(code) = code {
        assert_eq!(v["error"]["code"], code, "body: {text}");
    }
    v["error"].clone()
}

/// `{"error":{"message": string, "type": string, "code": string|null, "param": string|null}}`.
pub fn check_error_shape(v: &Value) {
    let e = v.get("error").and_then(Value::as_object);
    let e = e.unwrap_or_else(|| panic!("no error object: {v}"));
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(
        e.contains_key("code") && (e["code"].is_string() || e["code"].is_null()),
        "{v}"
    );
    assert!(
        e.contains_key("param") && (e["param"].is_string() || e["param"].is_null()),
        "{v}"
    );
}

/// The `data:` payloads of a complete SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// The JSON chunks of a complete SSE body, asserting it ends with exactly one `[DONE]`.
pub fn sse_chunks_done(body: &str) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"), "body: {body}");
    data.iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| panic!("bad chunk {d}")))
        .collect()
}

/// Concatenated `delta.content` of chunks.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

/// Chunks with `choices: []` (usage-only chunks).
pub fn usage_chunks(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .filter(|c| c["choices"].as_array().is_some_and(Vec::is_empty))
        .collect()
}

/// A port on loopback that nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
