#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! OpenTelemetry export (`--features otel`): the real binary posts its spans as OTLP/HTTP JSON
//! to a fake collector. A chat request sent with a W3C `traceparent` yields a server span
//! named by its route template, joined to the caller's trace, with the gate and upstream
//! spans as children; the queue is flushed on SIGTERM; no prompt or key is exported.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::process::Process;
use common::{ADMIN_KEY, chat, stream_chat};
use serde_json::{Value, json};
use tokio::sync::Notify;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const PROMPT_MARKER: &str = "zebra-quartz-otel-marker";
const PATH_MARKER: &str = "no-such-path-7731";

/// A fake OTLP/HTTP collector: records every body POSTed to /v1/traces.
#[derive(Clone, Default)]
struct Collector {
    bodies: Arc<Mutex<Vec<Bytes>>>,
    arrived: Arc<Notify>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let collector = Collector::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, url)
    }

    fn spans(&self) -> Vec<Value> {
        let bodies = self.bodies.lock().unwrap();
        let mut out = Vec::new();
        for body in bodies.iter() {
            let v: Value = serde_json::from_slice(body).expect("OTLP body is not JSON");
            for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                let service = attr(&rs["resource"], "service.name");
                assert_eq!(service.as_deref(), Some("secureinfer"), "{rs}");
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        out
    }

    fn raw(&self) -> String {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// Waits (bounded) until the spans received satisfy `done`.
    async fn wait_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("the collector did not receive the expected spans; got {spans:#?}");
            }
        }
    }
}

async fn receive(State(c): State<Collector>, body: Bytes) -> axum::Json<Value> {
    c.bodies.lock().unwrap().push(body);
    c.arrived.notify_waiters();
    axum::Json(json!({}))
}

/// An attribute of a span or resource as a string (OTLP JSON writes ints as strings or numbers).
fn attr(obj: &Value, key: &str) -> Option<String> {
    let a = obj["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let v = a["value"].as_object()?.values().next()?;
    Some(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn children<'a>(spans: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["parentSpanId"] == parent["spanId"] && s["traceId"] == parent["traceId"])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_with_the_callers_trace_and_no_secrets() {
    let (collector, endpoint) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(dir.path());
    let mut gw = Process::serve(
        dir.path(),
        &[
            ("DATABASE_URL", db.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // Long enough that nothing is exported on schedule during the test: what the
            // collector gets, it gets from the flush on SIGTERM.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    )
    .unwrap();
    let client = common::client();

    let created: Value = client
        .post(format!("{}/v1/tenants", gw.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "traced"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant_id = created["tenant"]["id"].as_str().unwrap().to_string();
    let key = created["api_key"].as_str().unwrap().to_string();

    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let resp = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .header("traceparent", &traceparent)
        .json(&chat(&format!("please summarise {PROMPT_MARKER} for me")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    resp.bytes().await.unwrap();

    // A stream: its upstream span ends when the stream has ended.
    let resp = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&stream_chat(&format!("stream {PROMPT_MARKER}"), true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let streamed = resp.text().await.unwrap();
    assert!(streamed.contains("[DONE]"));

    // An unmatched path must not become a span name.
    let resp = client
        .get(format!("{}/v1/{PATH_MARKER}", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let status = tokio::task::spawn_blocking(move || {
        let status = gw.terminate(Duration::from_secs(30));
        drop(gw);
        status
    })
    .await
    .unwrap()
    .expect("serve did not exit after SIGTERM");
    assert!(status.success(), "exit {status:?}");

    let spans = collector
        .wait_until(|spans| {
            named(spans, "POST /v1/chat/completions").len() >= 2 && !named(spans, "GET").is_empty()
        })
        .await;

    // The traced request: the server span joined the caller's trace under its span.
    let request = named(&spans, "POST /v1/chat/completions")
        .into_iter()
        .find(|s| s["traceId"] == TRACE_ID)
        .unwrap_or_else(|| panic!("no request span in trace {TRACE_ID}: {spans:#?}"));
    assert_eq!(request["parentSpanId"], PARENT_SPAN);
    assert_eq!(request["kind"], 2, "SPAN_KIND_SERVER");
    let a = |k: &str| attr(request, k);
    assert_eq!(a("http.request.method").as_deref(), Some("POST"));
    assert_eq!(a("http.route").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(a("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(a("secureinfer.request_id"), Some(request_id));
    assert_eq!(a("secureinfer.tenant_id"), Some(tenant_id.clone()));
    assert_eq!(a("secureinfer.decision").as_deref(), Some("allow"));
    assert!(a("secureinfer.risk_score").is_some());

    let kids = children(&spans, request);
    let gate = kids
        .iter()
        .find(|s| s["name"] == "security_gate")
        .unwrap_or_else(|| panic!("no gate span under the request: {kids:#?}"));
    assert_eq!(attr(gate, "secureinfer.decision").as_deref(), Some("allow"));
    let upstream = kids
        .iter()
        .find(|s| attr(s, "secureinfer.upstream.kind").is_some())
        .unwrap_or_else(|| panic!("no upstream span under the request: {kids:#?}"));
    assert_eq!(upstream["kind"], 3, "SPAN_KIND_CLIENT");
    assert_eq!(
        attr(upstream, "secureinfer.upstream.kind").as_deref(),
        Some("mock")
    );
    assert_eq!(
        attr(upstream, "gen_ai.request.model").as_deref(),
        Some(common::MODEL)
    );
    assert_eq!(
        attr(upstream, "secureinfer.upstream.streamed").as_deref(),
        Some("false")
    );

    // The streamed request started its own trace; its upstream span saw the stream end.
    let stream_request = named(&spans, "POST /v1/chat/completions")
        .into_iter()
        .find(|s| s["traceId"] != TRACE_ID)
        .expect("no span for the streamed request");
    let stream_upstream = children(&spans, stream_request)
        .into_iter()
        .find(|s| attr(s, "secureinfer.upstream.kind").is_some())
        .expect("no upstream span under the streamed request");
    assert_eq!(
        attr(stream_upstream, "secureinfer.upstream.streamed").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(stream_upstream, "secureinfer.stream_end").as_deref(),
        Some("completed")
    );
    assert!(attr(stream_upstream, "gen_ai.usage.output_tokens").is_some());

    let not_found = named(&spans, "GET")[0];
    assert_eq!(attr(not_found, "http.route"), None);
    assert_eq!(
        attr(not_found, "http.response.status_code").as_deref(),
        Some("404")
    );

    let raw = collector.raw();
    for secret in [
        PROMPT_MARKER,
        key.as_str(),
        ADMIN_KEY,
        "Bearer",
        PATH_MARKER,
    ] {
        assert!(!raw.contains(secret), "{secret:?} was exported: {raw}");
    }
}
