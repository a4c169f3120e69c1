//! API keys: `sk-si-<key id>-<secret>`. The key id (64 random bits) finds the record; the
//! secret (256 random bits) is stored only as its SHA-256 and compared in constant time.

use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::NewKey;

pub const PREFIX: &str = "sk-si-";
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A freshly generated key: the full key is shown to its owner once, then only `stored` is kept.
pub struct GeneratedKey {
    pub key: SecretString,
    pub stored: NewKey,
}

pub fn generate() -> GeneratedKey {
    let mut rng = rand::rngs::OsRng;
    let mut id = [0u8; KEY_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = hex::encode(id);
    let secret_hex = hex::encode(secret);
    GeneratedKey {
        key: SecretString::from(format!("{PREFIX}{key_id}-{secret_hex}")),
        stored: NewKey {
            key_id,
            secret_hash: hash_secret(&secret_hex),
        },
    }
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits a presented key into (key id, secret) if it has our shape; anything else is rejected
/// before touching the database.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('-')?;
    let hex_of = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    (hex_of(id, KEY_ID_BYTES * 2) && hex_of(secret, SECRET_BYTES * 2)).then_some((id, secret))
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    let presented = hash_secret(secret);
    stored_hash.len() == presented.len() && bool::from(presented.ct_eq(stored_hash))
}

/// Constant-time comparison of two arbitrary-length secrets (hashing first hides the length).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    bool::from(hash_secret(a).ct_eq(&hash_secret(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_keys_parse_and_match_only_their_hash() {
        let a = generate();
        let b = generate();
        let (id, secret) = parse(a.key.expose_secret()).unwrap();
        assert_eq!(id, a.stored.key_id);
        assert!(secret_matches(secret, &a.stored.secret_hash));
        assert!(!secret_matches(secret, &b.stored.secret_hash));
        assert_ne!(a.stored.key_id, b.stored.key_id);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for k in [
            "",
            "sk-si-",
            "sk-si-abc-def",
            "Bearer x",
            "sk-si-0123456789abcdef-XYZ",
        ] {
            assert!(parse(k).is_none(), "{k}");
        }
    }
}
