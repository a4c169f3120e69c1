#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Authentication: every `/v1` route needs a valid key; revocation and rotation act at once
//! (even with a key cache far longer than the test: admin changes clear it); the admin key
//! and tenant keys each open only their own routes. Rejected requests never reach the model.

mod common;

use common::{ADMIN_KEY, Behaviour, Fake, chat, expect_error, gateway_for};
use serde_json::json;

async fn setup() -> (Fake, common::Gateway) {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "openai", &[("AUTH_CACHE_TTL", "60s")]).await;
    (fake, gw)
}

#[tokio::test]
async fn missing_key_is_401_with_www_authenticate() {
    let (fake, gw) = setup().await;
    let resp = gw
        .post("/v1/chat/completions", None)
        .json(&chat("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert!(resp.headers().contains_key("x-request-id"));
    let err = expect_error(resp, 401, Some("invalid_api_key")).await;
    assert_eq!(err["type"], "authentication_error");
    for path in ["/v1/models", "/v1/tenants"] {
        expect_error(gw.get(path, None).send().await.unwrap(), 401, None).await;
    }
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn malformed_keys_are_401() {
    let (fake, gw) = setup().await;
    for key in [
        "nope",
        "sk-si-",
        "sk-si-zz-zz",
        "sk-proj-0123456789abcdef",
        &gw.key.to_uppercase(),
        &format!("{}x", gw.key),
    ] {
        let resp = gw.chat_as(key, &chat("hi")).await;
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{key}");
        expect_error(resp, 401, Some("invalid_api_key")).await;
    }
    // A scheme other than Bearer is not a key either.
    let resp = gw
        .post("/v1/chat/completions", None)
        .header("authorization", format!("Basic {}", gw.key))
        .json(&chat("hi"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, None).await;
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn wrong_secret_for_a_real_key_id_is_401() {
    let (fake, gw) = setup().await;
    // sk-si-<16 hex id>-<64 hex secret>: keep the id, change the secret.
    let (prefix, secret) = gw.key.rsplit_once('-').unwrap();
    assert_eq!(secret.len(), 64);
    let flipped = if secret.starts_with('0') { "1" } else { "0" };
    let wrong = format!("{prefix}-{flipped}{}", &secret[1..]);
    expect_error(
        gw.chat_as(&wrong, &chat("hi")).await,
        401,
        Some("invalid_api_key"),
    )
    .await;
    assert_eq!(fake.hits(), 0);
    // The genuine key works.
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn revoked_tenant_key_is_401_at_once() {
    let (fake, gw) = setup().await;
    let (id, key) = gw.create_tenant("to-revoke").await;
    assert_eq!(gw.chat_as(&key, &chat("hi")).await.status(), 200);
    let path = format!("/v1/tenants/{id}/revoke");
    let resp = gw.post(&path, Some(ADMIN_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["tenant"]["status"], "revoked");
    assert!(v["tenant"]["revoked_at"].is_string());
    expect_error(
        gw.chat_as(&key, &chat("hi")).await,
        401,
        Some("invalid_api_key"),
    )
    .await;
    let models = gw.get("/v1/models", Some(&key)).send().await.unwrap();
    expect_error(models, 401, None).await;
    assert_eq!(fake.hits(), 1);
    // Other tenants are unaffected.
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
}

#[tokio::test]
async fn rotated_key_old_is_401_new_is_200_at_once() {
    let (_fake, gw) = setup().await;
    let (id, old) = gw.create_tenant("to-rotate").await;
    assert_eq!(gw.chat_as(&old, &chat("hi")).await.status(), 200);
    let path = format!("/v1/tenants/{id}/rotate-key");
    let resp = gw.post(&path, Some(ADMIN_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    let new = v["api_key"].as_str().unwrap().to_string();
    assert!(new.starts_with("sk-si-"));
    assert_ne!(new, old);
    assert!(v["tenant"]["key_rotated_at"].is_string());
    expect_error(
        gw.chat_as(&old, &chat("hi")).await,
        401,
        Some("invalid_api_key"),
    )
    .await;
    assert_eq!(gw.chat_as(&new, &chat("hi")).await.status(), 200);
}

#[tokio::test]
async fn admin_key_cannot_be_used_for_chat() {
    let (fake, gw) = setup().await;
    let err = expect_error(gw.chat_as(ADMIN_KEY, &chat("hi")).await, 400, None).await;
    assert!(
        err["message"].as_str().unwrap().contains("tenant key"),
        "{err}"
    );
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn tenant_key_on_admin_routes_is_403() {
    let (_fake, gw) = setup().await;
    let id = gw.tenant_id.clone();
    let create = gw
        .post("/v1/tenants", Some(&gw.key))
        .json(&json!({"name": "sneaky"}))
        .send()
        .await
        .unwrap();
    let err = expect_error(create, 403, Some("admin_key_required")).await;
    assert_eq!(err["type"], "permission_error");
    expect_error(
        gw.get("/v1/tenants", Some(&gw.key)).send().await.unwrap(),
        403,
        None,
    )
    .await;
    let own = format!("/v1/tenants/{id}");
    expect_error(gw.get(&own, Some(&gw.key)).send().await.unwrap(), 403, None).await;
    for action in ["rotate-key", "revoke"] {
        let path = format!("/v1/tenants/{id}/{action}");
        let resp = gw.post(&path, Some(&gw.key)).send().await.unwrap();
        expect_error(resp, 403, Some("admin_key_required")).await;
    }
    // The tenant was not revoked by its own failed attempt.
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
}
