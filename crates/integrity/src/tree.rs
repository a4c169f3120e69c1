//! Enumerating the files of a plain model directory (what vLLM and llama.cpp
//! load), refusing anything that would let a file outside the model count as
//! part of it.

use std::path::{Path, PathBuf};

use crate::{FileFailure, IntegrityError};

/// Paths `model_signing` ignores by default; ignoring them here too keeps the
/// two tools' file sets identical.
pub(crate) const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

#[derive(Debug, Clone)]
pub(crate) struct TreeFile {
    /// Path relative to the model root, `/`-separated.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub is_symlink: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub files: Vec<TreeFile>,
    pub failures: Vec<FileFailure>,
    /// The model path is a single file rather than a directory.
    pub single_file: bool,
}

/// Normalises ignore entries to the relative `/`-separated form used in names.
pub(crate) fn normalize_ignores(root: &Path, ignore: &[PathBuf]) -> Vec<String> {
    let root_real = root.canonicalize().ok();
    ignore
        .iter()
        .filter_map(|p| {
            let rel = if p.is_absolute() {
                // A signature being written does not exist yet: resolve its
                // directory instead, so /tmp-style symlinks still line up.
                let real = p.canonicalize().unwrap_or_else(|_| {
                    match (
                        p.parent().and_then(|d| d.canonicalize().ok()),
                        p.file_name(),
                    ) {
                        (Some(dir), Some(name)) => dir.join(name),
                        _ => p.clone(),
                    }
                });
                let base = root_real.as_deref().unwrap_or(root);
                real.strip_prefix(base).ok()?.to_path_buf()
            } else {
                p.clone()
            };
            let s: Vec<String> = rel
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            (!s.is_empty()).then(|| s.join("/"))
        })
        .collect()
}

pub(crate) fn is_ignored(name: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|i| {
        name == i
            || name
                .strip_prefix(i.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

pub(crate) fn walk(root: &Path, ignore: &[String]) -> Result<Tree, IntegrityError> {
    let root_real = root
        .canonicalize()
        .map_err(|e| IntegrityError::io(root, e))?;
    let meta = std::fs::metadata(&root_real).map_err(|e| IntegrityError::io(root, e))?;
    let mut tree = Tree::default();
    if meta.is_file() {
        let name = root_real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_owned());
        tree.single_file = true;
        tree.files.push(TreeFile {
            name,
            path: root_real,
            size: meta.len(),
            is_symlink: false,
        });
        return Ok(tree);
    }
    let mut stack = vec![(root_real.clone(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| IntegrityError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| IntegrityError::io(&dir, e))?;
            let path = entry.path();
            let fname = entry.file_name();
            let Some(fname) = fname.to_str() else {
                tree.fail(
                    &format!("{prefix}{}", fname.to_string_lossy()),
                    "file name is not UTF-8",
                );
                continue;
            };
            let name = format!("{prefix}{fname}");
            if is_ignored(&name, ignore) {
                continue;
            }
            let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
                tree.fail(&name, "cannot stat");
                continue;
            };
            if lmeta.is_dir() {
                stack.push((path, format!("{name}/")));
            } else if lmeta.is_file() {
                tree.push(name, path, lmeta.len(), false);
            } else if lmeta.file_type().is_symlink() {
                match path.canonicalize() {
                    Err(_) => tree.fail(&name, "dangling symlink"),
                    Ok(t) if !t.starts_with(&root_real) => tree.fail(
                        &name,
                        &format!(
                            "symlink escapes the model directory (points to {})",
                            t.display()
                        ),
                    ),
                    Ok(t) => match std::fs::metadata(&t) {
                        Ok(m) if m.is_file() => tree.push(name, path, m.len(), true),
                        Ok(_) => tree.fail(&name, "symlink to a directory is not followed"),
                        Err(_) => tree.fail(&name, "cannot stat symlink target"),
                    },
                }
            } else {
                tree.fail(&name, "not a regular file (device, socket or pipe)");
            }
        }
    }
    tree.files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tree)
}

impl Tree {
    fn fail(&mut self, name: &str, reason: &str) {
        self.failures.push(FileFailure {
            path: name.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn push(&mut self, name: String, path: PathBuf, size: u64, is_symlink: bool) {
        self.files.push(TreeFile {
            name,
            path,
            size,
            is_symlink,
        });
    }
}
