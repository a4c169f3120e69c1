#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two gateway replicas sharing one database and one real `redis-server` (started by the test
//! on a free port): a tenant's extraction window is one window whichever replica a request
//! reaches, the logprob budget is one budget, and a replica keeps answering (on its own state)
//! while Redis is down.

mod common;

use std::collections::HashMap;

use common::redis::RedisServer;
use common::{ADMIN_KEY, MODEL, client};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Replicas {
    urls: [String; 2],
    key: String,
    tenant_id: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn replicas(redis: &RedisServer, extra: &[(&str, &str)]) -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(dir.path());
    let mut vars: HashMap<String, String> = [
        ("UPSTREAM", "mock"),
        ("MODEL_NAME", MODEL),
        ("DATABASE_URL", db.as_str()),
        ("ADMIN_API_KEY", ADMIN_KEY),
        ("REDIS_URL", redis.url.as_str()),
        ("LOG_LEVEL", "warn"),
        ("RATE_LIMIT_RPM", "0"),
        ("TENANT_RATE_LIMIT_RPM", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut urls = Vec::new();
    let mut tenant = None;
    for _ in 0..2 {
        let config = secureinfer::config::Config::from_lookup(&|k| vars.get(k).cloned()).unwrap();
        let state = secureinfer::server::build_state(config).await.unwrap();
        if tenant.is_none() {
            let key = secureinfer::auth::keys::generate();
            let t = state
                .store
                .create_tenant("acme", &key.stored)
                .await
                .unwrap();
            tenant = Some((t.id, key.key.expose_secret().to_string()));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", listener.local_addr().unwrap()));
        let app = secureinfer::app::router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let (tenant_id, key) = tenant.unwrap();
    Replicas {
        urls: [urls[0].clone(), urls[1].clone()],
        key,
        tenant_id,
        http: client(),
        _dir: dir,
    }
}

impl Replicas {
    async fn chat(&self, replica: usize, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/chat/completions", self.urls[replica]))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn extraction(&self, replica: usize) -> Value {
        let v: Value = self
            .http
            .get(format!(
                "{}/v1/security/risk/{}",
                self.urls[replica], self.tenant_id
            ))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["extraction"].clone()
    }
}

fn ask(content: &str) -> Value {
    json!({"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn replicas_judge_one_window() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let r = replicas(&redis, &[]).await;
    // The enumeration alternates between the replicas: each sees only half of it, but the
    // shared window sees all of it and blocks where a single gateway does (request 38).
    let mut blocked_at = None;
    for i in 0..100usize {
        let (status, body) = r
            .chat(i % 2, &ask(&format!("What is {i} + {}?", i + 1)))
            .await;
        if status == 403 {
            assert_eq!(body["error"]["code"], "security_blocked");
            blocked_at = Some(i + 1);
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let at = blocked_at.expect("never blocked across replicas");
    assert!((30..=40).contains(&at), "blocked at {at}");
    for replica in 0..2 {
        let x = r.extraction(replica).await;
        assert_eq!(x["shared"], true);
        assert_eq!(x["queries_in_window"].as_u64(), Some(at as u64), "{x}");
        assert_eq!(x["status"], "blocking");
    }
}

#[tokio::test]
async fn the_logprob_budget_is_shared_and_redis_loss_is_survived() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let r = replicas(&redis, &[("LOGPROB_DAILY_BUDGET", "30")]).await;
    let mut body = ask("What is 2 + 2?");
    body["logprobs"] = true.into();
    // The mock answers "2 + 2 = 4." in 5 tokens: 5 values per request at top_logprobs 0.
    let mut refused_at = None;
    for i in 0..12usize {
        let (status, v) = r.chat(i % 2, &body).await;
        if status == 429 {
            assert_eq!(v["error"]["code"], "logprob_budget_exhausted");
            refused_at = Some(i + 1);
            break;
        }
        assert_eq!(status, 200, "{v}");
    }
    // 6 requests x 5 values = 30: the 7th is refused, on whichever replica it lands (each
    // replica alone has counted only 15).
    assert_eq!(refused_at, Some(7));
    let x = r.extraction(1).await;
    assert_eq!(x["logprob_budget"]["used"], 30);

    // Redis goes away: both replicas still answer, on their own state.
    redis.kill().await;
    for replica in 0..2 {
        let (status, v) = r
            .chat(replica, &ask("How do tides relate to the moon?"))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(r.extraction(replica).await["shared"], false);
    }
}
