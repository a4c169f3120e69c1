//! Prefix-cache isolation against a recording OpenAI-compatible upstream: per-tenant
//! `cache_salt` (stable, distinct, well-formed), client salts never forwarded, cache-hit
//! counts stripped, and the operator's choice when the upstream cannot salt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_KEY, Behaviour, Fake, chat, expect_error, gateway, gateway_for, stream_chat};
use serde_json::{Value, json};

const SECRET: &str = "cache-salt-secret-0123456789abcdef0123";

fn well_formed(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A request carrying a salt copied from someone else.
fn with_client_salt(mut body: Value) -> Value {
    body["cache_salt"] = "copied-from-the-victim".into();
    body
}

async fn salt_sent(fake: &Fake) -> Option<String> {
    fake.last_body()
        .get("cache_salt")
        .map(|s| s.as_str().unwrap().to_string())
}

#[tokio::test]
async fn each_tenant_gets_its_own_stable_salt_and_client_salts_never_pass() {
    let fake = Fake::start(Behaviour::Normal).await;
    fake.set_version("0.9.2");
    let gw = gateway_for(&fake, "openai", &[("CACHE_SALT_SECRET", SECRET)]).await;
    let (_, key_b) = gw.create_tenant("beta").await;

    assert_eq!(gw.chat(&with_client_salt(chat("hi"))).await.status(), 200);
    let a1 = salt_sent(&fake)
        .await
        .expect("tenant A's request carries a salt");
    let resp = gw.chat(&with_client_salt(stream_chat("hi", false))).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let a2 = salt_sent(&fake).await.unwrap();
    assert_eq!(
        gw.chat_as(&key_b, &with_client_salt(chat("hi")))
            .await
            .status(),
        200
    );
    let b = salt_sent(&fake).await.unwrap();

    assert_eq!(
        a1, a2,
        "a tenant's salt is stable across requests and modes"
    );
    assert_ne!(a1, b, "tenants never share a salt");
    for s in [&a1, &b] {
        assert!(well_formed(s), "{s}");
        assert_ne!(s, "copied-from-the-victim");
    }

    let health: Value = gw
        .get("/health", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["prefix_cache"]["salting"], true, "{health}");
    assert_eq!(health["prefix_cache"]["isolated"], true);
    assert_eq!(health["warnings"], json!([]));
}

#[tokio::test]
async fn an_upstream_that_is_not_vllm_gets_no_salt_and_health_warns() {
    let fake = Fake::start(Behaviour::Normal).await; // no /version: not vLLM
    let gw = gateway_for(&fake, "openai", &[]).await;
    assert_eq!(gw.chat(&with_client_salt(chat("hi"))).await.status(), 200);
    assert_eq!(
        salt_sent(&fake).await,
        None,
        "no salt of ours, and not the client's"
    );

    let health: Value = gw
        .get("/health", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["prefix_cache"]["isolated"], false, "{health}");
    assert_eq!(health["prefix_cache"]["policy"], "accept-risk");
    let warning = health["warnings"][0].as_str().unwrap();
    assert!(warning.contains("cannot be isolated"), "{warning}");
}

#[tokio::test]
async fn the_operator_can_declare_salting_support() {
    let fake = Fake::start(Behaviour::Normal).await; // cannot be asked
    let gw = gateway_for(&fake, "openai", &[("PREFIX_CACHE_SALT", "on")]).await;
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
    assert!(well_formed(&salt_sent(&fake).await.unwrap()));

    let fake = Fake::start(Behaviour::Normal).await;
    fake.set_version("0.10.0");
    let gw = gateway_for(&fake, "openai", &[("PREFIX_CACHE_SALT", "off")]).await;
    assert_eq!(gw.chat(&with_client_salt(chat("hi"))).await.status(), 200);
    assert_eq!(salt_sent(&fake).await, None);
}

#[tokio::test]
async fn older_vllm_gets_no_salt() {
    let fake = Fake::start(Behaviour::Normal).await;
    fake.set_version("0.8.5");
    let gw = gateway_for(&fake, "openai", &[]).await;
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
    assert_eq!(salt_sent(&fake).await, None);
}

#[tokio::test]
async fn cached_token_counts_never_reach_the_client() {
    let fake = Fake::start(Behaviour::Normal).await;
    fake.set_cached_tokens(true);
    let gw = gateway_for(&fake, "openai", &[]).await;

    let v: Value = gw.chat(&chat("hi")).await.json().await.unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 7, "{v}");
    assert!(v["usage"].get("prompt_tokens_details").is_none(), "{v}");

    let body = gw
        .chat(&stream_chat("hi", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"usage\""), "{body}");
    assert!(!body.contains("cached_tokens"), "{body}");
}

#[tokio::test]
async fn refuse_keeps_an_unsalted_upstream_to_one_tenant() {
    let fake = Fake::start(Behaviour::Normal).await;
    let gw = gateway_for(&fake, "ollama", &[("UNSALTED_UPSTREAM", "refuse")]).await;
    let health: Value = gw
        .get("/health", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["prefix_cache"]["policy"], "refuse", "{health}");
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("single tenant")
    );

    // The admin API will not add a second tenant.
    let resp = gw
        .post("/v1/tenants", Some(ADMIN_KEY))
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 409, Some("conflict")).await;

    // A second tenant added behind the gateway's back (as the CLI would) is not served.
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);
    let store = secureinfer::store::connect(&gw.database_url).await.unwrap();
    let key = secureinfer::auth::keys::generate();
    store.create_tenant("sneaky", &key.stored).await.unwrap();
    use secrecy::ExposeSecret;
    let resp = gw.chat_as(key.key.expose_secret(), &chat("hi")).await;
    expect_error(resp, 403, Some("multi_tenant_refused")).await;
    assert_eq!(gw.chat(&chat("hi")).await.status(), 200);

    // And a restart with two active tenants stops with a message naming the setting.
    let cfg = secureinfer::config::Config::from_lookup(&|k| match k {
        "DATABASE_URL" => Some(gw.database_url.clone()),
        "UPSTREAM" => Some("ollama".into()),
        "UPSTREAM_URL" => Some(fake.url.clone()),
        "UNSALTED_UPSTREAM" => Some("refuse".into()),
        "ADMIN_API_KEY" => Some(ADMIN_KEY.into()),
        _ => None,
    })
    .unwrap();
    let err = secureinfer::server::build_state(cfg).await.err().unwrap();
    assert!(err.to_string().contains("UNSALTED_UPSTREAM"), "{err}");
}

#[tokio::test]
async fn production_defaults_to_refuse_and_the_mock_needs_no_salt() {
    let cfg = |env: &'static str, upstream: &'static str| {
        secureinfer::config::Config::from_lookup(&move |k| match k {
            "SECUREINFER_ENV" => Some(env.into()),
            "UPSTREAM" => Some(upstream.into()),
            "ADMIN_API_KEY" => Some(ADMIN_KEY.into()),
            _ => None,
        })
        .unwrap()
    };
    use secureinfer::config::UnsaltedPolicy;
    assert_eq!(
        cfg("production", "ollama").isolation.unsalted,
        UnsaltedPolicy::Refuse
    );
    assert_eq!(
        cfg("development", "ollama").isolation.unsalted,
        UnsaltedPolicy::AcceptRisk
    );
    let gw = gateway(&[]).await; // mock
    let health: Value = gw
        .get("/health", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["prefix_cache"]["shared_cache"], false, "{health}");
    assert_eq!(health["prefix_cache"]["isolated"], true);
}

#[tokio::test]
async fn bad_settings_stop_start_up_naming_the_variable() {
    for (var, value) in [
        ("PREFIX_CACHE_SALT", "maybe"),
        ("UNSALTED_UPSTREAM", "yes"),
        ("CACHE_SALT_SECRET", "short"),
        ("REDIS_URL", "http://localhost:6379"),
        ("CONTEXT_MAX_MESSAGES", "0"),
    ] {
        let err = secureinfer::config::Config::from_lookup(&|k| (k == var).then(|| value.into()))
            .err()
            .unwrap_or_else(|| panic!("{var}={value} was accepted"));
        assert_eq!(err.var, var);
        assert!(!err.to_string().contains("short"), "secrets are not echoed");
    }
}
