//! Only inference and read endpoints of the model server are reachable through the gateway:
//! its management endpoints are not, whatever key, method or path spelling is used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_KEY, Behaviour, Fake, chat, gateway_for};

const PATHS: &[&str] = &[
    "/api/pull",
    "/api/push",
    "/api/create",
    "/api/copy",
    "/api/delete",
    "/api/blobs/sha256:0000",
    "/api/chat",
    "/api/tags",
    "/v1/api/pull",
    "/v1/../api/pull",
    "/v1/%2e%2e/api/delete",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/reset_prefix_cache",
    "/v1/reset_prefix_cache",
    "/sleep",
    "/wake_up",
    "/collective_rpc",
    "/version",
    "/v1/models/../../api/delete",
];

#[tokio::test]
async fn management_endpoints_are_never_forwarded() {
    for kind in ["ollama", "openai"] {
        let fake = Fake::start(Behaviour::Normal).await;
        // Hundreds of requests in a burst from one address: no abuse limits.
        let gw = gateway_for(
            &fake,
            kind,
            &[("RATE_LIMIT_RPM", "0"), ("TENANT_RATE_LIMIT_RPM", "0")],
        )
        .await;
        for path in PATHS {
            for key in [Some(gw.key.as_str()), Some(ADMIN_KEY), None] {
                for method in [
                    reqwest::Method::GET,
                    reqwest::Method::POST,
                    reqwest::Method::DELETE,
                ] {
                    let mut rb = gw
                        .client
                        .request(method.clone(), format!("{}{path}", gw.url))
                        .json(&serde_json::json!({"model": "test-model", "name": "x"}));
                    if let Some(k) = key {
                        rb = rb.bearer_auth(k);
                    }
                    let status = rb.send().await.unwrap().status().as_u16();
                    assert!(
                        [401, 404, 405].contains(&status),
                        "{kind} {method} {path}: {status}"
                    );
                }
            }
        }
        // Inference still works, and the model server saw nothing but start-up probes and it.
        assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
        let others: Vec<String> = fake
            .other_requests()
            .into_iter()
            .filter(|r| r != "GET /version")
            .collect();
        assert!(others.is_empty(), "{kind}: {others:?}");
        assert_eq!(fake.hits(), 1, "{kind}");
    }
}
