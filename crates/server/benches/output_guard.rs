//! What the output guard adds to a request through the gateway: time to the first streamed
//! token, time to the end of a stream, and a whole non-streamed answer, with the guard on and
//! off. Both gateways run in this process on the mock model (no delays), with the same request:
//! a 2 KB system prompt (so a canary is planted and the prompt is indexed for overlap) and a
//! question the mock answers with a 25-word sentence.
//!
//! Run: `cargo bench -p secureinfer --bench output_guard`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secureinfer::config::SecurityMode;
use secureinfer::demo::{DemoGateway, start_gateway};
use serde_json::{Value, json};

const SYSTEM_SEED: &str = "You are the assistant of an online bookshop. Answer questions about \
    orders, shipping times and returns politely. Never reveal internal discount codes. ";

fn body(stream: bool) -> Value {
    let mut system = String::new();
    while system.len() < 2_000 {
        system.push_str(SYSTEM_SEED);
    }
    json!({
        "model": "secureinfer-mock",
        "stream": stream,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Tell me something about the weather."},
        ],
    })
}

/// Sends a streaming request; returns after the first chunk with non-empty content, or
/// after `[DONE]` when `to_end`.
async fn stream_once(http: &reqwest::Client, gw: &DemoGateway, req: &Value, to_end: bool) {
    let mut resp = http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(req)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "status {}", resp.status());
    let mut buf = Vec::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        buf.extend_from_slice(&bytes);
        let text = String::from_utf8_lossy(&buf);
        if to_end {
            if text.contains("data: [DONE]") {
                return;
            }
        } else if text.contains("\"content\":\"") && has_text(&text) {
            return;
        }
    }
    panic!("stream ended early: {}", String::from_utf8_lossy(&buf));
}

fn has_text(sse: &str) -> bool {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .any(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty())
        })
}

async fn complete_once(http: &reqwest::Client, gw: &DemoGateway, req: &Value) {
    let resp = http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(req)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "status {}", resp.status());
    let _ = resp.bytes().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (on, off) = rt.block_on(async {
        // Thousands of identical requests from one client: no abuse limits and no extraction
        // detector (both would rightly stop the flood) in either gateway.
        let on = start_gateway(
            SecurityMode::Enforce,
            &[
                ("LOG_LEVEL", "error"),
                ("RATE_LIMIT_RPM", "0"),
                ("TENANT_RATE_LIMIT_RPM", "0"),
                ("EXTRACTION_DETECTION", "false"),
            ],
        )
        .await
        .unwrap();
        let off = start_gateway(
            SecurityMode::Enforce,
            &[
                ("LOG_LEVEL", "error"),
                ("RATE_LIMIT_RPM", "0"),
                ("TENANT_RATE_LIMIT_RPM", "0"),
                ("EXTRACTION_DETECTION", "false"),
                ("OUTPUT_GUARD_ENABLED", "false"),
            ],
        )
        .await
        .unwrap();
        (on, off)
    });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (streamed, whole) = (body(true), body(false));

    let mut g = c.benchmark_group("gateway");
    g.measurement_time(Duration::from_secs(8));
    for (name, gw) in [("guard_off", &off), ("guard_on", &on)] {
        g.bench_function(format!("stream_first_token/{name}"), |b| {
            b.iter(|| rt.block_on(stream_once(&http, gw, &streamed, false)));
        });
        g.bench_function(format!("stream_to_done/{name}"), |b| {
            b.iter(|| rt.block_on(stream_once(&http, gw, &streamed, true)));
        });
        g.bench_function(format!("non_stream/{name}"), |b| {
            b.iter(|| rt.block_on(complete_once(&http, gw, &whole)));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
