//! HTTP handlers, one module per resource.

pub mod chat;
pub mod conversations;
pub mod health;
pub mod limits;
pub mod models;
pub mod output_policy;
pub mod security;
pub mod tenants;
pub mod verify;
