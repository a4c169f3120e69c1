#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The gateway's TLS client towards the upstream, with certificates made in the test: an
//! upstream whose certificate comes from a private CA is reached only when UPSTREAM_CA_FILE
//! names that CA (the system roots are then not consulted), and an upstream that demands
//! client certificates is reached only with UPSTREAM_CLIENT_CERT_FILE/KEY.

mod common;

use common::certs::Ca;
use common::{Behaviour, Fake, chat, gateway_for};
use secureinfer::config::{ClientAuth, ServerTls};

struct Upstream {
    fake: Fake,
    dir: tempfile::TempDir,
    ca_file: String,
    client_ca: Ca,
}

/// An OpenAI-compatible fake over HTTPS; `mtls` makes it require client certificates.
async fn upstream(mtls: bool) -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("internal CA");
    let (cert_file, key_file) = ca.server("model-server").write(dir.path(), "upstream");
    let ca_file = ca.write(&dir.path().join("internal-ca.pem"));
    let client_ca = Ca::new("gateway client CA");
    let client_ca_file = client_ca.write(&dir.path().join("client-ca.pem"));
    let tls = ServerTls {
        cert_file,
        key_file,
        client_ca_file: mtls.then_some(client_ca_file),
        client_auth: ClientAuth::Required,
        client_cert_tenant: false,
        reload_interval: None,
    };
    Upstream {
        fake: Fake::start_tls(Behaviour::Normal, tls).await,
        ca_file: ca_file.display().to_string(),
        dir,
        client_ca,
    }
}

#[tokio::test]
async fn a_private_ca_upstream_needs_upstream_ca_file() {
    let up = upstream(false).await;
    assert!(up.fake.url.starts_with("https://"));

    let trusting = gateway_for(&up.fake, "openai", &[("UPSTREAM_CA_FILE", &up.ca_file)]).await;
    let resp = trusting.chat(&chat("hello")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(up.fake.hits(), 1);

    // Without the CA, the certificate is not trusted: the upstream is unavailable.
    let default = gateway_for(&up.fake, "openai", &[]).await;
    common::expect_error(
        default.chat(&chat("hello")).await,
        503,
        Some("upstream_unavailable"),
    )
    .await;

    // Trusting another CA only (not the system roots as well) fails the same way.
    let other = Ca::new("some other CA").write(&up.dir.path().join("other.pem"));
    let other = other.display().to_string();
    let wrong = gateway_for(&up.fake, "openai", &[("UPSTREAM_CA_FILE", &other)]).await;
    common::expect_error(
        wrong.chat(&chat("hello")).await,
        503,
        Some("upstream_unavailable"),
    )
    .await;
    assert_eq!(up.fake.hits(), 1);
}

#[tokio::test]
async fn an_mtls_upstream_needs_the_gateway_client_certificate() {
    let up = upstream(true).await;
    let (cert, key) = up
        .client_ca
        .client("secureinfer-gateway")
        .write(up.dir.path(), "gw-client");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());

    let with_cert = gateway_for(
        &up.fake,
        "openai",
        &[
            ("UPSTREAM_CA_FILE", &up.ca_file),
            ("UPSTREAM_CLIENT_CERT_FILE", &cert),
            ("UPSTREAM_CLIENT_KEY_FILE", &key),
        ],
    )
    .await;
    let resp = with_cert.chat(&chat("hello")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let without = gateway_for(&up.fake, "openai", &[("UPSTREAM_CA_FILE", &up.ca_file)]).await;
    let resp = without.chat(&chat("hello")).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert_eq!(up.fake.hits(), 1);
}

#[tokio::test]
async fn unreadable_upstream_tls_files_stop_start_up_naming_the_variable() {
    let up = upstream(false).await;
    let missing = up.dir.path().join("nope.pem").display().to_string();
    for (var, extra) in [
        (
            "UPSTREAM_CA_FILE",
            vec![("UPSTREAM_CA_FILE", missing.as_str())],
        ),
        (
            "UPSTREAM_CLIENT_CERT_FILE",
            vec![
                ("UPSTREAM_CLIENT_CERT_FILE", missing.as_str()),
                ("UPSTREAM_CLIENT_KEY_FILE", up.ca_file.as_str()),
            ],
        ),
    ] {
        let mut vars = vec![
            ("UPSTREAM", "openai"),
            ("UPSTREAM_URL", up.fake.url.as_str()),
            ("DATABASE_URL", "sqlite::memory:"),
        ];
        vars.extend(extra);
        let map: std::collections::HashMap<&str, &str> = vars.into_iter().collect();
        let config =
            secureinfer::config::Config::from_lookup(&|k| map.get(k).map(|v| v.to_string()))
                .unwrap();
        let err = secureinfer::server::build_state(config)
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains(var), "{err:#}");
    }
}
