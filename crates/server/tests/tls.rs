#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! HTTPS termination on the real binary, with certificates made in the test: the configured
//! certificate is served, a renewed one takes over without a restart (and a broken renewal
//! leaves the old one in service), client certificates are required or optional, and a
//! verified client certificate's common name can identify the tenant.

mod common;

use std::time::{Duration, Instant};

use common::certs::{Ca, https_client};
use common::process::{Process, serve_fails};
use common::{ADMIN_KEY, chat, expect_error};
use serde_json::{Value, json};

struct Tls {
    dir: tempfile::TempDir,
    ca: Ca,
    cert: String,
    key: String,
}

/// A CA and a server certificate from it, written into a fresh directory.
fn server_files() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test server CA");
    let (cert, key) = ca.server("gateway").write(dir.path(), "server");
    Tls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        dir,
        ca,
    }
}

fn serve(t: &Tls, extra: &[(&str, &str)]) -> Process {
    let db = common::database_url(t.dir.path());
    let mut vars = vec![
        ("DATABASE_URL", db.as_str()),
        ("TLS_CERT_FILE", t.cert.as_str()),
        ("TLS_KEY_FILE", t.key.as_str()),
    ];
    vars.extend_from_slice(extra);
    Process::serve(t.dir.path(), &vars).unwrap()
}

async fn health(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    Ok(client
        .get(format!("{url}/health"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate_only() {
    let t = server_files();
    let gw = serve(&t, &[]);
    assert!(gw.url.starts_with("https://127.0.0.1:"), "{}", gw.url);

    assert_eq!(
        health(&https_client(&t.ca, None), &gw.url).await.unwrap(),
        200
    );

    // A client that does not trust the CA refuses the certificate.
    let stranger = https_client(&Ca::new("another CA"), None);
    let err = health(&stranger, &gw.url).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = gw.url.replacen("https://", "http://", 1);
    assert!(health(&common::client(), &plain).await.is_err());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_restart_and_a_broken_one_is_not() {
    let t = server_files();
    let gw = serve(&t, &[("TLS_RELOAD_INTERVAL", "100ms")]);
    let old_client = https_client(&t.ca, None);
    assert_eq!(health(&old_client, &gw.url).await.unwrap(), 200);

    // Renewal from a new CA: key first, then certificate, as a careless script might.
    let new_ca = Ca::new("renewed CA");
    let renewed = new_ca.server("gateway-2");
    std::fs::write(&t.key, &renewed.key_pem).unwrap();
    std::fs::write(&t.cert, &renewed.cert_pem).unwrap();

    let new_client = https_client(&new_ca, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&new_client, &gw.url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New connections get the new certificate (established ones keep theirs, as they should).
    assert!(health(&https_client(&t.ca, None), &gw.url).await.is_err());
    drop(old_client);
    gw.wait_for_log("new certificate in service", Duration::from_secs(5))
        .expect("the reload is logged");

    // A key that does not belong to the certificate is refused; the renewed pair stays.
    std::fs::write(&t.key, new_ca.server("x").key_pem).unwrap();
    gw.wait_for_log(
        "still serving the previous certificate",
        Duration::from_secs(20),
    )
    .expect("the unusable files are reported");
    assert_eq!(health(&new_client, &gw.url).await.unwrap(), 200);
}

#[tokio::test]
async fn required_client_certificates_must_come_from_the_client_ca() {
    let t = server_files();
    let client_ca = Ca::new("client CA");
    let ca_file = client_ca.write(&t.dir.path().join("clients.pem"));
    let ca_file = ca_file.display().to_string();
    let gw = serve(&t, &[("TLS_CLIENT_CA_FILE", ca_file.as_str())]);

    let good = client_ca.client("billing-service");
    assert_eq!(
        health(&https_client(&t.ca, Some(&good)), &gw.url)
            .await
            .unwrap(),
        200
    );
    assert!(health(&https_client(&t.ca, None), &gw.url).await.is_err());
    let forged = Ca::new("client CA").client("billing-service");
    assert!(
        health(&https_client(&t.ca, Some(&forged)), &gw.url)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_client_certificate_names_the_tenant() {
    let t = server_files();
    let client_ca = Ca::new("client CA");
    let ca_file = client_ca.write(&t.dir.path().join("clients.pem"));
    let ca_file = ca_file.display().to_string();
    let gw = serve(
        &t,
        &[
            ("TLS_CLIENT_CA_FILE", ca_file.as_str()),
            ("TLS_CLIENT_AUTH", "optional"),
            ("TLS_CLIENT_CERT_TENANT", "true"),
        ],
    );
    // Without a certificate the admin key still works (client certificates are optional).
    let anonymous = https_client(&t.ca, None);
    let mut keys = Vec::new();
    for name in ["acme", "beta"] {
        let resp = anonymous
            .post(format!("{}/v1/tenants", gw.url))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        keys.push((
            v["tenant"]["id"].as_str().unwrap().to_string(),
            v["api_key"].as_str().unwrap().to_string(),
        ));
    }
    let (acme_id, acme_key) = keys[0].clone();
    let (_, beta_key) = keys[1].clone();

    // Chat over a client's connection, with a bearer key or with none.
    let chat_as = |client: &reqwest::Client, key: Option<&str>| {
        let rb = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&chat("hello"));
        let rb = match key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        };
        async move { rb.send().await.unwrap() }
    };

    // The certificate alone authenticates tenant acme.
    let acme = https_client(&t.ca, Some(&client_ca.client("acme")));
    let resp = chat_as(&acme, None).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let risk = acme
        .get(format!("{}/v1/security/risk/{acme_id}", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(risk.status(), 200, "the certificate acts as tenant acme");

    // Its own key over its own certificate is fine; another tenant's key is not.
    assert_eq!(chat_as(&acme, Some(&acme_key)).await.status(), 200);
    let resp = chat_as(&acme, Some(&beta_key)).await;
    expect_error(resp, 401, Some("invalid_api_key")).await;

    // A certificate naming no tenant, and no credential at all, are refused.
    let ghost = https_client(&t.ca, Some(&client_ca.client("ghost")));
    expect_error(chat_as(&ghost, None).await, 401, Some("invalid_api_key")).await;
    expect_error(
        chat_as(&anonymous, None).await,
        401,
        Some("invalid_api_key"),
    )
    .await;

    // Revoking the tenant shuts its certificate out too.
    let resp = anonymous
        .post(format!("{}/v1/tenants/{acme_id}/revoke", gw.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    expect_error(chat_as(&acme, None).await, 401, Some("invalid_api_key")).await;
}

#[test]
fn unusable_tls_files_stop_start_up_naming_the_variable() {
    let t = server_files();
    let db = common::database_url(t.dir.path());
    let missing = t.dir.path().join("missing.crt").display().to_string();
    let log = serve_fails(
        t.dir.path(),
        &[
            ("DATABASE_URL", db.as_str()),
            ("TLS_CERT_FILE", missing.as_str()),
            ("TLS_KEY_FILE", t.key.as_str()),
        ],
    );
    assert!(log.contains("TLS_CERT_FILE="), "{log}");

    let other_key = t.dir.path().join("other.key");
    std::fs::write(&other_key, t.ca.server("other").key_pem).unwrap();
    let other_key = other_key.display().to_string();
    let log = serve_fails(
        t.dir.path(),
        &[
            ("DATABASE_URL", db.as_str()),
            ("TLS_CERT_FILE", t.cert.as_str()),
            ("TLS_KEY_FILE", other_key.as_str()),
        ],
    );
    assert!(log.contains("TLS_KEY_FILE="), "{log}");

    let log = serve_fails(
        t.dir.path(),
        &[
            ("DATABASE_URL", db.as_str()),
            ("TLS_CLIENT_CERT_TENANT", "true"),
        ],
    );
    assert!(log.contains("TLS_CLIENT_CERT_TENANT"), "{log}");
}
