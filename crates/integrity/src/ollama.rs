//! Ollama model store: `manifests/<registry>/<namespace>/<model>/<tag>` (an OCI
//! image manifest) pointing at content-addressed `blobs/sha256-<hex>`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::IntegrityError;
use crate::hashing::{parse_digest, sha256_hex};

pub(crate) const DEFAULT_REGISTRY: &str = "registry.ollama.ai";
pub(crate) const DEFAULT_NAMESPACE: &str = "library";
pub(crate) const DEFAULT_TAG: &str = "latest";
/// Real manifests are a few KiB; anything near this bound is hostile.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
pub(crate) const MODEL_LAYER_TYPE: &str = "application/vnd.ollama.image.model";

/// A fully qualified Ollama model reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub registry: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

impl ModelRef {
    /// Parses `model`, `model:tag`, `ns/model:tag` or `registry/ns/model:tag`
    /// with Ollama's defaults, rejecting anything that could leave the
    /// manifests directory when joined as a path.
    pub fn parse(name: &str) -> Result<Self, IntegrityError> {
        let bad = |reason: &str| IntegrityError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.starts_with('/') || name.contains('\\') {
            return Err(bad("absolute paths and backslashes are not allowed"));
        }
        let parts: Vec<&str> = name.split('/').collect();
        let (registry, namespace, last) = match parts.as_slice() {
            [m] => (DEFAULT_REGISTRY, DEFAULT_NAMESPACE, *m),
            [ns, m] => (DEFAULT_REGISTRY, *ns, *m),
            [reg, ns, m] => (*reg, *ns, *m),
            _ => return Err(bad("expected [registry/][namespace/]model[:tag]")),
        };
        // Only the last component carries the tag: a registry may have a port.
        let (model, tag) = match last.rsplit_once(':') {
            Some((m, t)) => (m, t),
            None => (last, DEFAULT_TAG),
        };
        for (what, part, port_ok) in [
            ("registry", registry, true),
            ("namespace", namespace, false),
            ("model", model, false),
            ("tag", tag, false),
        ] {
            check_component(part, port_ok).map_err(|r| bad(&format!("{what} {r}")))?;
        }
        Ok(Self {
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            model: model.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// `registry/namespace/model:tag`, the key used in allowlists.
    pub fn canonical(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.registry, self.namespace, self.model, self.tag
        )
    }

    fn manifest_rel(&self) -> PathBuf {
        [
            "manifests",
            &self.registry,
            &self.namespace,
            &self.model,
            &self.tag,
        ]
        .iter()
        .collect()
    }
}

fn check_component(part: &str, port_ok: bool) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("is empty");
    }
    if part == "." || part == ".." || part.starts_with('.') {
        return Err("must not start with '.' (path traversal)");
    }
    let ok = part.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') || (port_ok && b == b':')
    });
    if ok {
        Ok(())
    } else {
        Err("has characters outside [A-Za-z0-9._-]")
    }
}

#[derive(Deserialize)]
struct RawManifest {
    config: RawLayer,
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
struct RawLayer {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct BlobRef {
    pub hex: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub name: ModelRef,
    /// SHA-256 of the manifest file: what `/api/tags` reports as `digest`.
    pub manifest_digest: String,
    /// Config first, then layers in manifest order; duplicates removed.
    pub blobs: Vec<BlobRef>,
}

impl Resolved {
    pub fn model_layer(&self) -> Option<&BlobRef> {
        self.blobs.iter().find(|b| b.media_type == MODEL_LAYER_TYPE)
    }
}

pub(crate) fn resolve(models_dir: &Path, name: &str) -> Result<Resolved, IntegrityError> {
    let name = ModelRef::parse(name)?;
    let path = models_dir.join(name.manifest_rel());
    let root = models_dir
        .canonicalize()
        .map_err(|e| IntegrityError::io(models_dir, e))?;
    let real = path.canonicalize().map_err(|e| IntegrityError::Manifest {
        path: path.clone(),
        reason: format!("cannot open ({e}); is the model pulled?"),
    })?;
    if !real.starts_with(&root) {
        return Err(IntegrityError::Manifest {
            path,
            reason: "symlink escapes the models directory".into(),
        });
    }
    let file = std::fs::File::open(&real).map_err(|e| IntegrityError::io(&path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IntegrityError::io(&path, e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(IntegrityError::Manifest {
            path,
            reason: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    let raw: RawManifest =
        serde_json::from_slice(&bytes).map_err(|e| IntegrityError::Manifest {
            path: path.clone(),
            reason: format!("not a valid image manifest: {e}"),
        })?;
    let mut blobs: Vec<BlobRef> = Vec::new();
    for layer in std::iter::once(raw.config).chain(raw.layers) {
        let hex = parse_digest(&layer.digest)?;
        if blobs.iter().any(|b| b.hex == hex) {
            continue;
        }
        blobs.push(BlobRef {
            hex,
            size: layer.size,
            media_type: layer.media_type,
        });
    }
    Ok(Resolved {
        name,
        manifest_digest: sha256_hex(&bytes),
        blobs,
    })
}

/// File name of a blob, as Ollama stores it and as it appears in the aggregate.
pub(crate) fn blob_name(hex: &str) -> String {
    format!("sha256-{hex}")
}
