#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! JWT bearer tokens through the real router, with keys made in the test: a token signed by a
//! key of the configured JWKS, for the configured issuer and audience, unexpired, names its
//! tenant by a claim; every way of getting one of those wrong is a 401, and API keys keep
//! working beside tokens. The JWKS comes from a file or a URL, and a rotated key set is
//! picked up without a restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{ADMIN_KEY, chat, expect_error, gateway};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ED25519};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "secureinfer";

/// A signing key and its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: KeyPair,
}

impl SigningKey {
    fn es256(kid: &str) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            pair: KeyPair::generate().unwrap(),
        }
    }

    fn ed25519(kid: &str) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            pair: KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        let raw = self.pair.public_key_raw();
        match self.alg {
            // Uncompressed point: 0x04 || x || y.
            Algorithm::ES256 => json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65]),
            }),
            Algorithm::EdDSA => json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
                "x": B64.encode(raw),
            }),
            _ => unreachable!(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let der = self.pair.serialize_der();
        let key = match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
            _ => EncodingKey::from_ec_der(&der),
        };
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    let mut all: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    // Keys the gateway must skip: a symmetric secret and an encryption key.
    all.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}));
    all.push(json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"}));
    json!({ "keys": all }).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims a valid token carries; tests change one thing at a time.
fn claims(org: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-17", "org": org,
        "iat": now(), "exp": now() + 300,
    })
}

fn jwt_vars(jwks_file: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JWT_JWKS_FILE", jwks_file.to_string()),
        ("JWT_ISSUER", ISSUER.to_string()),
        ("JWT_AUDIENCE", AUDIENCE.to_string()),
        ("JWT_TENANT_CLAIM", "org".to_string()),
        ("JWT_LEEWAY", "5s".to_string()),
    ]
}

async fn gateway_with_file(keys: &[&SigningKey]) -> (common::Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(keys)).unwrap();
    let vars = jwt_vars(&file.display().to_string());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (gateway(&vars).await, dir)
}

#[tokio::test]
async fn a_valid_token_authenticates_its_tenant_by_name_or_id() {
    let es = SigningKey::es256("es-1");
    let ed = SigningKey::ed25519("ed-1");
    let (gw, _dir) = gateway_with_file(&[&es, &ed]).await;

    for token in [
        es.sign(&claims("acme")),
        ed.sign(&claims("acme")),
        es.sign(&claims(&gw.tenant_id)),
    ] {
        let resp = gw.chat_as(&token, &chat("hello")).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    // The token acts as that tenant: its own risk view is open, another tenant's is not.
    let token = es.sign(&claims("acme"));
    let own = gw
        .get(&format!("/v1/security/risk/{}", gw.tenant_id), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let (other, _) = gw.create_tenant("other").await;
    let resp = gw
        .get(&format!("/v1/security/risk/{other}"), Some(&token))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // API keys keep working beside tokens.
    assert_eq!(gw.chat(&chat("hello")).await.status(), 200);
}

#[tokio::test]
async fn every_broken_token_is_401() {
    let key = SigningKey::es256("es-1");
    let stranger = SigningKey::es256("es-1"); // same kid, key not in the JWKS
    let (gw, _dir) = gateway_with_file(&[&key]).await;

    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims("acme");
        change(&mut c);
        key.sign(&c)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 120)),
            "expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 120)),
            "not valid yet",
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            "issuer or audience",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("another-api")),
            "issuer or audience",
        ),
        (
            "no audience",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "invalid bearer token",
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "invalid bearer token",
        ),
        (
            "no tenant claim",
            with(&|c| {
                c.as_object_mut().unwrap().remove("org");
            }),
            "no tenant claim",
        ),
        (
            "tenant claim not a string",
            with(&|c| c["org"] = json!(42)),
            "no tenant claim",
        ),
        (
            "unknown tenant",
            with(&|c| c["org"] = json!("nobody")),
            "unknown or revoked",
        ),
        (
            "key not in the JWKS",
            stranger.sign(&claims("acme")),
            "invalid bearer token",
        ),
        (
            "unknown kid",
            {
                let other = SigningKey::es256("es-2");
                other.sign(&claims("acme"))
            },
            "invalid bearer token",
        ),
    ];
    for (what, token, message) in cases {
        let err = expect_error(
            gw.chat_as(&token, &chat("hi")).await,
            401,
            Some("invalid_api_key"),
        )
        .await;
        let got = err["message"].as_str().unwrap();
        assert!(got.contains(message), "{what}: {got}");
    }

    // A payload changed after signing.
    let token = key.sign(&claims("acme"));
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = B64.encode(claims("other").to_string());
    let tampered = parts.join(".");
    expect_error(gw.chat_as(&tampered, &chat("hi")).await, 401, None).await;

    // Algorithm confusion: HMAC "signed" with the public key, and an unsigned token.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("es-1".into());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims("acme"),
        &EncodingKey::from_secret(key.pair.public_key_pem().as_bytes()),
    )
    .unwrap();
    let err = expect_error(gw.chat_as(&hmac, &chat("hi")).await, 401, None).await;
    assert!(
        err["message"].as_str().unwrap().contains("algorithm"),
        "{err}"
    );
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT","kid":"es-1"}"#),
        B64.encode(claims("acme").to_string())
    );
    expect_error(gw.chat_as(&none, &chat("hi")).await, 401, None).await;
}

#[tokio::test]
async fn a_revoked_tenant_token_stops_working() {
    let key = SigningKey::es256("es-1");
    let (gw, _dir) = gateway_with_file(&[&key]).await;
    let token = key.sign(&claims("acme"));
    assert_eq!(gw.chat_as(&token, &chat("hi")).await.status(), 200);
    let resp = gw
        .post(
            &format!("/v1/tenants/{}/revoke", gw.tenant_id),
            Some(ADMIN_KEY),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    expect_error(gw.chat_as(&token, &chat("hi")).await, 401, None).await;
}

/// A JWKS endpoint on loopback whose document the test can replace.
async fn jwks_server(doc: String) -> (String, Arc<Mutex<String>>) {
    let doc = Arc::new(Mutex::new(doc));
    let served = doc.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move {
                (
                    [("content-type", "application/json")],
                    served.lock().unwrap().clone(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, doc)
}

#[tokio::test]
async fn a_jwks_url_is_fetched_and_rotated_keys_are_picked_up() {
    let old = SigningKey::es256("2026-01");
    let new = SigningKey::ed25519("2026-02");
    let (url, doc) = jwks_server(jwks(&[&old])).await;
    let gw = gateway(&[
        ("JWT_JWKS_URL", url.as_str()),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("JWT_TENANT_CLAIM", "org"),
        ("JWT_JWKS_REFRESH", "1s"),
    ])
    .await;
    assert_eq!(
        gw.chat_as(&old.sign(&claims("acme")), &chat("hi"))
            .await
            .status(),
        200
    );
    let fresh = new.sign(&claims("acme"));
    expect_error(gw.chat_as(&fresh, &chat("hi")).await, 401, None).await;

    // The provider rotates: the new key is published, the old one withdrawn.
    *doc.lock().unwrap() = jwks(&[&new]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.chat_as(&fresh, &chat("hi")).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "the rotated JWKS was not picked up within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_error(
        gw.chat_as(&old.sign(&claims("acme")), &chat("hi")).await,
        401,
        None,
    )
    .await;
}

#[tokio::test]
async fn jwt_settings_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&SigningKey::es256("k")])).unwrap();
    let file = file.display().to_string();
    let parse = |vars: &[(&str, &str)]| {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        secureinfer::config::Config::from_lookup(&|k| map.get(k).cloned())
    };
    let err = parse(&[("JWT_JWKS_FILE", &file), ("JWT_ISSUER", ISSUER)]).unwrap_err();
    assert_eq!(err.var, "JWT_AUDIENCE");
    let err = parse(&[("JWT_JWKS_FILE", &file), ("JWT_AUDIENCE", AUDIENCE)]).unwrap_err();
    assert_eq!(err.var, "JWT_ISSUER");
    let err = parse(&[
        ("JWT_JWKS_URL", "http://idp.example.com/jwks"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ])
    .unwrap_err();
    assert_eq!(err.var, "JWT_JWKS_URL");
    let err = parse(&[("JWT_ISSUER", ISSUER)]).unwrap_err();
    assert_eq!(err.var, "JWT_ISSUER");

    // A JWKS without a usable key stops start-up naming the variable.
    std::fs::write(dir.path().join("empty.json"), r#"{"keys":[]}"#).unwrap();
    let empty = dir.path().join("empty.json").display().to_string();
    let config = parse(&[
        ("UPSTREAM", "mock"),
        ("DATABASE_URL", "sqlite::memory:"),
        ("JWT_JWKS_FILE", &empty),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ])
    .unwrap();
    let err = secureinfer::server::build_state(config)
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("JWT_JWKS_FILE"), "{err:#}");
}
