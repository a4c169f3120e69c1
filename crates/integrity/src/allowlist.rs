//! Operator-signed allowlist for Ollama stores: which manifest (and so which
//! blobs) each `model:tag` may resolve to. Stored as a Sigstore bundle whose
//! DSSE payload is the allowlist JSON, signed with the same EC keys as models.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::hashing::parse_digest;
use crate::keys::{SigningKey, VerifyingKey};
use crate::model::hash_model;
use crate::ollama::Resolved;
use crate::{FileFailure, IntegrityError, ModelSource, bundle};

pub const ALLOWLIST_PAYLOAD_TYPE: &str = "application/vnd.secureinfer.model-allowlist+json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Allowlist {
    pub version: u32,
    pub models: Vec<AllowedModel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllowedModel {
    /// Fully qualified: `registry/namespace/model:tag`.
    pub name: String,
    /// `sha256:<hex>` of the manifest file.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the config and every layer.
    pub layers: Vec<String>,
}

/// Hashes each model (refusing any that fails its own checks) and writes a
/// signed allowlist pinning their current manifests and blobs.
pub fn sign_allowlist(
    models_dir: &Path,
    models: &[String],
    private_key: &Path,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Allowlist, IntegrityError> {
    let key = SigningKey::load(private_key)?;
    let mut list = Allowlist {
        version: 1,
        models: Vec::new(),
    };
    for name in models {
        let source = ModelSource::OllamaStore {
            models_dir: models_dir.to_path_buf(),
            model: name.clone(),
        };
        let h = hash_model(&source, &[], progress)?;
        if let Some(f) = h.failures.first() {
            return Err(IntegrityError::Model(format!(
                "{name}: refusing to allowlist a model that fails its own checks: {}: {}",
                f.path, f.reason
            )));
        }
        let Some(r) = h.ollama else { continue };
        list.models.push(AllowedModel {
            name: r.name.canonical(),
            manifest_digest: format!("sha256:{}", r.manifest_digest),
            layers: r
                .blobs
                .iter()
                .map(|b| format!("sha256:{}", b.hex))
                .collect(),
        });
    }
    let payload = serde_json::to_vec_pretty(&list)
        .map_err(|e| IntegrityError::Allowlist(format!("cannot encode: {e}")))?;
    let sealed = bundle::seal(&key, ALLOWLIST_PAYLOAD_TYPE, &payload)?;
    std::fs::write(out, sealed).map_err(|e| IntegrityError::io(out, e))?;
    Ok(list)
}

/// Verifies the allowlist's signature and checks `resolved` against its entry.
pub(crate) fn check(
    path: &Path,
    key: &VerifyingKey,
    resolved: &Resolved,
) -> Result<Vec<FileFailure>, IntegrityError> {
    let payload = bundle::open(path, key, ALLOWLIST_PAYLOAD_TYPE)?;
    let list: Allowlist = serde_json::from_slice(&payload)
        .map_err(|e| IntegrityError::Allowlist(format!("malformed payload: {e}")))?;
    if list.version != 1 {
        return Err(IntegrityError::Allowlist(format!(
            "version {} is not supported",
            list.version
        )));
    }
    let name = resolved.name.canonical();
    let Some(entry) = list.models.iter().find(|m| m.name == name) else {
        return Ok(vec![FileFailure {
            path: name,
            reason: "model is not in the signed allowlist".into(),
        }]);
    };
    let mut failures = Vec::new();
    let pinned = parse_digest(&entry.manifest_digest)?;
    if pinned != resolved.manifest_digest {
        failures.push(FileFailure {
            path: name.clone(),
            reason: format!(
                "manifest digest is {}, the allowlist pins {pinned} (tag re-pointed?)",
                resolved.manifest_digest
            ),
        });
    }
    let mut allowed = Vec::with_capacity(entry.layers.len());
    for l in &entry.layers {
        allowed.push(parse_digest(l)?);
    }
    for b in &resolved.blobs {
        if !allowed.contains(&b.hex) {
            failures.push(FileFailure {
                path: format!("blobs/sha256-{}", b.hex),
                reason: "layer is not in the allowlist entry".into(),
            });
        }
    }
    for a in &allowed {
        if !resolved.blobs.iter().any(|b| &b.hex == a) {
            failures.push(FileFailure {
                path: format!("blobs/sha256-{a}"),
                reason: "allowlisted layer is missing from the manifest".into(),
            });
        }
    }
    Ok(failures)
}
