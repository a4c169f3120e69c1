#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! W3C trace context reaches the model server: a client's `traceparent` (and `tracestate`)
//! is passed on with the model call for both upstream kinds, whole and streamed, so the
//! model server's spans join the client's trace; malformed values are not passed on.
//! (With the `otel` feature and an exporter, the gateway's own span becomes the parent:
//! `tests/otel.rs`.)

mod common;

use std::time::Duration;

use common::process::Process;
use common::{Behaviour, Fake, chat, gateway_for, stream_chat};
use serde_json::Value;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn send(gw: &common::Gateway, body: &Value, headers: &[(&str, &str)]) -> u16 {
    let mut rb = gw.post("/v1/chat/completions", Some(&gw.key)).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    // Read the whole body so a stream has finished before the fake is asked.
    let _ = resp.bytes().await.unwrap();
    status
}

#[tokio::test]
async fn the_clients_trace_context_reaches_both_upstream_kinds() {
    for kind in ["openai", "ollama"] {
        let fake = Fake::start(Behaviour::Normal).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        for body in [chat("hello there"), stream_chat("hello there", false)] {
            let headers = [
                ("traceparent", PARENT),
                ("tracestate", "vendor=abc,other=1"),
            ];
            assert_eq!(send(&gw, &body, &headers).await, 200, "{kind}");
            let (parent, state) = fake.last_trace();
            assert_eq!(parent.as_deref(), Some(PARENT), "{kind} {body}");
            assert_eq!(state.as_deref(), Some("vendor=abc,other=1"), "{kind}");
        }
        // Without one, none is invented.
        assert_eq!(send(&gw, &chat("hello there"), &[]).await, 200);
        assert_eq!(fake.last_trace(), (None, None), "{kind}");
    }
}

#[tokio::test]
async fn malformed_trace_context_is_not_passed_on() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "openai", &[]).await;
    let long_state = format!("v={}", "a".repeat(600));
    let bad = [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    // no flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra\r\nx: y",
        "not a trace",
    ];
    for value in bad {
        // A value reqwest refuses to send (the CR LF one) never reaches the gateway at all.
        let Ok(header) = reqwest::header::HeaderValue::from_str(value) else {
            continue;
        };
        let resp = gw
            .post("/v1/chat/completions", Some(&gw.key))
            .json(&chat("hello there"))
            .header("traceparent", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{value}");
        assert_eq!(fake.last_trace().0, None, "{value}");
    }
    // A valid parent is kept while an oversized tracestate is dropped.
    let headers = [("traceparent", PARENT), ("tracestate", long_state.as_str())];
    assert_eq!(send(&gw, &chat("hello there"), &headers).await, 200);
    assert_eq!(fake.last_trace(), (Some(PARENT.to_string()), None));
}

/// The request's log line names the trace, so a slow request found in a trace viewer can be
/// found in the logs and back.
#[tokio::test]
async fn the_request_log_line_carries_the_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Process::serve(dir.path(), &[]).unwrap();
    let client = common::client();
    let resp = client
        .get(format!("{}/health", gw.url))
        .header("traceparent", PARENT)
        .header("x-request-id", "traced-health-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let line = gw
        .wait_for_log("traced-health-1", Duration::from_secs(10))
        .expect("no log line for the request");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");

    let resp = client
        .get(format!("{}/health", gw.url))
        .header("x-request-id", "untraced-health-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let line = gw
        .wait_for_log("untraced-health-2", Duration::from_secs(10))
        .expect("no log line for the request");
    assert!(!line.contains("trace_id"), "{line}");
}
