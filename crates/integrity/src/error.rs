use std::path::PathBuf;

/// Errors that stop an operation before any per-file verdict can be given.
/// Per-file problems (a tampered blob, a missing file) are not errors: they are
/// collected as [`crate::FileFailure`]s so that one run reports all of them.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("malformed digest {0:?}: expected \"sha256:\" followed by 64 lowercase hex digits")]
    MalformedDigest(String),
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("signature: {0}")]
    Signature(String),
    #[error("allowlist: {0}")]
    Allowlist(String),
    #[error("model: {0}")]
    Model(String),
}

impl IntegrityError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
