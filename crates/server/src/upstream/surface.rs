//! The upstream surface the gateway can reach: inference and read-only endpoints, nothing
//! else. Model servers bundle management endpoints with inference (Ollama's pull, push,
//! create, copy, delete and blob upload; vLLM's LoRA loading, cache reset, sleep/wake), and a
//! gateway that forwarded arbitrary paths would hand every tenant those powers. Every
//! upstream URL is built here from a closed list, so no request can name another path.

use crate::config::UpstreamKind;

/// What the gateway asks a model server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Models,
    Version,
}

/// The path of `endpoint` on a server of `kind`, relative to the configured base URL
/// (for OpenAI-compatible servers the base already ends in `/v1`, except for `Version`,
/// which vLLM serves at the root).
pub fn path(kind: UpstreamKind, endpoint: Endpoint) -> &'static str {
    match (kind, endpoint) {
        (UpstreamKind::Ollama, Endpoint::Chat) => "/api/chat",
        (UpstreamKind::Ollama, Endpoint::Models) => "/api/tags",
        (UpstreamKind::Ollama, Endpoint::Version) => "/api/version",
        (_, Endpoint::Chat) => "/chat/completions",
        (_, Endpoint::Models) => "/models",
        (_, Endpoint::Version) => "/version",
    }
}

/// Every path the gateway may call, as seen from the server's root.
pub fn allowed_paths(kind: UpstreamKind) -> &'static [&'static str] {
    match kind {
        UpstreamKind::Ollama => &["/api/chat", "/api/tags", "/api/version"],
        UpstreamKind::OpenAi => &["/v1/chat/completions", "/v1/models", "/version"],
        UpstreamKind::Mock => &[],
    }
}

/// Management endpoints of common model servers; none of them is in [`allowed_paths`]
/// (a unit test checks it, and the docs list them).
pub const MANAGEMENT_PATHS: &[&str] = &[
    "/api/pull",
    "/api/push",
    "/api/create",
    "/api/copy",
    "/api/delete",
    "/api/blobs/sha256:0",
    "/api/generate",
    "/api/embed",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/reset_prefix_cache",
    "/sleep",
    "/wake_up",
    "/collective_rpc",
    "/scale_elastic_ep",
    "/start_profile",
    "/stop_profile",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_management_path_is_reachable() {
        for kind in [
            UpstreamKind::Ollama,
            UpstreamKind::OpenAi,
            UpstreamKind::Mock,
        ] {
            for p in MANAGEMENT_PATHS {
                assert!(!allowed_paths(kind).contains(p), "{p}");
            }
        }
    }

    #[test]
    fn built_paths_are_the_allowed_ones() {
        for kind in [UpstreamKind::Ollama, UpstreamKind::OpenAi] {
            for e in [Endpoint::Chat, Endpoint::Models, Endpoint::Version] {
                let p = path(kind, e);
                let full = if kind == UpstreamKind::OpenAi && e != Endpoint::Version {
                    format!("/v1{p}")
                } else {
                    p.to_string()
                };
                assert!(allowed_paths(kind).contains(&full.as_str()), "{full}");
            }
        }
    }
}
