//! JWT/OIDC bearer tokens, an alternative to API keys when an identity provider already knows
//! the callers.
//!
//! A token is accepted when all of these hold:
//! - its signature verifies with a key from the configured JWKS (file or URL) — matched by
//!   `kid`, with an asymmetric algorithm that key is for. HMAC (`HS*`) and `none` are refused
//!   outright: with public keys in a JWKS, accepting HMAC would let anyone sign with the
//!   public key as the "secret" (the classic algorithm-confusion attack);
//! - `iss` equals `JWT_ISSUER` and `aud` contains `JWT_AUDIENCE` (both required);
//! - `exp` is in the future and `nbf`, if present, in the past (with `JWT_LEEWAY` of slack);
//! - the `JWT_TENANT_CLAIM` claim is a string naming an active tenant (checked by the caller).
//!
//! The JWKS is re-read every `JWT_JWKS_REFRESH`, and at most every [`MIN_REFETCH`] when a token
//! names a key id the gateway has not seen (the provider rotated its keys). A failed refresh
//! keeps the previous keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{JwksSource, JwtSettings};

/// Longest token considered; anything longer is refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Unknown key ids trigger a JWKS re-read at most this often.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("signing algorithm not accepted (only RS*, PS*, ES256, ES384, EdDSA)")]
    Algorithm,
    #[error("signed with a key that is not in the JWKS")]
    UnknownKey,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer or audience")]
    WrongParty,
    #[error("invalid token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("the token has no string claim {0:?}")]
    NoTenantClaim(String),
    #[error("{var}: {reason}")]
    Jwks { var: &'static str, reason: String },
}

impl JwtError {
    /// What a client is told (401). Key material and claim values stay out of it.
    pub fn public_message(&self) -> &'static str {
        match self {
            JwtError::Expired => "invalid bearer token: expired",
            JwtError::NotYetValid => "invalid bearer token: not valid yet",
            JwtError::WrongParty => "invalid bearer token: wrong issuer or audience",
            JwtError::NoTenantClaim(_) => "invalid bearer token: no tenant claim",
            JwtError::Algorithm => "invalid bearer token: signing algorithm not accepted",
            _ => "invalid bearer token",
        }
    }
}

struct Key {
    decoding: DecodingKey,
    algorithms: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_id: HashMap<String, Arc<Key>>,
    without_id: Vec<Arc<Key>>,
}

pub struct JwtVerifier {
    settings: JwtSettings,
    keys: RwLock<Arc<KeySet>>,
    last_fetch: std::sync::Mutex<Instant>,
    http: reqwest::Client,
}

/// Does this look like a JWT (three base64url parts) rather than an API key?
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The asymmetric algorithms a JWK may verify.
fn algorithms_for(jwk: &Jwk) -> Vec<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Vec::new();
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        // Symmetric keys have no place in a published key set.
        _ => &[],
    };
    match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(declared) => family
            .iter()
            .copied()
            .filter(|a| key_algorithm(*a) == declared)
            .collect(),
    }
}

fn key_algorithm(a: Algorithm) -> KeyAlgorithm {
    match a {
        Algorithm::HS256 => KeyAlgorithm::HS256,
        Algorithm::HS384 => KeyAlgorithm::HS384,
        Algorithm::HS512 => KeyAlgorithm::HS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::PS384 => KeyAlgorithm::PS384,
        Algorithm::PS512 => KeyAlgorithm::PS512,
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
    }
}

/// Parses a JWKS document, keeping the keys usable for signature checks and skipping the rest
/// (providers publish encryption keys and new key types in the same set).
fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut set = KeySet::default();
    for raw in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let algorithms = algorithms_for(&jwk);
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if algorithms.is_empty() {
            continue;
        }
        let key = Arc::new(Key {
            decoding,
            algorithms,
        });
        match jwk.common.key_id {
            Some(kid) => {
                set.by_id.insert(kid, key);
            }
            None => set.without_id.push(key),
        }
    }
    if set.by_id.is_empty() && set.without_id.is_empty() {
        return Err("no usable signing key (RSA, EC P-256/P-384 or Ed25519)".into());
    }
    Ok(set)
}

impl JwtVerifier {
    /// Reads the JWKS once (start-up fails if it cannot) and keeps it fresh in the background.
    pub async fn start(settings: JwtSettings) -> Result<Arc<JwtVerifier>, JwtError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwtError::Jwks {
                var: "JWT_JWKS_URL",
                reason: e.to_string(),
            })?;
        let verifier = Arc::new(JwtVerifier {
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: std::sync::Mutex::new(Instant::now()),
            http,
            settings,
        });
        let keys = verifier.fetch().await?;
        verifier.install(keys);
        let weak = Arc::downgrade(&verifier);
        tokio::spawn(refresh_loop(weak, verifier.settings.refresh));
        Ok(verifier)
    }

    async fn fetch(&self) -> Result<KeySet, JwtError> {
        let (var, bytes) = match &self.settings.jwks {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| JwtError::Jwks {
                    var: "JWT_JWKS_FILE",
                    reason: format!("{}: {e}", path.display()),
                })?;
                ("JWT_JWKS_FILE", bytes)
            }
            JwksSource::Url(url) => ("JWT_JWKS_URL", self.download(url).await?),
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwtError::Jwks {
                var,
                reason: format!("larger than {MAX_JWKS_BYTES} bytes"),
            });
        }
        parse_jwks(&bytes).map_err(|reason| JwtError::Jwks { var, reason })
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, JwtError> {
        let fail = |reason: String| JwtError::Jwks {
            var: "JWT_JWKS_URL",
            reason,
        };
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(format!("cannot fetch: {e}")))?;
        if !resp.status().is_success() {
            return Err(fail(format!("answered {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(format!("cannot read: {e}")))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(fail(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn install(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut guard) => *guard = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        if let Ok(mut last) = self.last_fetch.lock() {
            *last = Instant::now();
        }
    }

    fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the JWKS; a failure keeps the keys in use.
    pub async fn refresh(&self) {
        match self.fetch().await {
            Ok(keys) => self.install(keys),
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys"),
        }
    }

    /// A key id the gateway does not know: the provider may have rotated. Re-read, but not more
    /// often than MIN_REFETCH whatever tokens clients send.
    async fn refresh_for_unknown_kid(&self) -> bool {
        let due = self
            .last_fetch
            .lock()
            .map(|mut last| {
                if last.elapsed() >= MIN_REFETCH {
                    *last = Instant::now();
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if due {
            self.refresh().await;
        }
        due
    }

    fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        let keys = self.keys();
        let usable = |k: &Arc<Key>| k.algorithms.contains(&alg);
        match kid {
            Some(kid) => keys.by_id.get(kid).filter(|k| usable(k)).cloned(),
            None => keys.without_id.iter().find(|k| usable(k)).cloned(),
        }
    }

    /// Verifies a token and returns the value of its tenant claim.
    pub async fn verify(&self, token: &str) -> Result<String, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(JwtError::Algorithm);
        }
        let kid = header.kid.as_deref();
        let key = match self.find_key(kid, header.alg) {
            Some(k) => k,
            None if kid.is_some() && self.refresh_for_unknown_kid().await => {
                self.find_key(kid, header.alg).ok_or(JwtError::UnknownKey)?
            }
            None => return Err(JwtError::UnknownKey),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => JwtError::Expired,
                    ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => JwtError::WrongParty,
                    ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                        JwtError::Algorithm
                    }
                    _ => JwtError::Invalid(e),
                }
            })?;
        let claim = &self.settings.tenant_claim;
        data.claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_string)
            .ok_or_else(|| JwtError::NoTenantClaim(claim.clone()))
    }
}

async fn refresh_loop(verifier: Weak<JwtVerifier>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // The verifier is gone once the gateway that owned it is.
        let Some(v) = verifier.upgrade() else { return };
        v.refresh().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    /// An ES256 key: (its JWK with this kid, a token for tenant "acme" signed with it).
    fn es256(kid: &str) -> (Value, String) {
        let pair = rcgen::KeyPair::generate().unwrap();
        let raw = pair.public_key_raw();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65])});
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({"iss": "i", "aud": "a", "tenant": "acme",
            "exp": jsonwebtoken::get_current_timestamp() + 60});
        let key = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        (jwk, jsonwebtoken::encode(&header, &claims, &key).unwrap())
    }

    #[tokio::test]
    async fn an_unknown_kid_rereads_the_jwks_at_most_every_min_refetch() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        let (old, _) = es256("old");
        let (new, token) = es256("new");
        std::fs::write(&file, serde_json::json!({"keys": [old]}).to_string()).unwrap();
        let verifier = JwtVerifier::start(JwtSettings {
            jwks: JwksSource::File(file.clone()),
            issuer: "i".into(),
            audience: "a".into(),
            tenant_claim: "tenant".into(),
            leeway: Duration::from_secs(5),
            refresh: Duration::from_secs(3600),
        })
        .await
        .unwrap();
        // The provider rotates; the gateway read its keys a moment ago.
        std::fs::write(&file, serde_json::json!({"keys": [old, new]}).to_string()).unwrap();
        assert!(matches!(
            verifier.verify(&token).await,
            Err(JwtError::UnknownKey)
        ));
        // Once MIN_REFETCH has passed, the unknown kid triggers a re-read and verifies.
        *verifier.last_fetch.lock().unwrap() = Instant::now() - MIN_REFETCH;
        assert_eq!(verifier.verify(&token).await.unwrap(), "acme");
    }

    #[test]
    fn only_three_part_tokens_starting_like_a_json_header_look_like_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJ9.sig"));
        assert!(!looks_like_jwt("sk-si-0123-abcd"));
        assert!(!looks_like_jwt("eyJ.only-two"));
        assert!(!looks_like_jwt("eyJ.a.b.c"));
    }

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "sXch", "e": "AQAB"},
        ]});
        assert!(parse_jwks(doc.to_string().as_bytes()).is_err());
    }

    #[test]
    fn a_declared_alg_narrows_the_family() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!(
            {"kty": "RSA", "alg": "PS256", "kid": "k", "n": "sXch", "e": "AQAB"}
        ))
        .unwrap();
        assert_eq!(algorithms_for(&jwk), vec![Algorithm::PS256]);
    }
}
