#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Chat through an Ollama upstream (NDJSON `/api/chat`): request translation, the OpenAI
//! shapes the client gets back, usage and finish reasons, streaming with `[DONE]`.

mod common;

use common::{Behaviour, Fake, MODEL, chat, gateway_for, stream_chat};
use serde_json::{Value, json};

#[tokio::test]
async fn non_streaming_request_is_translated_to_ollama() {
    let fake = Fake::start(Behaviour::Normal).await;
    // No canary, so the system messages arrive exactly as sent (tests/output_guard.rs covers it).
    let gw = gateway_for(&fake, "ollama", &[("OUTPUT_CANARY_ENABLED", "false")]).await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 42,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 7,
        "stop": "END",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": "you are a test"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "a picture"},
            {"role": "user", "content": "thanks"}
        ]
    });
    let resp = gw.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let sent = fake.last_body();
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["options"]["num_predict"], 42);
    assert_eq!(sent["options"]["temperature"], 0.5);
    assert_eq!(sent["options"]["top_p"], 0.9);
    assert_eq!(sent["options"]["seed"], 7);
    assert_eq!(sent["options"]["stop"], json!(["END"]));
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "system", "user", "assistant", "user"]);
    assert_eq!(sent["messages"][0]["content"], "be brief");
    assert_eq!(sent["messages"][2]["content"], "what is this?");
    assert_eq!(sent["messages"][2]["images"], json!(["iVBORw0KGgo="]));
    assert!(sent["messages"][3].get("images").is_none());
}

#[tokio::test]
async fn non_streaming_answer_has_openai_shape_and_usage() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let resp = gw.chat(&chat("hi")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-risk-score"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9})
    );
    // Without max_tokens the gateway still bounds the answer (MAX_TOKENS_CAP default).
    assert_eq!(fake.last_body()["options"]["num_predict"], 4096);
}

#[tokio::test]
async fn done_reason_length_becomes_finish_reason_length() {
    let fake = Fake::start(Behaviour::Length).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let v: Value = gw.chat(&chat("hi")).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let resp = gw.chat(&stream_chat("hi", false)).await;
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("length")]);
}

#[tokio::test]
async fn streaming_translates_ndjson_to_sse_chunks() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let resp = gw.chat(&stream_chat("hi", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(resp.headers().contains_key("x-risk-score"));
    assert!(resp.headers().contains_key("x-request-id"));
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    assert_eq!(fake.last_body()["stream"], true);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["model"], MODEL);
        assert_eq!(c["id"], chunks[0]["id"], "one id for the whole stream");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(common::streamed_text(&chunks), "Hello world");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(
        common::usage_chunks(&chunks).is_empty(),
        "no usage chunk unless the client asked"
    );
}

#[tokio::test]
async fn streaming_usage_chunk_only_when_asked() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let resp = gw.chat(&stream_chat("hi", true)).await;
    let chunks = common::sse_chunks_done(&resp.text().await.unwrap());
    let usage = common::usage_chunks(&chunks);
    assert_eq!(usage.len(), 1);
    assert_eq!(
        usage[0]["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9})
    );
    assert!(
        std::ptr::eq(*usage.last().unwrap(), chunks.last().unwrap()),
        "usage is the last chunk"
    );
}

#[tokio::test]
async fn remote_image_urls_are_refused_for_ollama() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]});
    let err = common::expect_error(gw.chat(&body).await, 400, None).await;
    assert!(
        err["message"].as_str().unwrap().contains("data: URL"),
        "{err}"
    );
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn models_come_from_api_tags_filtered_to_allowed() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let resp = gw.get("/v1/models", Some(&gw.key)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [MODEL]);

    let any = gateway_for(&fake, "ollama", &[("ALLOWED_MODELS", "*")]).await;
    let v: Value = any
        .get("/v1/models", Some(&any.key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn health_is_healthy_when_ollama_answers() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[]).await;
    let resp = gw.get("/health", None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["checks"]["upstream"], true);
    assert_eq!(v["checks"]["database"], true);
}
