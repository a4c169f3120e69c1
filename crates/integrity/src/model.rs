//! Hashing a model (Ollama store entry or plain path) into per-file digests,
//! self-consistency failures and the aggregate digest.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hashing::{Job, aggregate, hash_jobs, name_is_pipeline_safe};
use crate::ollama::{Resolved, blob_name, resolve};
use crate::tree::{GIT_PATHS, normalize_ignores, walk};
use crate::{FileFailure, IntegrityError, ModelSource};

#[derive(Debug, Clone, Serialize)]
pub struct FileDigest {
    /// Relative path (plain models) or `sha256-<hex>` blob file name (Ollama).
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// Result of hashing a model. `digest` is set only when every file could be
/// hashed and (for Ollama) every blob matched its manifest entry.
#[derive(Debug, Clone, Serialize)]
pub struct ModelHash {
    pub model: String,
    pub digest: Option<String>,
    pub manifest_digest: Option<String>,
    pub files: Vec<FileDigest>,
    pub failures: Vec<FileFailure>,
    #[serde(skip)]
    pub(crate) ollama: Option<Resolved>,
}

/// Hashes `source`. `ignore` lists paths (relative to the model directory, or
/// absolute inside it) left out of a plain model; the git metadata paths that
/// `model_signing` skips are always left out. Ignored for Ollama stores.
pub fn hash_model(
    source: &ModelSource,
    ignore: &[PathBuf],
    progress: &dyn Fn(u64, u64),
) -> Result<ModelHash, IntegrityError> {
    match source {
        ModelSource::OllamaStore { models_dir, model } => hash_ollama(models_dir, model, progress),
        ModelSource::Path(root) => hash_path(root, ignore, progress),
    }
}

fn hash_ollama(
    models_dir: &Path,
    model: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<ModelHash, IntegrityError> {
    let resolved = resolve(models_dir, model)?;
    let blobs_dir = models_dir.join("blobs");
    let blobs_real = blobs_dir
        .canonicalize()
        .map_err(|e| IntegrityError::io(&blobs_dir, e))?;
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    let mut hashed_blobs = Vec::new();
    for blob in &resolved.blobs {
        let name = blob_name(&blob.hex);
        let shown = format!("blobs/{name}");
        let path = blobs_dir.join(&name);
        let fail = |reason: String| FileFailure {
            path: shown.clone(),
            reason,
        };
        let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
            failures.push(fail(
                "missing: the manifest references a blob that is not in the store".into(),
            ));
            continue;
        };
        if lmeta.file_type().is_symlink() {
            match path.canonicalize() {
                Ok(t) if t.starts_with(&blobs_real) => {}
                Ok(t) => {
                    failures.push(fail(format!(
                        "symlink escapes the blob store (points to {})",
                        t.display()
                    )));
                    continue;
                }
                Err(_) => {
                    failures.push(fail("dangling symlink".into()));
                    continue;
                }
            }
        }
        let size = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                failures.push(fail("not a regular file".into()));
                continue;
            }
        };
        if size != blob.size {
            failures.push(fail(format!(
                "size is {size} bytes but the manifest says {} (truncated or replaced)",
                blob.size
            )));
            continue;
        }
        jobs.push(Job {
            path,
            range: None,
            size_hint: size,
        });
        hashed_blobs.push(blob.clone());
    }
    let results = hash_jobs(&jobs, progress);
    let mut files = Vec::new();
    for (blob, r) in hashed_blobs.iter().zip(results) {
        let name = blob_name(&blob.hex);
        match r {
            Err(e) => failures.push(FileFailure {
                path: format!("blobs/{name}"),
                reason: e,
            }),
            Ok(h) => {
                let actual = hex::encode(h.digest);
                if actual != blob.hex {
                    failures.push(FileFailure {
                        path: format!("blobs/{name}"),
                        reason: format!(
                            "content SHA-256 is {actual}, but its name and the manifest say {} (tampered or corrupted)",
                            blob.hex
                        ),
                    });
                } else if h.bytes != blob.size {
                    failures.push(FileFailure {
                        path: format!("blobs/{name}"),
                        reason: format!("changed size while being read ({} bytes)", h.bytes),
                    });
                }
                files.push(FileDigest {
                    name,
                    sha256: actual,
                    size: h.bytes,
                });
            }
        }
    }
    Ok(finish(
        resolved.name.canonical(),
        files,
        failures,
        Some(resolved),
    ))
}

fn hash_path(
    root: &Path,
    ignore: &[PathBuf],
    progress: &dyn Fn(u64, u64),
) -> Result<ModelHash, IntegrityError> {
    let mut ignores = normalize_ignores(root, ignore);
    ignores.extend(GIT_PATHS.iter().map(|s| (*s).to_owned()));
    let tree = walk(root, &ignores)?;
    let mut failures = tree.failures;
    let files: Vec<_> = tree
        .files
        .into_iter()
        .filter(|f| {
            let ok = name_is_pipeline_safe(&f.name);
            if !ok {
                failures.push(FileFailure {
                    path: f.name.clone(),
                    reason: "file name contains a newline, carriage return or backslash".into(),
                });
            }
            ok
        })
        .collect();
    let jobs: Vec<Job> = files
        .iter()
        .map(|f| Job {
            path: f.path.clone(),
            range: None,
            size_hint: f.size,
        })
        .collect();
    let results = hash_jobs(&jobs, progress);
    let mut out = Vec::new();
    for (f, r) in files.iter().zip(results) {
        match r {
            Ok(h) => out.push(FileDigest {
                name: f.name.clone(),
                sha256: hex::encode(h.digest),
                size: h.bytes,
            }),
            Err(e) => failures.push(FileFailure {
                path: f.name.clone(),
                reason: e,
            }),
        }
    }
    Ok(finish(root.display().to_string(), out, failures, None))
}

fn finish(
    model: String,
    files: Vec<FileDigest>,
    mut failures: Vec<FileFailure>,
    ollama: Option<Resolved>,
) -> ModelHash {
    if files.is_empty() && failures.is_empty() {
        failures.push(FileFailure {
            path: model.clone(),
            reason: "no model files found".into(),
        });
    }
    let digest = failures
        .is_empty()
        .then(|| aggregate(files.iter().map(|f| (f.sha256.as_str(), f.name.as_str()))));
    ModelHash {
        model,
        digest,
        manifest_digest: ollama.as_ref().map(|r| r.manifest_digest.clone()),
        files,
        failures,
        ollama,
    }
}
