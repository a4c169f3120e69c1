//! Combines hashing, hash pinning, signatures and the allowlist into one report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use subtle::ConstantTimeEq;

use crate::bundle::Method;
use crate::hashing::normalize_expected;
use crate::keys::VerifyingKey;
use crate::model::hash_model;
use crate::ollama::ModelRef;
use crate::signed::{check_path, open_model_signature};
use crate::{FileFailure, ModelSource, VerificationReport, VerifyOptions, allowlist};

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn label(source: &ModelSource) -> String {
    match source {
        ModelSource::OllamaStore { model, .. } => ModelRef::parse(model)
            .map(|r| r.canonical())
            .unwrap_or_else(|_| model.clone()),
        ModelSource::Path(p) => p.display().to_string(),
    }
}

fn fail(path: impl Into<String>, reason: impl Into<String>) -> FileFailure {
    FileFailure {
        path: path.into(),
        reason: reason.into(),
    }
}

fn report(model: String, failures: Vec<FileFailure>) -> VerificationReport {
    let message = summary(&failures, None);
    VerificationReport {
        valid: false,
        message,
        model,
        digest: None,
        manifest_digest: None,
        files: 0,
        failures,
    }
}

fn summary(failures: &[FileFailure], ok: Option<String>) -> String {
    match failures.first() {
        None => ok.unwrap_or_else(|| "model verified".into()),
        Some(f) if failures.len() == 1 => {
            format!("model integrity check failed: {}: {}", f.path, f.reason)
        }
        Some(f) => format!(
            "model integrity check failed: {}: {} (and {} more)",
            f.path,
            f.reason,
            failures.len() - 1
        ),
    }
}

/// [`crate::verify`] with extra paths (relative to a plain model directory)
/// left out of hashing and signature matching.
pub fn verify_ignoring(
    opts: &VerifyOptions,
    ignore: &[PathBuf],
    progress: &dyn Fn(u64, u64),
) -> VerificationReport {
    let model = label(&opts.source);
    let expected = match opts.expected_hash.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => match normalize_expected(s) {
            Some(h) => Some(h),
            None => {
                return report(
                    model,
                    vec![fail(
                        "expected hash",
                        "malformed: want 64 hex digits, optionally prefixed by sha256:",
                    )],
                );
            }
        },
    };
    let wants_key = opts.signature.is_some() || opts.allowlist.is_some();
    if opts.require_signature && !wants_key {
        return report(
            model,
            vec![fail(
                "signature",
                "a signature is required but no signature or allowlist is configured",
            )],
        );
    }
    let key = match (&opts.public_key, wants_key) {
        (_, false) => None,
        (None, true) => {
            return report(
                model,
                vec![fail(
                    "public key",
                    "a signature or allowlist needs a public key",
                )],
            );
        }
        (Some(p), true) => match VerifyingKey::load(p) {
            Ok(k) => Some(k),
            Err(e) => return report(model, vec![fail(p.display().to_string(), e.to_string())]),
        },
    };

    let mut failures = Vec::new();
    // Check the signature before hashing: a forged bundle should not cost a
    // multi-gigabyte read to reject.
    let signed = match (&opts.signature, &key) {
        (Some(sig), Some(k)) => match open_model_signature(sig, k) {
            Ok(m) => Some((sig.as_path(), m)),
            Err(e) => {
                failures.push(fail(sig.display().to_string(), e.to_string()));
                None
            }
        },
        _ => None,
    };

    let hash = match hash_model(&opts.source, ignore, progress) {
        Ok(h) => h,
        Err(e) => {
            failures.push(fail(model.clone(), e.to_string()));
            return report(model, failures);
        }
    };
    failures.extend(hash.failures.iter().cloned());
    let mut notes = Vec::new();

    if let (Some(want), Some(got)) = (&expected, &hash.digest) {
        let manifest_ok = hash
            .manifest_digest
            .as_deref()
            .is_some_and(|m| ct_eq(m, want));
        if ct_eq(got, want) {
            notes.push("aggregate hash matches the pinned hash".to_owned());
        } else if manifest_ok {
            notes.push("manifest digest matches the pinned hash".to_owned());
        } else {
            failures.push(fail(
                hash.model.clone(),
                format!("aggregate hash {got} does not match the expected hash {want}"),
            ));
        }
    }

    let mut signature_ok = false;
    if let Some((sig, manifest)) = &signed {
        let before = failures.len();
        match (&opts.source, &hash.ollama) {
            (ModelSource::Path(root), _) => {
                let known: BTreeMap<String, String> = hash
                    .files
                    .iter()
                    .map(|f| (f.name.clone(), f.sha256.clone()))
                    .collect();
                match check_path(root, manifest, sig, ignore, &known, progress) {
                    Ok(f) => failures.extend(f),
                    Err(e) => failures.push(fail(sig.display().to_string(), e.to_string())),
                }
            }
            (ModelSource::OllamaStore { .. }, Some(resolved)) => {
                let layer = resolved.model_layer().map(|b| b.hex.as_str());
                let covered = manifest.method == Method::Files
                    && layer.is_some_and(|l| manifest.resources.iter().any(|(_, d)| d == l));
                if !covered {
                    failures.push(fail(
                        sig.display().to_string(),
                        "signature does not cover this model's GGUF layer digest",
                    ));
                }
            }
            (ModelSource::OllamaStore { .. }, None) => {}
        }
        signature_ok = failures.len() == before;
        if signature_ok {
            notes.push(format!(
                "signature verified (root digest {})",
                manifest.root_digest
            ));
        }
    }

    if let (Some(list), Some(k)) = (&opts.allowlist, &key) {
        match (&hash.ollama, &opts.source) {
            (Some(resolved), _) => match allowlist::check(list, k, resolved) {
                Ok(f) if f.is_empty() => {
                    signature_ok = true;
                    notes.push("allowlist entry verified".to_owned());
                }
                Ok(f) => failures.extend(f),
                Err(e) => failures.push(fail(list.display().to_string(), e.to_string())),
            },
            (None, ModelSource::Path(_)) => failures.push(fail(
                list.display().to_string(),
                "the allowlist applies to Ollama stores only",
            )),
            (None, _) => {}
        }
    }

    if opts.require_signature && !signature_ok && failures.is_empty() {
        failures.push(fail("signature", "a valid signature is required"));
    }

    let ok = format!(
        "model verified: {} files, aggregate {}{}",
        hash.files.len(),
        hash.digest.as_deref().unwrap_or("-"),
        notes.iter().map(|n| format!("; {n}")).collect::<String>()
    );
    VerificationReport {
        valid: failures.is_empty(),
        message: summary(&failures, Some(ok)),
        model: hash.model,
        digest: hash.digest,
        manifest_digest: hash.manifest_digest,
        files: hash.files.len(),
        failures,
    }
}
