#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Chat through an OpenAI-compatible upstream (SSE): fields pass through, chunks are relayed
//! one by one, usage is always requested upstream but shown only to clients that asked.

mod common;

use common::fake::{openai_chunks, openai_usage_chunk};
use common::{Behaviour, Fake, MODEL, chat, gateway_for, stream_chat};
use serde_json::{Value, json};

#[tokio::test]
async fn non_streaming_passes_fields_through_both_ways() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "openai", &[("UPSTREAM_API_KEY", "upstream-secret")]).await;
    let mut body = chat("hi");
    body["max_completion_tokens"] = 33.into();
    body["temperature"] = 0.2.into();
    body["my_vendor_extension"] = json!({"x": [1, 2]});
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    body["stream_options"] = json!({"include_usage": true});
    let resp = gw.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-risk-score"));
    let v: Value = resp.json().await.unwrap();
    // The upstream's answer comes back unchanged, its extra fields included.
    assert_eq!(v["id"], "chatcmpl-fake");
    assert_eq!(v["system_fingerprint"], "fp_fake");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(v["usage"]["total_tokens"], 9);

    let sent = fake.last_body();
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["my_vendor_extension"], json!({"x": [1, 2]}));
    assert_eq!(sent["tools"][0]["function"]["name"], "f");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(
        sent["max_tokens"], 33,
        "max_completion_tokens is sent as max_tokens"
    );
    assert_eq!(sent["stream"], false);
    assert!(
        sent.get("stream_options").is_none(),
        "no stream_options without stream"
    );
    assert_eq!(sent["messages"], chat("hi")["messages"]);
}

#[tokio::test]
async fn streaming_relays_chunks_one_by_one_without_usage() {
    let fake = Fake::start(Behaviour::Normal).await;
    // Chunk-for-chunk relay is the unguarded path; the output guard re-chunks held-back text
    // (tests/output_guard.rs checks the guarded relay).
    let gw = gateway_for(&fake, "openai", &[("OUTPUT_GUARD_ENABLED", "false")]).await;
    let mut body = stream_chat("hi", false);
    body["extra_field"] = "kept".into();
    let resp = gw.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-risk-score"));
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    // Exactly the upstream's chunks, in order; its usage chunk is held back.
    assert_eq!(chunks, openai_chunks("stop"));

    let sent = fake.last_body();
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "usage is always requested upstream for accounting"
    );
    assert_eq!(sent["extra_field"], "kept");
}

#[tokio::test]
async fn streaming_usage_chunk_when_client_asks() {
    let fake = Fake::start(Behaviour::Normal).await;
    // Chunk-for-chunk relay is the unguarded path; the output guard re-chunks held-back text
    // (tests/output_guard.rs checks the guarded relay).
    let gw = gateway_for(&fake, "openai", &[("OUTPUT_GUARD_ENABLED", "false")]).await;
    let resp = gw.chat(&stream_chat("hi", true)).await;
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    let mut expected = openai_chunks("stop");
    expected.push(openai_usage_chunk());
    assert_eq!(chunks, expected);
}

#[tokio::test]
async fn finish_reason_length_passes_through() {
    let fake = Fake::start(Behaviour::Length).await;
    // Chunk-for-chunk relay is the unguarded path; the output guard re-chunks held-back text
    // (tests/output_guard.rs checks the guarded relay).
    let gw = gateway_for(&fake, "openai", &[("OUTPUT_GUARD_ENABLED", "false")]).await;
    let v: Value = gw.chat(&chat("hi")).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let resp = gw.chat(&stream_chat("hi", false)).await;
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    assert_eq!(chunks, openai_chunks("length"));
}

#[tokio::test]
async fn models_and_health_use_v1_models() {
    let fake = Fake::start(Behaviour::Normal).await;
    // The base URL may also be given with its /v1 suffix.
    let url = format!("{}/v1", fake.url);
    let gw = common::gateway(&[("UPSTREAM", "openai"), ("UPSTREAM_URL", &url)]).await;
    let v: Value = gw
        .get("/v1/models", Some(&gw.key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [MODEL]);
    assert_eq!(v["data"][0]["object"], "model");

    let one = gw
        .get("/v1/models/test-model", Some(&gw.key))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = gw
        .get("/v1/models/other-model", Some(&gw.key))
        .send()
        .await
        .unwrap();
    common::expect_error(missing, 404, Some("model_not_found")).await;

    let health = gw.get("/health", None).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
}
