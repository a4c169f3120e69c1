#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Upstream failures become the right status in the OpenAI error shape (before a stream
//! starts) or an SSE error event (once it has started); a client that goes away mid-stream
//! cancels the upstream request.

mod common;

use common::{Behaviour, Fake, chat, closed_port_url, expect_error, gateway_for, stream_chat};
use futures::StreamExt;
use serde_json::Value;

const KINDS: [&str; 2] = ["ollama", "openai"];

/// Asserts that the same failure maps to `status`/`code`, non-streaming and streaming.
async fn assert_maps(behaviour: Behaviour, status: u16, code: &str, extra: &[(&str, &str)]) {
    for kind in KINDS {
        let fake = Fake::start(behaviour.clone()).await;
        let gw = gateway_for(&fake, kind, extra).await;
        let err = expect_error(gw.chat(&chat("hi")).await, status, Some(code)).await;
        let streamed = expect_error(gw.chat(&stream_chat("hi", true)).await, status, Some(code));
        let streamed = streamed.await;
        assert_eq!(fake.hits(), 2, "{kind}");
        for e in [&err, &streamed] {
            let message = e["message"].as_str().unwrap();
            assert!(
                !message.contains("127.0.0.1"),
                "{kind}: address leaked: {message}"
            );
        }
    }
}

#[tokio::test]
async fn slow_first_byte_is_504() {
    assert_maps(
        Behaviour::Hang,
        504,
        "upstream_timeout",
        &[("UPSTREAM_TIMEOUT", "300ms")],
    )
    .await;
}

#[tokio::test]
async fn upstream_500_is_502() {
    let body = r#"{"error":"model runner crashed"}"#;
    assert_maps(Behaviour::Status(500, body), 502, "upstream_error", &[]).await;
}

#[tokio::test]
async fn upstream_503_is_503() {
    let body = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
    assert_maps(Behaviour::Status(503, body), 503, "upstream_error", &[]).await;
}

#[tokio::test]
async fn upstream_400_passes_through_with_its_message() {
    let body = r#"{"error":{"message":"context length exceeded for this model","type":"invalid_request_error"}}"#;
    for kind in KINDS {
        let fake = Fake::start(Behaviour::Status(400, body)).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let err = expect_error(gw.chat(&chat("hi")).await, 400, Some("upstream_rejected")).await;
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("context length exceeded"),
            "{kind}: {message}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_503() {
    for kind in KINDS {
        let url = closed_port_url();
        let gw = common::gateway(&[("UPSTREAM", kind), ("UPSTREAM_URL", &url)]).await;
        expect_error(
            gw.chat(&chat("hi")).await,
            503,
            Some("upstream_unavailable"),
        )
        .await;
        let streamed = gw.chat(&stream_chat("hi", false)).await;
        expect_error(streamed, 503, Some("upstream_unavailable")).await;
        // /health reports the outage without needing a key.
        let health = gw.get("/health", None).send().await.unwrap();
        assert_eq!(health.status(), 503, "{kind}");
        let v: Value = health.json().await.unwrap();
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["checks"]["upstream"], false);
        assert_eq!(v["checks"]["database"], true);
        // /v1/models cannot list anything either.
        let models = gw.get("/v1/models", Some(&gw.key)).send().await.unwrap();
        expect_error(models, 503, Some("upstream_unavailable")).await;
    }
}

#[tokio::test]
async fn malformed_json_is_502() {
    for kind in KINDS {
        let fake = Fake::start(Behaviour::Malformed).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let resp = gw.chat(&chat("hi")).await;
        expect_error(resp, 502, Some("upstream_protocol_error")).await;
    }
}

/// Reads a whole stream that must fail midway: 200, some chunks, then one error event and
/// the end of the body (no `[DONE]`). Returns the error object.
async fn failed_stream(gw: &common::Gateway) -> Value {
    let resp = gw.chat(&stream_chat("hi", false)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let data = common::sse_data(&text);
    assert!(data.len() >= 2, "{text}");
    let (last, chunks) = data.split_last().unwrap();
    assert!(
        !text.contains("[DONE]"),
        "a failed stream must not claim completion: {text}"
    );
    for c in chunks {
        let c: Value = serde_json::from_str(c).unwrap();
        assert_eq!(c["object"], "chat.completion.chunk");
    }
    let event: Value = serde_json::from_str(last).unwrap();
    common::check_error_shape(&event);
    event["error"].clone()
}

#[tokio::test]
async fn stream_that_stops_midway_ends_with_an_error_event() {
    for kind in KINDS {
        let fake = Fake::start(Behaviour::CutOff).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let err = failed_stream(&gw).await;
        assert_eq!(err["code"], "upstream_protocol_error", "{kind}");
        assert_eq!(err["type"], "server_error", "{kind}");
    }
}

#[tokio::test]
async fn stream_that_breaks_ends_with_an_error_event() {
    for kind in KINDS {
        let fake = Fake::start(Behaviour::Break).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let err = failed_stream(&gw).await;
        assert!(
            err["code"].as_str().unwrap().starts_with("upstream_"),
            "{kind}: {err}"
        );
    }
}

#[tokio::test]
async fn stream_with_a_malformed_chunk_ends_with_an_error_event() {
    for kind in KINDS {
        let fake = Fake::start(Behaviour::Malformed).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let err = failed_stream(&gw).await;
        assert_eq!(err["code"], "upstream_protocol_error", "{kind}");
    }
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream() {
    for kind in KINDS {
        let fake = Fake::start(Behaviour::Endless).await;
        let gw = gateway_for(&fake, kind, &[]).await;
        let resp = gw.chat(&stream_chat("hi", false)).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        // Wait until the stream is really flowing end to end.
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("no first chunk")
            .expect("stream ended")
            .unwrap();
        assert!(first.starts_with(b"data: "), "{first:?}");
        // The client goes away; the upstream body must be dropped (connection closed).
        drop(body);
        fake.wait_dropped().await;
    }
}
