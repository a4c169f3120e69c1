//! HTTP handlers, one module per resource.

pub mod chat;
pub mod health;
pub mod limits;
pub mod models;
pub mod security;
pub mod tenants;
pub mod verify;
