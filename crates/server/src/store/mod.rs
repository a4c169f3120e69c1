//! Persistent state behind one trait: tenants and hashed API keys (more tables arrive with
//! the security gate and the audit trail). SQLite is the embedded default; PostgreSQL is what
//! several replicas share. Both run the same migrations (`migrations/sqlite`, `migrations/postgres`).

mod audit_postgres;
mod audit_sqlite;
mod events;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::extraction::TenantProbPolicy;
pub use events::{EventFilter, SecurityEvent};
pub use postgres::PostgresStore;
use secureinfer_guard::Thresholds;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported database URL: {0}")]
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Revoked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub created_ms: i64,
    pub key_rotated_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// Per-tenant gate thresholds, overriding the gateway's.
    pub thresholds: Option<Thresholds>,
    /// Per-tenant overrides of the probability (logprobs / logit_bias) policy.
    pub prob_policy: Option<TenantProbPolicy>,
    /// Abuse-limit tier (a name from RATE_LIMIT_TIERS); `None`: the TENANT_* defaults.
    pub rate_limit_tier: Option<String>,
}

/// What a request's key id resolves to.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub tenant_id: String,
    pub tenant_name: String,
    pub secret_hash: Vec<u8>,
    pub thresholds: Option<Thresholds>,
    pub prob_policy: Option<TenantProbPolicy>,
    pub rate_limit_tier: Option<String>,
    /// False when the key was rotated away or its tenant revoked.
    pub usable: bool,
}

/// A key about to be stored: only its public id and the hash of its secret.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: String,
    pub secret_hash: [u8; 32],
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
    async fn create_tenant(&self, name: &str, key: &NewKey) -> Result<Tenant, StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Finds a tenant by id, or by name (for operators at the CLI).
    async fn find_tenant(&self, id_or_name: &str) -> Result<Option<Tenant>, StoreError>;
    /// Revokes every key of the tenant and stores the new one, atomically.
    async fn rotate_key(&self, tenant_id: &str, key: &NewKey) -> Result<Tenant, StoreError>;
    /// Marks the tenant revoked and revokes all its keys.
    async fn revoke_tenant(&self, tenant_id: &str) -> Result<Tenant, StoreError>;
    async fn lookup_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Sets (or with `None` clears) the tenant's own gate thresholds.
    async fn set_thresholds(
        &self,
        tenant_id: &str,
        thresholds: Option<Thresholds>,
    ) -> Result<Tenant, StoreError>;
    /// Sets (or with `None` clears) the tenant's probability-policy overrides.
    async fn set_prob_policy(
        &self,
        tenant_id: &str,
        policy: Option<&TenantProbPolicy>,
    ) -> Result<Tenant, StoreError>;
    /// Sets (or with `None` clears) the tenant's abuse-limit tier.
    async fn set_rate_limit_tier(
        &self,
        tenant_id: &str,
        tier: Option<&str>,
    ) -> Result<Tenant, StoreError>;
    async fn insert_event(&self, event: &SecurityEvent) -> Result<(), StoreError>;
    /// The tenant's output-guard overrides as stored (a JSON object), if any.
    async fn output_overrides(&self, tenant_id: &str) -> Result<Option<String>, StoreError>;
    /// Stores (or with `None` removes) the tenant's output-guard overrides.
    async fn set_output_overrides(
        &self,
        tenant_id: &str,
        overrides: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<SecurityEvent>, StoreError>;
    /// Appends audit records (one transaction).
    async fn insert_audit(&self, records: &[crate::audit::AuditRecord]) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_audit(
        &self,
        filter: &crate::audit::AuditFilter,
    ) -> Result<Vec<crate::audit::AuditRecord>, StoreError>;
    /// Deletes audit records created before `before_ms`; returns how many.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError>;
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Opens the store named by `DATABASE_URL` and runs its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::connect(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url).await?));
    }
    Err(StoreError::Unsupported(
        "expected sqlite://path or postgres://user@host/db".into(),
    ))
}
