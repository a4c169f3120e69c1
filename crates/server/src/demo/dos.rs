//! The denial-of-service demo: one tenant floods the gateway with concurrent requests while
//! another tenant keeps sending ordinary ones. The model server behind is the mock with a fixed
//! number of parallel slots (a stand-in for a GPU that serves a few requests at a time), so a
//! flood that is let through queues everyone else behind it.
//!
//! Run twice: with the abuse limits off, and with them on (requests per minute and a cap on
//! requests in flight per tenant). It prints how many flood requests got 200 and 429, and the
//! latency the other tenant saw during the flood.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::Request;
use axum::middleware::{self, Next};
use serde_json::json;
use tokio::sync::Semaphore;

use super::{client, start_gateway};
use crate::config::SecurityMode;

/// Parallel answers the simulated model server gives, and how long each takes.
const MODEL_SLOTS: usize = 4;
const MODEL_LATENCY_MS: u64 = 250;

pub struct Options {
    pub url: Option<String>,
    pub key: Option<String>,
    pub victim_key: Option<String>,
    pub concurrency: usize,
    pub seconds: u64,
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
    /// What the first answer that was neither 200 nor 429 was, to explain the "other" column.
    first_other: std::sync::Mutex<Option<String>>,
}

struct Outcome {
    first_other: Option<String>,
    flood_ok: u64,
    flood_limited: u64,
    flood_other: u64,
    victim: Vec<Duration>,
    victim_failed: u64,
}

fn body(content: &str) -> serde_json::Value {
    json!({"model": "secureinfer-mock", "max_tokens": 16,
           "messages": [{"role": "user", "content": content}]})
}

/// Floods `url` as `flood_key` with `concurrency` connections for `seconds`, while one client
/// as `victim_key` sends a request at a time and records its latency.
async fn flood(
    url: &str,
    flood_key: &str,
    victim_key: &str,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let http = client()?;
    let endpoint = format!("{url}/v1/chat/completions");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let (http, endpoint, key) = (http.clone(), endpoint.clone(), flood_key.to_string());
        let (stop, tally) = (stop.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = http
                    .post(&endpoint)
                    .bearer_auth(&key)
                    .json(&body(&format!("flood {i}-{n}: write me a long essay")))
                    .send()
                    .await;
                let counter = match sent {
                    Ok(r) if r.status().as_u16() == 200 => &tally.ok,
                    Ok(r) if r.status().as_u16() == 429 => &tally.limited,
                    other => {
                        let what = match other {
                            Ok(r) => {
                                format!("{} {}", r.status(), r.text().await.unwrap_or_default())
                            }
                            Err(e) => format!("no answer: {e}"),
                        };
                        if let Ok(mut first) = tally.first_other.lock() {
                            first.get_or_insert(what);
                        }
                        &tally.other
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the flood build up before the other tenant starts measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut victim = Vec::new();
    let mut victim_failed = 0;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let started = Instant::now();
        let resp = http
            .post(&endpoint)
            .bearer_auth(victim_key)
            .json(&body(&format!("What is the capital of France? ({n})")))
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                victim.push(started.elapsed());
            }
            _ => victim_failed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    victim.sort();
    let first_other = tally.first_other.lock().ok().and_then(|f| f.clone());
    Ok(Outcome {
        first_other,
        flood_ok: tally.ok.load(Ordering::Relaxed),
        flood_limited: tally.limited.load(Ordering::Relaxed),
        flood_other: tally.other.load(Ordering::Relaxed),
        victim,
        victim_failed,
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) if d >= Duration::from_secs(1) => format!("{:.2} s", d.as_secs_f64()),
        Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
        None => "-".to_string(),
    }
}

fn row(label: &str, o: &Outcome) {
    println!(
        "{label:<34} {:>9} {:>9} {:>7} {:>8} {:>11} {:>11}",
        o.flood_ok,
        o.flood_limited,
        o.flood_other,
        o.victim.len(),
        ms(quantile(&o.victim, 0.5)),
        ms(o.victim.last().copied()),
    );
}

fn header() {
    println!(
        "{:<34} {:>9} {:>9} {:>7} {:>8} {:>11} {:>11}",
        "gateway", "flood 200", "flood 429", "other", "victim", "victim p50", "victim max"
    );
}

/// The simulated model server: the mock model behind a semaphore of `MODEL_SLOTS`.
async fn start_model_server() -> anyhow::Result<String> {
    let slots = Arc::new(Semaphore::new(MODEL_SLOTS));
    let app = crate::mock_server::router(
        "secureinfer-mock".to_string(),
        crate::mock_server::settings(MODEL_LATENCY_MS, 0),
    )
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        let slots = slots.clone();
        async move {
            // Closed only if the semaphore were closed, which it never is.
            let _permit = slots.acquire_owned().await;
            next.run(req).await
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port")?;
    let addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

/// Creates the second tenant on a demo gateway through its admin API.
async fn second_tenant(url: &str, admin: &str) -> anyhow::Result<String> {
    let resp = client()?
        .post(format!("{url}/v1/tenants"))
        .bearer_auth(admin)
        .json(&json!({"name": "victim"}))
        .send()
        .await?;
    let v: serde_json::Value = resp.json().await?;
    v["api_key"]
        .as_str()
        .map(str::to_string)
        .context("the gateway did not return the new tenant's key")
}

async fn demo_gateway(
    model_url: &str,
    limits: &[(&str, &str)],
) -> anyhow::Result<(String, String, String)> {
    let admin = format!("demo-admin-{}", uuid::Uuid::now_v7().simple());
    let mut vars = vec![
        ("ADMIN_API_KEY", admin.as_str()),
        ("UPSTREAM", "openai"),
        ("UPSTREAM_URL", model_url),
        ("MODEL_NAME", "secureinfer-mock"),
        ("LOG_LEVEL", "error"),
    ];
    vars.extend_from_slice(limits);
    // Monitor mode: the flood's repetitive prompts look like model extraction, and the gate would
    // block them; here only the abuse limits should act.
    let gw = start_gateway(SecurityMode::Monitor, &vars).await?;
    let victim = second_tenant(&gw.url, &admin).await?;
    Ok((gw.url, gw.key, victim))
}

pub async fn run(opts: Options) -> anyhow::Result<ExitCode> {
    if let Some(url) = opts.url {
        let (Some(key), Some(victim)) = (opts.key, opts.victim_key) else {
            anyhow::bail!(
                "--url needs --key (the flooding tenant) and --victim-key (another tenant)"
            );
        };
        println!(
            "Flooding {url} with {} connections for {} s; the other tenant sends one request at a time.\n",
            opts.concurrency, opts.seconds
        );
        let o = flood(&url, &key, &victim, opts.concurrency, opts.seconds).await?;
        header();
        row(&url, &o);
        return Ok(ExitCode::SUCCESS);
    }

    let model = start_model_server().await?;
    println!("Denial-of-service demo: tenant \"demo\" floods, tenant \"victim\" keeps working.");
    println!(
        "Model server: the mock model with {MODEL_SLOTS} parallel slots and {MODEL_LATENCY_MS} ms per answer (a stand-in for a GPU)."
    );
    println!(
        "Flood: {} concurrent connections for {} s. Both tenants come from 127.0.0.1, so the per-IP\n\
         limit is off here; the per-tenant limits do the work (the security gate only monitors).\n",
        opts.concurrency, opts.seconds
    );
    header();

    let (url, flood_key, victim_key) = demo_gateway(
        &model,
        &[
            ("TENANT_RATE_LIMIT_RPM", "0"),
            ("TENANT_MAX_CONCURRENT", "0"),
        ],
    )
    .await?;
    let off = flood(
        &url,
        &flood_key,
        &victim_key,
        opts.concurrency,
        opts.seconds,
    )
    .await?;
    row("limits off", &off);

    let limits = [
        ("TENANT_RATE_LIMIT_RPM", "1200"),
        ("TENANT_RATE_LIMIT_BURST", "50"),
        ("TENANT_MAX_CONCURRENT", "2"),
    ];
    let (url, flood_key, victim_key) = demo_gateway(&model, &limits).await?;
    let on = flood(
        &url,
        &flood_key,
        &victim_key,
        opts.concurrency,
        opts.seconds,
    )
    .await?;
    row("limits on (1200/min, 2 in flight)", &on);

    let p50_off = quantile(&off.victim, 0.5).unwrap_or(Duration::MAX);
    let p50_on = quantile(&on.victim, 0.5).unwrap_or(Duration::MAX);
    println!();
    println!(
        "Without limits the flood takes every model slot and the other tenant queues behind it;\n\
         with a cap of 2 in flight per tenant the flood is answered 429 at once (Retry-After tells\n\
         it when to come back) and the other tenant keeps {} of the {MODEL_SLOTS} slots.",
        MODEL_SLOTS - 2
    );
    for (label, o) in [("without limits", &off), ("with limits", &on)] {
        if let Some(first) = &o.first_other {
            println!("(first \"other\" flood answer {label}: {first})");
        }
    }
    if off.victim_failed + on.victim_failed > 0 {
        println!(
            "(victim requests that failed: {} without limits, {} with)",
            off.victim_failed, on.victim_failed
        );
    }
    let protected = on.flood_limited > 0 && p50_on < p50_off / 2;
    println!(
        "\nResult: {}",
        if protected {
            "the other tenant's median latency stayed low during the flood."
        } else {
            "the limits did NOT protect the other tenant in this run."
        }
    );
    Ok(if protected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
