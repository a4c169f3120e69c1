//! SecureInfer's service shell: HTTP, auth, stores, upstream clients, configuration and CLI.
//! The detection logic lives in `secureinfer-guard`; this crate wires it to the network.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod extraction;
pub mod gate;
pub mod isolation;
pub mod limits;
pub mod metrics;
pub mod mock_server;
pub mod model_integrity;
pub mod openai;
pub mod openapi;
pub mod output_filter;
pub mod redis_pool;
pub mod request_log;
pub mod routes;
pub mod scan_cli;
#[cfg(feature = "semantic")]
pub mod semantic_model;
pub mod server;
pub mod spans;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod train_cli;
#[cfg(feature = "semantic")]
pub mod train_semantic_cli;
pub mod upstream;
