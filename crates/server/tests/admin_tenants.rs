#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Admin API: tenants are created with a key shown exactly once, listed without keys, and
//! named or addressed wrongly with the right 4xx.

mod common;

use common::{ADMIN_KEY, expect_error, gateway};
use serde_json::{Value, json};

#[tokio::test]
async fn create_returns_201_and_the_key_once() {
    let gw = gateway(&[]).await;
    let resp = gw
        .post("/v1/tenants", Some(ADMIN_KEY))
        .json(&json!({"name": "Team Blue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    let key = v["api_key"].as_str().unwrap().to_string();
    let id = v["tenant"]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-si-"), "{key}");
    assert_eq!(v["tenant"]["name"], "Team Blue");
    assert_eq!(v["tenant"]["status"], "active");
    assert!(v["tenant"]["created_at"].is_string());

    // The key works for chat.
    assert_eq!(gw.chat_as(&key, &common::chat("hi")).await.status(), 200);

    // Neither the list nor the single view ever shows a key again.
    let list = gw.get("/v1/tenants", Some(ADMIN_KEY)).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let text = list.text().await.unwrap();
    assert!(!text.contains(&key) && !text.contains("api_key") && !text.contains("sk-si-"));
    let list: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Team Blue") && names.contains(&"acme"),
        "{names:?}"
    );

    let one = gw
        .get(&format!("/v1/tenants/{id}"), Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let text = one.text().await.unwrap();
    assert!(!text.contains("sk-si-"), "{text}");
    let one: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(one["id"], id.as_str());
}

#[tokio::test]
async fn duplicate_name_is_409() {
    let gw = gateway(&[]).await;
    gw.create_tenant("dup").await;
    let resp = gw
        .post("/v1/tenants", Some(ADMIN_KEY))
        .json(&json!({"name": "dup"}))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 409, Some("conflict")).await;
    assert_eq!(err["type"], "conflict_error");
}

#[tokio::test]
async fn bad_names_are_400_naming_the_field() {
    let gw = gateway(&[]).await;
    let long = "x".repeat(65);
    for name in ["", " padded", "semi;colon", "new\nline", long.as_str()] {
        let resp = gw
            .post("/v1/tenants", Some(ADMIN_KEY))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400, None).await;
        assert_eq!(err["param"], "name", "{name:?}: {err}");
    }
    // Missing or mistyped name, and a body that is not JSON.
    for body in [json!({}), json!({"name": 5})] {
        let resp = gw
            .post("/v1/tenants", Some(ADMIN_KEY))
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400, None).await;
        assert!(err["message"].as_str().unwrap().contains("name"), "{err}");
    }
    let resp = gw
        .post("/v1/tenants", Some(ADMIN_KEY))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, None).await;
}

#[tokio::test]
async fn unknown_tenant_id_is_404_for_get_rotate_revoke() {
    let gw = gateway(&[]).await;
    let unknown = "00000000-0000-0000-0000-000000000000";
    let get = gw
        .get(&format!("/v1/tenants/{unknown}"), Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_error(get, 404, Some("not_found")).await;
    for action in ["rotate-key", "revoke"] {
        let path = format!("/v1/tenants/{unknown}/{action}");
        let resp = gw.post(&path, Some(ADMIN_KEY)).send().await.unwrap();
        expect_error(resp, 404, Some("not_found")).await;
    }
    // Names are not ids on the HTTP API.
    let by_name = gw
        .post("/v1/tenants/acme/revoke", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_error(by_name, 404, None).await;
    assert_eq!(gw.chat(&common::chat("hi")).await.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let gw = gateway(&[]).await;
    let resp = gw.get("/v1/nope", Some(&gw.key)).send().await.unwrap();
    // Unknown /v1 routes still require a key first, or 404 — never a bare body.
    let status = resp.status().as_u16();
    assert!(status == 404 || status == 401, "{status}");
    expect_error(resp, status, None).await;
    let resp = gw.get("/nope", None).send().await.unwrap();
    expect_error(resp, 404, None).await;
    let resp = gw
        .get("/v1/chat/completions", Some(&gw.key))
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, None).await;
}
