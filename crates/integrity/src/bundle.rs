//! Sigstore bundle v0.3 (JSON) carrying a DSSE envelope, as written by the
//! OpenSSF `model_signing` tool with its "key" method, and the in-toto
//! statement inside it.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::IntegrityError;
use crate::hashing::is_hex64;
use crate::keys::{SigningKey, VerifyingKey};

pub(crate) const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub(crate) const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// Bundles list one digest per file or shard; even huge sharded models stay
/// far below this.
const MAX_BUNDLE_BYTES: u64 = 16 << 20;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Option<Envelope>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyHint>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyHint {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize, Deserialize)]
struct EnvelopeSignature {
    sig: String,
    #[serde(default)]
    keyid: String,
}

/// DSSE v1 pre-authentication encoding: what the signature actually covers.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

pub(crate) fn seal(
    key: &SigningKey,
    payload_type: &str,
    payload: &[u8],
) -> Result<Vec<u8>, IntegrityError> {
    let sig = key.sign_der(&pae(payload_type, payload));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: VerificationMaterial {
            public_key: Some(PublicKeyHint {
                hint: Some(key.verifying_key().hint()?),
            }),
            tlog_entries: Vec::new(),
        },
        dsse_envelope: Some(Envelope {
            payload: B64.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig: B64.encode(sig),
                keyid: String::new(),
            }],
        }),
    };
    serde_json::to_vec_pretty(&bundle)
        .map_err(|e| IntegrityError::Signature(format!("cannot encode bundle: {e}")))
}

/// Reads a bundle, checks its signature with `key` and returns the payload.
pub(crate) fn open(
    path: &Path,
    key: &VerifyingKey,
    payload_type: &str,
) -> Result<Vec<u8>, IntegrityError> {
    let sig_err = |m: String| IntegrityError::Signature(format!("{}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| IntegrityError::io(path, e))?;
    let mut raw = Vec::new();
    file.take(MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| IntegrityError::io(path, e))?;
    if raw.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(sig_err(format!("larger than {MAX_BUNDLE_BYTES} bytes")));
    }
    let bundle: Bundle =
        serde_json::from_slice(&raw).map_err(|e| sig_err(format!("not a Sigstore bundle: {e}")))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(sig_err(format!(
            "media type {:?}, expected {BUNDLE_MEDIA_TYPE}",
            bundle.media_type
        )));
    }
    let hint = bundle
        .verification_material
        .public_key
        .and_then(|k| k.hint)
        .filter(|h| !h.is_empty());
    if let Some(hint) = hint
        && hint != key.hint()?
    {
        return Err(sig_err(
            "signed with a different key than the public key given".into(),
        ));
    }
    let env = bundle.dsse_envelope.ok_or_else(|| {
        sig_err(
            "no DSSE envelope (certificate and Sigstore bundles are not supported offline)".into(),
        )
    })?;
    if env.payload_type != payload_type {
        return Err(sig_err(format!(
            "payload type {:?}, expected {payload_type}",
            env.payload_type
        )));
    }
    let payload = B64
        .decode(env.payload.as_bytes())
        .map_err(|e| sig_err(format!("payload is not base64: {e}")))?;
    let first = env
        .signatures
        .first()
        .ok_or_else(|| sig_err("envelope has no signature".into()))?;
    let der = B64
        .decode(first.sig.as_bytes())
        .map_err(|e| sig_err(format!("signature is not base64: {e}")))?;
    if !key.verify_der(&pae(payload_type, &payload), &der) {
        return Err(sig_err(
            "ECDSA signature does not verify with the given public key".into(),
        ));
    }
    Ok(payload)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    Files,
    Shards(u64),
}

/// The model manifest a `model_signing` statement commits to.
#[derive(Debug, Clone)]
pub(crate) struct SignedManifest {
    pub root_digest: String,
    pub method: Method,
    pub allow_symlinks: bool,
    pub ignore_paths: Vec<String>,
    /// (resource name, lowercase hex digest), in statement order.
    pub resources: Vec<(String, String)>,
}

pub(crate) fn parse_statement(payload: &[u8]) -> Result<SignedManifest, IntegrityError> {
    let bad = |m: String| IntegrityError::Signature(format!("statement: {m}"));
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON: {e}")))?;
    let s = |p: &str| {
        v.pointer(p)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    if s("/_type") != STATEMENT_TYPE {
        return Err(bad(format!(
            "_type {:?}, expected {STATEMENT_TYPE}",
            s("/_type")
        )));
    }
    if s("/predicateType") != PREDICATE_TYPE {
        return Err(bad(format!(
            "predicateType {:?}, expected {PREDICATE_TYPE}",
            s("/predicateType")
        )));
    }
    let subjects = v.pointer("/subject").and_then(|x| x.as_array());
    if subjects.map(Vec::len) != Some(1) {
        return Err(bad("expected exactly one subject".into()));
    }
    let root_digest = s("/subject/0/digest/sha256");
    if !is_hex64(&root_digest) {
        return Err(bad("subject digest is not 64 lowercase hex digits".into()));
    }
    let ser = v
        .pointer("/predicate/serialization")
        .ok_or_else(|| bad("no serialization parameters".into()))?;
    let hash_type = ser
        .get("hash_type")
        .and_then(|x| x.as_str())
        .unwrap_or_default();
    if hash_type != "sha256" {
        return Err(bad(format!(
            "hash_type {hash_type:?} is not supported (only sha256)"
        )));
    }
    let method = match ser.get("method").and_then(|x| x.as_str()) {
        Some("files") => Method::Files,
        Some("shards") => {
            // Python's protobuf round trip turns the integer into a float.
            let size = ser
                .get("shard_size")
                .and_then(|x| x.as_f64())
                .unwrap_or(0.0);
            if !(size >= 1.0 && size.fract() == 0.0 && size < 9.0e15) {
                return Err(bad("shard_size is not a positive integer".into()));
            }
            Method::Shards(size as u64)
        }
        other => {
            return Err(bad(format!(
                "serialization method {other:?} is not supported"
            )));
        }
    };
    let allow_symlinks = ser
        .get("allow_symlinks")
        .and_then(|x| x.as_bool())
        .unwrap_or(false);
    let ignore_paths = ser
        .get("ignore_paths")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let list = v
        .pointer("/predicate/resources")
        .and_then(|x| x.as_array())
        .ok_or_else(|| bad("no resources".into()))?;
    let mut hasher = Sha256::new();
    let mut resources = Vec::with_capacity(list.len());
    for r in list {
        let name = r.get("name").and_then(|x| x.as_str()).unwrap_or_default();
        let digest = r
            .get("digest")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = hex::decode(&digest)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| bad(format!("resource {name:?} has a malformed digest")))?;
        if name.is_empty() || name.starts_with('/') || name.split('/').any(|c| c == "..") {
            return Err(bad(format!(
                "resource name {name:?} is empty, absolute or has '..'"
            )));
        }
        hasher.update(&bytes);
        resources.push((name.to_owned(), digest));
    }
    let computed = hex::encode(hasher.finalize());
    if computed != root_digest {
        return Err(bad(format!(
            "inconsistent: subject digest {root_digest} but resources hash to {computed}"
        )));
    }
    Ok(SignedManifest {
        root_digest,
        method,
        allow_symlinks,
        ignore_paths,
        resources,
    })
}

/// Builds the statement `model_signing` would produce for these resources,
/// sorted the way Python sorts `PurePosixPath` keys (component-wise).
pub(crate) fn build_statement(
    model_name: &str,
    ignore_paths: &[String],
    resources: &mut [(String, String)],
) -> Result<Vec<u8>, IntegrityError> {
    resources.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
    let mut hasher = Sha256::new();
    for (_, d) in resources.iter() {
        let bytes = hex::decode(d).map_err(|e| IntegrityError::Signature(e.to_string()))?;
        hasher.update(&bytes);
    }
    let list: Vec<_> = resources
        .iter()
        .map(|(n, d)| serde_json::json!({"name": n, "algorithm": "sha256", "digest": d}))
        .collect();
    let statement = serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": hex::encode(hasher.finalize())}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": false,
                "ignore_paths": ignore_paths,
            },
            "resources": list,
        },
    });
    serde_json::to_vec_pretty(&statement)
        .map_err(|e| IntegrityError::Signature(format!("cannot encode statement: {e}")))
}
