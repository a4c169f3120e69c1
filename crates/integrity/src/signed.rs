//! Signing a plain model directory in the `model_signing` format, and checking
//! a model directory against a verified signed manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{self, IN_TOTO_PAYLOAD_TYPE, Method, SignedManifest};
use crate::hashing::{Job, hash_jobs};
use crate::keys::{SigningKey, VerifyingKey};
use crate::tree::{GIT_PATHS, Tree, normalize_ignores, walk};
use crate::{FileFailure, IntegrityError};

/// Ignore list for a model root: git metadata, the caller's paths, and the
/// signature file itself when it lives inside the model.
fn ignores_for(root: &Path, user: &[PathBuf], signature: &Path) -> Vec<String> {
    let mut list: Vec<String> = GIT_PATHS.iter().map(|s| (*s).to_owned()).collect();
    let mut extra = user.to_vec();
    if let Ok(abs) = std::path::absolute(signature) {
        extra.push(abs);
    }
    for p in normalize_ignores(root, &extra) {
        if !list.contains(&p) {
            list.push(p);
        }
    }
    list
}

fn resource_name(tree: &Tree, name: &str) -> String {
    // The reference names a single-file model's only resource ".".
    if tree.single_file {
        ".".to_owned()
    } else {
        name.to_owned()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SignOutcome {
    pub model: String,
    pub signature: String,
    /// The statement's subject digest (SHA-256 over the sorted file digests).
    pub root_digest: String,
    pub files: usize,
}

/// Signs the model at `root` with an operator EC key, writing a Sigstore
/// bundle that `model_signing verify key` accepts.
pub fn sign_path(
    root: &Path,
    private_key: &Path,
    signature: &Path,
    ignore: &[PathBuf],
    progress: &dyn Fn(u64, u64),
) -> Result<SignOutcome, IntegrityError> {
    let key = SigningKey::load(private_key)?;
    let ignores = ignores_for(root, ignore, signature);
    let tree = walk(root, &ignores)?;
    if let Some(f) = tree.failures.first() {
        return Err(IntegrityError::Model(format!("{}: {}", f.path, f.reason)));
    }
    if let Some(f) = tree.files.iter().find(|f| f.is_symlink) {
        return Err(IntegrityError::Model(format!(
            "{}: symlinks are not signed (the reference tool rejects them by default)",
            f.name
        )));
    }
    let jobs: Vec<Job> = tree
        .files
        .iter()
        .map(|f| Job {
            path: f.path.clone(),
            range: None,
            size_hint: f.size,
        })
        .collect();
    let mut resources = Vec::with_capacity(jobs.len());
    for (f, r) in tree.files.iter().zip(hash_jobs(&jobs, progress)) {
        let h = r.map_err(|e| IntegrityError::Model(format!("{}: {e}", f.name)))?;
        resources.push((resource_name(&tree, &f.name), hex::encode(h.digest)));
    }
    if resources.is_empty() {
        return Err(IntegrityError::Model("no model files found".into()));
    }
    let model_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".to_owned());
    let payload = bundle::build_statement(&model_name, &ignores, &mut resources)?;
    let statement = bundle::parse_statement(&payload)?;
    let sealed = bundle::seal(&key, IN_TOTO_PAYLOAD_TYPE, &payload)?;
    std::fs::write(signature, sealed).map_err(|e| IntegrityError::io(signature, e))?;
    Ok(SignOutcome {
        model: model_name,
        signature: signature.display().to_string(),
        root_digest: statement.root_digest,
        files: resources.len(),
    })
}

/// Verifies the bundle's signature and statement, without touching the model.
pub(crate) fn open_model_signature(
    signature: &Path,
    key: &VerifyingKey,
) -> Result<SignedManifest, IntegrityError> {
    let payload = bundle::open(signature, key, IN_TOTO_PAYLOAD_TYPE)?;
    bundle::parse_statement(&payload)
}

/// Re-hashes the model at `root` with the serialization recorded in the
/// signature and reports every difference from the signed file set.
pub(crate) fn check_path(
    root: &Path,
    signed: &SignedManifest,
    signature: &Path,
    ignore: &[PathBuf],
    known: &BTreeMap<String, String>,
    progress: &dyn Fn(u64, u64),
) -> Result<Vec<FileFailure>, IntegrityError> {
    let mut ignores = ignores_for(root, ignore, signature);
    for p in &signed.ignore_paths {
        let n = normalize_ignores(root, &[PathBuf::from(p)]);
        ignores.extend(n);
    }
    let tree = walk(root, &ignores)?;
    let mut failures = tree.failures.clone();
    let mut jobs = Vec::new();
    let mut names = Vec::new();
    let mut actual = BTreeMap::new();
    for f in &tree.files {
        if f.is_symlink && !signed.allow_symlinks {
            failures.push(FileFailure {
                path: f.name.clone(),
                reason: "symlink, but the signature was made without allow_symlinks".into(),
            });
            continue;
        }
        let name = resource_name(&tree, &f.name);
        match signed.method {
            // Whole-file digests were already computed for the aggregate;
            // reading a large model twice would double verification time.
            Method::Files if known.contains_key(&f.name) => {
                if let Some(d) = known.get(&f.name) {
                    actual.insert(name, d.clone());
                }
            }
            Method::Files => {
                names.push(name);
                jobs.push(Job {
                    path: f.path.clone(),
                    range: None,
                    size_hint: f.size,
                });
            }
            Method::Shards(step) => {
                let mut start = 0;
                while start < f.size {
                    let end = start.saturating_add(step).min(f.size);
                    names.push(format!("{name}:{start}:{end}"));
                    jobs.push(Job {
                        path: f.path.clone(),
                        range: Some((start, end)),
                        size_hint: end - start,
                    });
                    start = end;
                }
            }
        }
    }
    for (name, r) in names.into_iter().zip(hash_jobs(&jobs, progress)) {
        match r {
            Ok(h) => {
                actual.insert(name, hex::encode(h.digest));
            }
            Err(e) => failures.push(FileFailure {
                path: name,
                reason: e,
            }),
        }
    }
    let mut expected = BTreeMap::new();
    for (name, digest) in &signed.resources {
        if expected.insert(name.clone(), digest.clone()).is_some() {
            failures.push(FileFailure {
                path: name.clone(),
                reason: "listed twice in the signature".into(),
            });
        }
    }
    for (name, want) in &expected {
        match actual.get(name) {
            None if failures.iter().any(|f| &f.path == name) => {}
            None => failures.push(FileFailure {
                path: name.clone(),
                reason: "signed but missing from the model".into(),
            }),
            Some(got) if got != want => failures.push(FileFailure {
                path: name.clone(),
                reason: format!("SHA-256 is {got}, the signature says {want} (modified)"),
            }),
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        failures.push(FileFailure {
            path: name.clone(),
            reason: "present in the model but not covered by the signature".into(),
        });
    }
    Ok(failures)
}
