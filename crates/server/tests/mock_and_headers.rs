#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The built-in mock upstream end to end, `/health`, `/v1/models`, and the response headers
//! every client sees (`X-Request-ID`, `X-Risk-Score`).

mod common;

use common::{MODEL, chat, expect_error, gateway, stream_chat};
use serde_json::{Value, json};

#[tokio::test]
async fn mock_non_streaming() {
    let gw = gateway(&[]).await;
    let resp = gw.chat(&chat("What is 2 + 3?")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["choices"][0]["message"]["content"], "2 + 3 = 5.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn mock_streaming_with_and_without_usage() {
    let gw = gateway(&[]).await;
    let expected: Value = gw.chat(&chat("hello there")).await.json().await.unwrap();
    let expected = expected["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = gw.chat(&stream_chat("hello there", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-risk-score"));
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    assert_eq!(common::streamed_text(&chunks), expected);
    assert!(common::usage_chunks(&chunks).is_empty());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let resp = gw.chat(&stream_chat("hello there", true)).await;
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    let usage = common::usage_chunks(&chunks);
    assert_eq!(usage.len(), 1);
    assert!(usage[0]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        chunks.last().unwrap()["choices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn mock_max_tokens_cuts_with_finish_reason_length() {
    let gw = gateway(&[]).await;
    let mut body = chat("hello there");
    body["max_tokens"] = 3.into();
    let v: Value = gw.chat(&body).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn request_id_is_generated_echoed_or_replaced() {
    let gw = gateway(&[]).await;
    // Generated: a UUID, on success and on error, authenticated or not.
    let ok = gw.chat(&chat("hi")).await;
    let unauth = gw.get("/v1/models", None).send().await.unwrap();
    let health = gw.get("/health", None).send().await.unwrap();
    let mut seen = Vec::new();
    for resp in [&ok, &unauth, &health] {
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("not a UUID: {id}"));
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "ids are unique");

    // Echoed when sane.
    let sane = "client-req_42.a";
    let resp = gw
        .post("/v1/chat/completions", Some(&gw.key))
        .header("x-request-id", sane)
        .json(&chat("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], sane);
    let resp = gw
        .get("/v1/models", None)
        .header("x-request-id", sane)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], sane, "echoed on errors too");

    // Replaced when not.
    let long = "a".repeat(65);
    for insane in [
        "has spaces",
        "semi;colon",
        "new\\nline",
        long.as_str(),
        "ümlaut",
    ] {
        let resp = gw
            .post("/v1/chat/completions", Some(&gw.key))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(insane.as_bytes()).unwrap(),
            )
            .json(&chat("hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, insane);
        uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{insane:?} gave {id}"));
    }
}

#[tokio::test]
async fn risk_score_header_on_chat_responses() {
    let gw = gateway(&[]).await;
    for body in [chat("hi"), stream_chat("hi", false)] {
        let resp = gw.chat(&body).await;
        assert_eq!(resp.status(), 200);
        let score: u32 = resp.headers()["x-risk-score"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(score <= 100, "{score}");
    }
}

#[tokio::test]
async fn health_needs_no_auth_and_reports_checks() {
    let gw = gateway(&[]).await;
    let resp = gw.get("/health", None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["checks"]["upstream"], true);
    assert_eq!(v["checks"]["database"], true);
    assert!(v["checks"].as_object().unwrap().contains_key("redis"));
    // A key, even a wrong one, changes nothing on a public route.
    let resp = gw.get("/health", Some("garbage")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn models_lists_the_allowed_model() {
    let gw = gateway(&[]).await;
    let resp = gw.get("/v1/models", Some(&gw.key)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], MODEL);
    assert_eq!(v["data"][0]["object"], "model");
    let missing = gw
        .get("/v1/models/gpt-4", Some(&gw.key))
        .send()
        .await
        .unwrap();
    expect_error(missing, 404, Some("model_not_found")).await;
    let body = json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]});
    expect_error(gw.chat(&body).await, 404, Some("model_not_found")).await;
}
