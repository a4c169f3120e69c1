//! Prefix-cache isolation for shared model servers.
//!
//! vLLM (0.9.0 and later) and servers like it reuse the KV cache of any earlier request that
//! started with the same tokens. That makes the time to the first token depend on what *other
//! users* sent, which is enough to recover their prompts a few tokens at a time. vLLM's
//! `cache_salt` request field mixes a value into the cache keys, so only requests with the
//! same salt can share cached blocks. The gateway sets it per tenant:
//!
//! - derived with HMAC-SHA256 from a server secret, so nobody can compute another tenant's
//!   salt from its id;
//! - over length-prefixed fields, so no two (purpose, tenant id) pairs encode to the same
//!   bytes;
//! - emitted as 43 URL-safe base64 characters (all 256 bits, no padding);
//! - a salt sent by the client is always dropped (see `openai::validate`): copying a victim's
//!   salt would put the attacker back in the victim's cache.
//!
//! Responses also lose the fields that report cache hits (`cached_tokens` and friends): they
//! hand a client the same signal without needing a stopwatch.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

/// The request field vLLM reads.
pub const FIELD: &str = "cache_salt";

/// Domain separation: a salt is never the same bytes as any other value derived from the secret.
const PURPOSE: &[u8] = b"secureinfer/prefix-cache-salt/v1";

/// Derives per-tenant salts from one server secret.
pub struct SaltDeriver {
    secret: SecretString,
}

impl SaltDeriver {
    pub fn new(secret: SecretString) -> Self {
        SaltDeriver { secret }
    }

    /// A fresh random secret for this process (salts then change on restart; that only
    /// costs cache reuse, never isolation).
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        SaltDeriver {
            secret: SecretString::from(hex::encode(bytes)),
        }
    }

    /// The tenant's salt: 43 characters of `[A-Za-z0-9_-]`.
    pub fn salt(&self, tenant_id: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes()) {
            Ok(m) => m,
            // HMAC takes keys of any length; this arm cannot run.
            Err(_) => return String::new(),
        };
        for field in [PURPOSE, tenant_id.as_bytes()] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// True for a well-formed salt as [`SaltDeriver::salt`] makes them.
pub fn well_formed(salt: &str) -> bool {
    salt.len() == 43
        && salt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Usage fields that say how much of the prompt came from the cache.
const CACHE_HIT_FIELDS: &[&str] = &[
    "cached_tokens",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
];

/// Removes cache-hit counts from a `usage` object (top level or inside
/// `prompt_tokens_details`), in a completion or a stream chunk. Returns true if any was found.
pub fn strip_cache_hits(body: &mut Value) -> bool {
    let Some(usage) = body.get_mut("usage").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut found = false;
    for f in CACHE_HIT_FIELDS {
        found |= usage.remove(*f).is_some();
    }
    if let Some(details) = usage
        .get_mut("prompt_tokens_details")
        .and_then(Value::as_object_mut)
    {
        for f in CACHE_HIT_FIELDS {
            found |= details.remove(*f).is_some();
        }
        if details.is_empty() {
            usage.remove("prompt_tokens_details");
        }
    }
    found
}

/// Parses a vLLM `/version` answer (`{"version":"0.9.2"}`) and says whether it supports
/// `cache_salt` (added in 0.9.0).
pub fn version_supports_salt(body: &Value) -> Option<bool> {
    let v = body.get("version")?.as_str()?;
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    Some(major > 0 || minor >= 9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn salts_are_stable_distinct_and_well_formed() {
        let d = SaltDeriver::new(SecretString::from("k".repeat(32)));
        let a = d.salt("tenant-a");
        assert_eq!(a, d.salt("tenant-a"));
        assert_ne!(a, d.salt("tenant-b"));
        assert!(well_formed(&a), "{a}");
        let other = SaltDeriver::new(SecretString::from("j".repeat(32)));
        assert_ne!(a, other.salt("tenant-a"));
    }

    #[test]
    fn versions() {
        assert_eq!(
            version_supports_salt(&json!({"version": "0.9.0"})),
            Some(true)
        );
        assert_eq!(
            version_supports_salt(&json!({"version": "0.10.1rc1"})),
            Some(true)
        );
        assert_eq!(
            version_supports_salt(&json!({"version": "1.0.0"})),
            Some(true)
        );
        assert_eq!(
            version_supports_salt(&json!({"version": "0.8.5.post1"})),
            Some(false)
        );
        assert_eq!(version_supports_salt(&json!({"v": "0.9"})), None);
    }

    #[test]
    fn cache_hit_counts_are_removed() {
        let mut v =
            json!({"usage": {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 8}}});
        assert!(strip_cache_hits(&mut v));
        assert_eq!(v, json!({"usage": {"prompt_tokens": 9}}));
        let mut v = json!({"usage": {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}});
        assert!(strip_cache_hits(&mut v));
        assert_eq!(
            v["usage"]["prompt_tokens_details"],
            json!({"audio_tokens": 0})
        );
    }
}
