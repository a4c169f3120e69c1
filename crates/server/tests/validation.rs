#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Request validation: every bad request is refused with the OpenAI error shape naming the
//! field, and never reaches the upstream (a counting fake upstream proves it).

mod common;

use common::{Behaviour, Fake, MODEL, chat, expect_error, gateway_for};
use serde_json::{Value, json};

const LIMITS: [(&str, &str); 4] = [
    ("MAX_BODY_BYTES", "2048"),
    ("MAX_MESSAGES", "4"),
    ("MAX_PROMPT_CHARS", "100"),
    ("MAX_TOKENS_CAP", "64"),
];

async fn setup() -> (Fake, common::Gateway) {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "openai", &LIMITS).await;
    (fake, gw)
}

/// Sends `body` and expects 400 with `param`; returns the error object.
async fn rejected(gw: &common::Gateway, body: &Value, param: Option<&str>) -> Value {
    let err = expect_error(gw.chat(body).await, 400, None).await;
    assert_eq!(err["type"], "invalid_request_error", "{body}: {err}");
    if let Some(p) = param {
        assert_eq!(err["param"], p, "{body}: {err}");
    }
    err
}

#[tokio::test]
async fn body_too_large_is_413_with_content_length() {
    let (fake, gw) = setup().await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(4000)}]});
    let resp = gw
        .post("/v1/chat/completions", Some(&gw.key))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, Some("request_too_large")).await;
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn body_too_large_is_413_when_chunked() {
    let (fake, gw) = setup().await;
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(br#"{"model":"test-model","messages":[{"role":"user","content":""#.to_vec()),
        Ok(vec![b'x'; 1500]),
        Ok(vec![b'x'; 1500]),
        Ok(br#""}]}"#.to_vec()),
    ];
    let resp = gw
        .post("/v1/chat/completions", Some(&gw.key))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, Some("request_too_large")).await;
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn invalid_json_and_wrong_top_level_type_are_400() {
    let (fake, gw) = setup().await;
    for raw in ["{not json", "", "[1,2]", "\"text\""] {
        let resp = gw
            .post("/v1/chat/completions", Some(&gw.key))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, Some("invalid_request")).await;
    }
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn missing_messages_and_model_name_their_param() {
    let (fake, gw) = setup().await;
    rejected(&gw, &json!({"model": MODEL}), Some("messages")).await;
    let no_model = json!({"messages": [{"role": "user", "content": "hi"}]});
    rejected(&gw, &no_model, Some("model")).await;
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn missing_and_mistyped_fields_name_their_param() {
    let (fake, gw) = setup().await;
    rejected(
        &gw,
        &json!({"model": "", "messages": [{"role": "user", "content": "hi"}]}),
        Some("model"),
    )
    .await;
    let bad_role = json!({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]});
    rejected(&gw, &bad_role, Some("messages[0].role")).await;
    let bad_content = json!({"model": MODEL, "messages": [{"role": "user", "content": 42}]});
    let err = rejected(&gw, &bad_content, None).await;
    assert!(
        err["param"]
            .as_str()
            .unwrap()
            .starts_with("messages[0].content"),
        "{err}"
    );
    let bad_part =
        json!({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]});
    let err = rejected(&gw, &bad_part, None).await;
    assert!(
        err["param"]
            .as_str()
            .unwrap()
            .starts_with("messages[0].content"),
        "{err}"
    );
    let empty_parts = json!({"model": MODEL, "messages": [{"role": "user", "content": []}]});
    rejected(&gw, &empty_parts, Some("messages[0].content")).await;
    let no_content = json!({"model": MODEL, "messages": [{"role": "user"}]});
    rejected(&gw, &no_content, Some("messages[0].content")).await;
    let tool = json!({"model": MODEL, "messages": [{"role": "tool", "content": "42"}]});
    rejected(&gw, &tool, Some("messages[0].tool_call_id")).await;
    let stream =
        json!({"model": MODEL, "stream": "yes", "messages": [{"role": "user", "content": "hi"}]});
    rejected(&gw, &stream, Some("stream")).await;
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn message_count_and_size_limits() {
    let (fake, gw) = setup().await;
    let empty = json!({"model": MODEL, "messages": []});
    rejected(&gw, &empty, Some("messages")).await;
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"role": "user", "content": "hi"}))
        .collect();
    let err = rejected(
        &gw,
        &json!({"model": MODEL, "messages": five}),
        Some("messages"),
    )
    .await;
    assert!(err["message"].as_str().unwrap().contains('4'), "{err}");
    // 101 characters across messages (limit 100), counted in characters, not bytes.
    let long = json!({"model": MODEL, "messages": [
        {"role": "system", "content": "é".repeat(60)},
        {"role": "user", "content": "é".repeat(41)}
    ]});
    rejected(&gw, &long, Some("messages")).await;
    assert_eq!(fake.hits(), 0);
    // Exactly at the limits is fine.
    let ok = json!({"model": MODEL, "messages": [
        {"role": "system", "content": "é".repeat(60)},
        {"role": "user", "content": "é".repeat(40)}
    ]});
    assert_eq!(gw.chat(&ok).await.status(), 200);
}

#[tokio::test]
async fn max_tokens_and_sampling_ranges() {
    let (fake, gw) = setup().await;
    for (field, value) in [
        ("max_tokens", json!(65)),
        ("max_tokens", json!(0)),
        ("max_completion_tokens", json!(1000)),
        ("temperature", json!(2.5)),
        ("temperature", json!(-0.1)),
        ("top_p", json!(1.5)),
        ("presence_penalty", json!(3)),
        ("frequency_penalty", json!(-3)),
        ("n", json!(9)),
        ("top_logprobs", json!(21)),
        ("stop", json!(["a", "b", "c", "d", "e"])),
    ] {
        let mut body = chat("hi");
        body[field] = value;
        let param = if field == "max_completion_tokens" {
            "max_tokens"
        } else {
            field
        };
        rejected(&gw, &body, Some(param)).await;
    }
    assert_eq!(fake.hits(), 0);
    let mut ok = chat("hi");
    ok["max_tokens"] = 64.into();
    ok["temperature"] = 2.into();
    assert_eq!(gw.chat(&ok).await.status(), 200);
    assert_eq!(fake.last_body()["max_tokens"], 64);
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let (fake, gw) = setup().await;
    let mut body = chat("hi");
    body["model"] = "gpt-4o".into();
    let err = expect_error(gw.chat(&body).await, 404, Some("model_not_found")).await;
    assert_eq!(err["type"], "not_found_error");
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn unknown_fields_and_content_parts_are_accepted() {
    let (fake, gw) = setup().await;
    let mut body = chat("hi");
    body["some_future_sdk_field"] = json!({"nested": true});
    body["metadata"] = json!({"k": "v"});
    body["messages"][0]["unknown_message_field"] = 1.into();
    assert_eq!(gw.chat(&body).await.status(), 200);
    assert_eq!(
        fake.last_body()["some_future_sdk_field"],
        json!({"nested": true})
    );

    let parts = json!({"model": MODEL, "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
        {"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
        ]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "result"}
    ]});
    assert_eq!(gw.chat(&parts).await.status(), 200);
    assert_eq!(fake.hits(), 2);
}
