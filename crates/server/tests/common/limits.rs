//! Abuse-limit scenarios shared by the in-process and the Redis test files: the same HTTP
//! behaviour is asserted for both backends.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Behaviour, Fake, Gateway, MODEL, chat, expect_error, gateway, gateway_for};

/// A numeric response header, or a panic naming it.
pub fn header_u64(resp: &reqwest::Response, name: &str) -> u64 {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header; headers: {:?}", resp.headers()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", resp.headers()[name]))
}

/// Sends `body` until it is admitted. `strict`: the first attempt must already be (the slot
/// was released before the previous response ended). Otherwise the release is asynchronous
/// (a client disconnect, or a Redis settlement after an error) and it is polled, bounded.
pub async fn until_admitted(gw: &Gateway, body: &Value, strict: bool) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = gw.chat(body).await;
        if resp.status() == StatusCode::OK {
            return resp;
        }
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(!strict, "expected 200 at once, got {status}: {text}");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
        assert!(
            Instant::now() < deadline,
            "still refused after 10 s: the slot was not released ({text})"
        );
        // Polling for an asynchronous release, with a deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With a cap of one request in flight, the slot comes back after every way a request can end:
/// success, upstream error, upstream timeout, and the client going away mid-stream or before
/// the answer. `vars` picks the backend; `strict_errors`: whether the release after an error is
/// synchronous (in-process) or settled in the background (Redis).
pub async fn concurrency_slot_released_on_every_ending(vars: &[(&str, &str)], strict_errors: bool) {
    let fake = Fake::start(Behaviour::Normal).await;
    let mut all = vec![
        ("TENANT_MAX_CONCURRENT", "1"),
        ("UPSTREAM_TIMEOUT", "400ms"),
    ];
    all.extend_from_slice(vars);
    let gw = gateway_for(&fake, "openai", &all).await;
    let body = chat("hello");

    // Success, non-streamed and streamed: the next request is admitted at once.
    for _ in 0..3 {
        let resp = until_admitted(&gw, &body, true).await;
        resp.text().await.unwrap();
    }
    let resp = until_admitted(&gw, &super::stream_chat("hello", true), true).await;
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    until_admitted(&gw, &body, true).await;

    // Upstream error.
    fake.set(Behaviour::Status(500, r#"{"error":{"message":"boom"}}"#));
    expect_error(gw.chat(&body).await, 502, None).await;
    fake.set(Behaviour::Normal);
    until_admitted(&gw, &body, strict_errors).await;

    // Upstream timeout.
    fake.set(Behaviour::Hang);
    expect_error(gw.chat(&body).await, 504, Some("upstream_timeout")).await;
    fake.set(Behaviour::Normal);
    until_admitted(&gw, &body, strict_errors).await;

    // The client disconnects mid-stream: while the stream runs the cap holds...
    fake.set(Behaviour::Endless);
    let mut stream = gw.chat(&super::stream_chat("hello", false)).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.chunk().await.unwrap().is_some());
    fake.set(Behaviour::Normal);
    let refused = gw.chat(&body).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let e = expect_error(refused, 429, Some("concurrency_limit_exceeded")).await;
    assert!(e["message"].as_str().unwrap().contains("1 at once"), "{e}");
    // ...and when the client goes, the upstream is cancelled and the slot comes back.
    drop(stream);
    fake.wait_dropped().await;
    until_admitted(&gw, &body, false).await;

    // The client gives up before a non-streamed answer arrives.
    fake.set(Behaviour::Hang);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(&body)
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    fake.set(Behaviour::Normal);
    until_admitted(&gw, &body, false).await;
}

fn prompt_tokens(body: &Value) -> u64 {
    let messages: Vec<secureinfer::openai::Message> =
        serde_json::from_value(body["messages"].clone()).unwrap();
    secureinfer::limits::tokens::prompt_tokens(&messages)
}

/// Token budget: reservation of prompt + max_tokens up front, settlement to the reported usage
/// (non-streamed and streamed), refusal of what cannot fit. 600 tokens per minute refill at
/// 10 per second; `slack` bounds what refilled while the test ran.
pub async fn token_budget_reserves_and_settles(vars: &[(&str, &str)]) {
    let mut all = vec![("TENANT_TOKEN_LIMIT_TPM", "600")];
    all.extend_from_slice(vars);
    let gw = gateway(&all).await;
    let started = Instant::now();
    let slack = || 1 + (started.elapsed().as_secs_f64() * 10.0).ceil() as u64;

    let body = json!({"model": MODEL, "max_tokens": 500,
                      "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let reserve = prompt_tokens(&body) + 500;

    let first = gw.chat(&body).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "600");
    let rem1 = header_u64(&first, "x-ratelimit-remaining-tokens");
    assert_eq!(
        rem1,
        600 - reserve,
        "the reservation is prompt + max_tokens"
    );
    let v: Value = first.json().await.unwrap();
    let used1 = v["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used1 < reserve / 2, "mock usage {used1}");

    // It fits a second time only because the first was settled to its usage.
    let second = gw.chat(&body).await;
    assert_eq!(second.status(), StatusCode::OK);
    let rem2 = header_u64(&second, "x-ratelimit-remaining-tokens");
    let charged = 600 - reserve - rem2;
    assert!(
        charged <= used1 + 1 && charged + slack() >= used1,
        "charged {charged} for a request that used {used1}"
    );
    let v: Value = second.json().await.unwrap();
    let used2 = v["usage"]["total_tokens"].as_u64().unwrap();

    // A stream counts with the usage it reports at its end.
    let stream_body = json!({"model": MODEL, "max_tokens": 300, "stream": true,
                             "stream_options": {"include_usage": true},
                             "messages": [{"role": "user", "content": "Tell me about Paris."}]});
    let resp = gw.chat(&stream_body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let chunks = super::sse_chunks_done(&text);
    let streamed = super::usage_chunks(&chunks)[0]["usage"]["total_tokens"]
        .as_u64()
        .unwrap();
    let probe = json!({"model": MODEL, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]});
    let after = gw.chat(&probe).await;
    assert_eq!(after.status(), StatusCode::OK);
    let rem = header_u64(&after, "x-ratelimit-remaining-tokens");
    let probe_used = after.json::<Value>().await.unwrap()["usage"]["total_tokens"]
        .as_u64()
        .unwrap();
    let charged = 600 - (prompt_tokens(&probe) + 1) - rem;
    let expected = used1 + used2 + streamed;
    assert!(
        charged <= expected + 1 && charged + slack() >= expected,
        "charged {charged}, used {expected} (of which the stream {streamed})"
    );

    // More than the whole budget: refused at once, and told why.
    let huge = json!({"model": MODEL, "max_tokens": 1000,
                      "messages": [{"role": "user", "content": "hi"}]});
    let resp = gw.chat(&huge).await;
    assert!(resp.headers().contains_key("retry-after"));
    let e = expect_error(resp, 429, Some("request_exceeds_token_limit")).await;
    assert!(
        e["message"].as_str().unwrap().contains("lower max_tokens"),
        "{e}"
    );

    // Fits the budget but not what is left: refused with the wait until it fits.
    let big = json!({"model": MODEL, "max_tokens": 590,
                     "messages": [{"role": "user", "content": "hi"}]});
    let resp = gw.chat(&big).await;
    let retry_ms: u64 = header_u64(&resp, "retry-after-ms");
    assert!(retry_ms > 1_000, "retry-after-ms {retry_ms}");
    assert_eq!(header_u64(&resp, "x-ratelimit-limit-tokens"), 600);
    let e = expect_error(resp, 429, Some("token_rate_limit_exceeded")).await;
    assert!(e["message"].as_str().unwrap().contains("tokens"), "{e}");
    // The refusals charged nothing: since the last probe only its own usage was spent.
    let again = gw.chat(&probe).await;
    let rem_again = header_u64(&again, "x-ratelimit-remaining-tokens");
    assert!(
        rem_again + probe_used + 1 >= rem && rem_again + probe_used <= rem + slack(),
        "refused requests were charged: {rem}, then {rem_again} after a probe of {probe_used}"
    );
}

/// A stream the client abandons is charged its prompt and the part that was generated, not
/// its whole reservation and not nothing.
pub async fn abandoned_stream_is_charged_what_it_used(vars: &[(&str, &str)]) {
    let fake = Fake::start(Behaviour::Endless).await;
    let mut all = vec![("TENANT_TOKEN_LIMIT_TPM", "6000")];
    all.extend_from_slice(vars);
    let gw = gateway_for(&fake, "openai", &all).await;
    let body = json!({"model": MODEL, "max_tokens": 4000, "stream": true,
                      "messages": [{"role": "user", "content": "sing"}]});
    let mut stream = gw.chat(&body).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let reserved_left = header_u64(&stream, "x-ratelimit-remaining-tokens");
    // A few chunks of "la " arrive, then the client leaves.
    for _ in 0..3 {
        assert!(stream.chunk().await.unwrap().is_some());
    }
    drop(stream);
    fake.wait_dropped().await;
    fake.set(Behaviour::Normal);
    let probe = json!({"model": MODEL, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]});
    let probe_cost = prompt_tokens(&probe) + 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = gw.chat(&probe).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let rem = header_u64(&resp, "x-ratelimit-remaining-tokens") + probe_cost;
        // Settled: most of the 4000 came back, but not everything.
        if rem > reserved_left + 3000 {
            assert!(rem < 6000, "an abandoned stream was charged nothing");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reservation was never settled"
        );
        // Polling for the asynchronous settlement after the disconnect, with a deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
