//! Acceptance test for tenant isolation under load and cancellation: several tenants, each
//! using the *same* conversation ids, thousands of requests whose messages carry a unique
//! marker, random client disconnects and timeouts at random points — through the Redis
//! context store reached via a proxy that delays every packet 50-100 ms each way (the set-up
//! that reproduced the 2023 leak), with a Redis command timeout short enough that some
//! commands are abandoned mid-flight. Every response and every stored record must hold only
//! its own tenant's (and conversation's) markers. The same load runs in-process too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::delay_proxy::DelayProxy;
use common::redis::RedisServer;
use common::{ADMIN_KEY, Gateway, chat, gateway, stream_chat};
use futures::StreamExt;
use rand::Rng;
use serde_json::Value;
use tokio::sync::Semaphore;

const TENANTS: usize = 4;
const CONVERSATIONS: usize = 3;

struct Tenant {
    id: String,
    key: String,
}

/// Markers look like `MK<t>x<c>x<n>Q`: tenant index, conversation index, request number.
fn marker(t: usize, c: usize, n: usize) -> String {
    format!("MK{t}x{c}x{n}Q")
}

/// Every (tenant, conversation) pair named by a marker in `text`.
fn markers(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("MK") {
        rest = &rest[pos + 2..];
        let end = rest.find('Q').unwrap_or(rest.len());
        let parts: Vec<&str> = rest[..end].split('x').collect();
        if let [t, c, _n] = parts[..]
            && let (Ok(t), Ok(c)) = (t.parse(), c.parse())
        {
            out.push((t, c));
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Wait for the whole answer.
    Complete,
    /// Give up after a random 1-400 ms (the connection is dropped).
    Timeout(u64),
    /// Stream and read to the end.
    Stream,
    /// Stream and hang up after a random number of chunks.
    StreamDrop(usize),
}

#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    unavailable: usize,
    abandoned: usize,
}

/// Sends one request; returns the text received (possibly partial) and its status.
async fn one(
    gw: &Gateway,
    key: &str,
    conv: &str,
    content: &str,
    mode: Mode,
) -> (Option<u16>, String) {
    let (body, timeout) = match mode {
        Mode::Complete => (chat(content), Duration::from_secs(30)),
        Mode::Timeout(ms) => (chat(content), Duration::from_millis(ms)),
        Mode::Stream | Mode::StreamDrop(_) => {
            (stream_chat(content, false), Duration::from_secs(30))
        }
    };
    let sent = gw
        .post("/v1/chat/completions", Some(key))
        .header("X-Conversation-ID", conv)
        .timeout(timeout)
        .json(&body)
        .send()
        .await;
    let Ok(resp) = sent else {
        return (None, String::new());
    };
    let status = resp.status().as_u16();
    match mode {
        Mode::StreamDrop(n) => {
            let mut text = String::new();
            let mut chunks = resp.bytes_stream();
            for _ in 0..n {
                match chunks.next().await {
                    Some(Ok(b)) => text.push_str(&String::from_utf8_lossy(&b)),
                    _ => break,
                }
            }
            // Dropping the stream here hangs up mid-answer.
            (Some(status), text)
        }
        _ => match resp.text().await {
            Ok(t) => (Some(status), t),
            Err(_) => (None, String::new()),
        },
    }
}

async fn load(
    gw: Arc<Gateway>,
    tenants: Arc<Vec<Tenant>>,
    total: usize,
    concurrency: usize,
) -> Tally {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (gw, tenants) = (gw.clone(), tenants.clone());
        let (t, c, mode) = {
            let mut rng = rand::thread_rng();
            let mode = match rng.gen_range(0..100) {
                0..60 => Mode::Complete,
                60..75 => Mode::Timeout(rng.gen_range(1..=400)),
                75..90 => Mode::Stream,
                _ => Mode::StreamDrop(rng.gen_range(1..=3)),
            };
            (
                rng.gen_range(0..TENANTS),
                rng.gen_range(0..CONVERSATIONS),
                mode,
            )
        };
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let content = format!("remember {} and recall what I told you", marker(t, c, n));
            let (status, text) =
                one(&gw, &tenants[t].key, &format!("conv-{c}"), &content, mode).await;
            for (mt, mc) in markers(&text) {
                assert!(
                    mt == t && mc == c,
                    "tenant {t} conversation {c} received a marker of tenant {mt} conversation {mc} ({mode:?}): {text}"
                );
            }
            status
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        match task.await.unwrap() {
            Some(200) => tally.ok += 1,
            Some(503) => tally.unavailable += 1,
            Some(other) => panic!("unexpected status {other}"),
            None => tally.abandoned += 1,
        }
    }
    tally
}

async fn setup(vars: &[(&str, &str)]) -> (Arc<Gateway>, Arc<Vec<Tenant>>) {
    // Keep enough history that answers quote many earlier markers. The load is one templated
    // message repeated thousands of times, which the extraction detector rightly blocks: it is
    // not what this test is about.
    // The abuse limits are off for the same reason (one client sending thousands of requests).
    let mut all = vec![
        ("CONTEXT_MAX_MESSAGES", "40"),
        ("EXTRACTION_DETECTION", "false"),
        ("RATE_LIMIT_RPM", "0"),
        ("TENANT_RATE_LIMIT_RPM", "0"),
        ("TENANT_TOKEN_LIMIT_TPM", "0"),
        ("TENANT_MAX_CONCURRENT", "0"),
    ];
    all.extend_from_slice(vars);
    let gw = gateway(&all).await;
    let mut tenants = vec![Tenant {
        id: gw.tenant_id.clone(),
        key: gw.key.clone(),
    }];
    for i in 1..TENANTS {
        let (id, key) = gw.create_tenant(&format!("tenant-{i}")).await;
        tenants.push(Tenant { id, key });
    }
    (Arc::new(gw), Arc::new(tenants))
}

/// Every conversation read back through the API holds only its own markers.
async fn check_api(gw: &Gateway, tenants: &[Tenant]) -> usize {
    let mut stored = 0;
    for (t, tenant) in tenants.iter().enumerate() {
        for c in 0..CONVERSATIONS {
            let resp = gw
                .get(&format!("/v1/conversations/conv-{c}"), Some(&tenant.key))
                .send()
                .await
                .unwrap();
            if resp.status() == 404 {
                continue;
            }
            assert_eq!(resp.status(), 200);
            let v: Value = resp.json().await.unwrap();
            for m in v["messages"].as_array().unwrap() {
                let content = m["content"].as_str().unwrap();
                for (mt, mc) in markers(content) {
                    assert!(mt == t && mc == c, "stored under {t}/{c}: {content}");
                    stored += 1;
                }
            }
        }
    }
    stored
}

async fn isolation_status(gw: &Gateway) -> Value {
    gw.get("/v1/security/isolation", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_context_through_a_slow_network_never_mixes_tenants() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = DelayProxy::start(format!("127.0.0.1:{}", redis.port), 50..=100).await;
    let url = proxy.url();
    let (gw, tenants) = setup(&[
        ("REDIS_URL", url.as_str()),
        // A round trip takes 100-200 ms: about one command in twelve runs over and is abandoned.
        ("REDIS_TIMEOUT", "250ms"),
        ("REDIS_POOL_SIZE", "64"),
    ])
    .await;

    let tally = load(gw.clone(), tenants.clone(), 2000, 48).await;
    eprintln!("redis run: {tally:?}, {}", isolation_status(&gw).await);
    assert!(tally.ok >= 500, "{tally:?}");

    // Read back through the API and straight from Redis.
    let stored = check_api(&gw, &tenants).await;
    assert!(stored > 0);
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("si:ctx:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let (t, tenant) = tenants
            .iter()
            .enumerate()
            .find(|(_, tn)| key.contains(&format!(":{}:", tn.id)))
            .unwrap_or_else(|| panic!("key of no tenant: {key}"));
        let c: usize = key.rsplit("conv-").next().unwrap().parse().unwrap();
        let records: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for r in records {
            let v: Value = serde_json::from_str(&r).unwrap();
            assert_eq!(v["tenant"], tenant.id.as_str(), "{r}");
            assert_eq!(v["key"], key.as_str(), "{r}");
            for (mt, mc) in markers(v["content"].as_str().unwrap()) {
                assert!(mt == t && mc == c, "{key}: {r}");
            }
        }
    }

    // The run exercised what it is about: commands abandoned mid-flight, their connections
    // closed rather than reused, and no record failing the owner check.
    let status = isolation_status(&gw).await;
    let pool = &status["redis_pool"];
    assert!(pool["timeouts_total"].as_u64().unwrap() > 0, "{status}");
    assert!(pool["discarded_total"].as_u64().unwrap() > 0, "{status}");
    assert!(pool["reused_total"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(status["context"]["owner_mismatches_total"], 0, "{status}");
    eprintln!("redis run: {tally:?}, pool {pool}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_context_under_load_never_mixes_tenants() {
    let (gw, tenants) = setup(&[("MOCK_LATENCY", "2ms")]).await;
    let tally = load(gw.clone(), tenants.clone(), 2000, 64).await;
    assert!(tally.ok >= 1000, "{tally:?}");
    assert!(check_api(&gw, &tenants).await > 0);
    let status = isolation_status(&gw).await;
    assert_eq!(status["context"]["owner_mismatches_total"], 0, "{status}");
    eprintln!("in-process run: {tally:?}");
}
