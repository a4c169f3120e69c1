//! EC keys for the `model_signing` "key" method: P-256 signs with SHA-256 and
//! P-384 with SHA-384, DER-encoded ECDSA signatures, as the reference does.

use std::path::Path;

use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};

use crate::IntegrityError;
use crate::hashing::sha256_hex;

/// Key files are tiny; the bound only stops a mistaken path from being slurped.
const MAX_KEY_BYTES: u64 = 64 * 1024;

pub(crate) enum SigningKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

pub(crate) enum VerifyingKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

fn read_pem(path: &Path) -> Result<String, IntegrityError> {
    let meta = std::fs::metadata(path).map_err(|e| IntegrityError::io(path, e))?;
    if meta.len() > MAX_KEY_BYTES {
        return Err(key_err(path, "file too large to be a PEM key"));
    }
    std::fs::read_to_string(path).map_err(|e| IntegrityError::io(path, e))
}

fn key_err(path: &Path, reason: &str) -> IntegrityError {
    IntegrityError::Key {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

impl SigningKey {
    /// Accepts unencrypted PKCS#8 (`BEGIN PRIVATE KEY`) and SEC1
    /// (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
    pub fn load(path: &Path) -> Result<Self, IntegrityError> {
        let pem = read_pem(path)?;
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(key_err(
                path,
                "encrypted keys are not supported; decrypt with `openssl pkcs8`",
            ));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(&pem) {
            return Ok(Self::P384(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(&pem) {
            return Ok(Self::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(&pem) {
            return Ok(Self::P384(k.into()));
        }
        Err(key_err(
            path,
            "not a P-256 or P-384 private key in PKCS#8 or SEC1 PEM",
        ))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Self::P256(k) => VerifyingKey::P256(*k.verifying_key()),
            Self::P384(k) => VerifyingKey::P384(*k.verifying_key()),
        }
    }

    pub fn sign_der(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            Self::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

impl VerifyingKey {
    pub fn load(path: &Path) -> Result<Self, IntegrityError> {
        let pem = read_pem(path)?;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
            return Ok(Self::P384(k));
        }
        Err(key_err(
            path,
            "not a P-256 or P-384 public key in SubjectPublicKeyInfo PEM",
        ))
    }

    /// SubjectPublicKeyInfo PEM with LF line endings, byte-identical to what
    /// Python's `cryptography` writes; its SHA-256 is the bundle's key hint.
    pub fn spki_pem(&self) -> Result<String, IntegrityError> {
        let r = match self {
            Self::P256(k) => k.to_public_key_pem(LineEnding::LF),
            Self::P384(k) => k.to_public_key_pem(LineEnding::LF),
        };
        r.map_err(|e| IntegrityError::Signature(format!("cannot encode public key: {e}")))
    }

    pub fn hint(&self) -> Result<String, IntegrityError> {
        Ok(sha256_hex(self.spki_pem()?.as_bytes()))
    }

    pub fn verify_der(&self, msg: &[u8], der: &[u8]) -> bool {
        match self {
            Self::P256(k) => {
                p256::ecdsa::Signature::from_der(der).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            Self::P384(k) => {
                p384::ecdsa::Signature::from_der(der).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
        }
    }
}
