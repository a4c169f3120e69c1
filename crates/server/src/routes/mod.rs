//! HTTP handlers, one module per resource.

pub mod audit;
pub mod chat;
pub mod conversations;
pub mod dashboard;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod output_policy;
pub mod security;
pub mod tenants;
pub mod verify;
