//! SQLite store (WAL mode), the embedded default.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use secureinfer_guard::Thresholds;

use crate::extraction::TenantProbPolicy;

use super::{
    EventFilter, KeyRecord, NewKey, SecurityEvent, Store, StoreError, Tenant, TenantStatus, now_ms,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
        }
        let in_memory = url.contains(":memory:");
        if !in_memory {
            // Migrate over one connection before the pool opens more: on a fresh file the
            // first writes and the pool's own connects otherwise race for the write lock
            // ("database is locked" under load).
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        if in_memory {
            MIGRATOR.run(&pool).await?;
        }
        Ok(SqliteStore { pool })
    }
}

/// Expands to the tenant column list, so queries stay `&'static str` (sqlx refuses built strings).
macro_rules! tenant_columns {
    () => {
        "id, name, status, created_ms, key_rotated_ms, revoked_ms, risk_threshold_warn, risk_threshold_block, prob_policy, rate_limit_tier"
    };
}

fn thresholds(row: &SqliteRow) -> Result<Option<Thresholds>, sqlx::Error> {
    let warn: Option<i64> = row.try_get("risk_threshold_warn")?;
    let block: Option<i64> = row.try_get("risk_threshold_block")?;
    Ok(match (warn, block) {
        (Some(w), Some(b)) => Some(Thresholds {
            warn: w.clamp(0, 100) as u8,
            block: b.clamp(0, 100) as u8,
        }),
        _ => None,
    })
}

/// A stored policy that no longer parses (written by a newer version) counts as none.
fn prob_policy(row: &SqliteRow) -> Result<Option<TenantProbPolicy>, sqlx::Error> {
    let raw: Option<String> = row.try_get("prob_policy")?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

fn tenant(row: &SqliteRow) -> Result<Tenant, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: if status == "active" {
            TenantStatus::Active
        } else {
            TenantStatus::Revoked
        },
        created_ms: row.try_get("created_ms")?,
        key_rotated_ms: row.try_get("key_rotated_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
        thresholds: thresholds(row)?,
        prob_policy: prob_policy(row)?,
        rate_limit_tier: row.try_get("rate_limit_tier")?,
    })
}

fn event(row: &SqliteRow) -> Result<SecurityEvent, sqlx::Error> {
    let reasons: String = row.try_get("reasons")?;
    let detail: Option<String> = row.try_get("detail")?;
    let score: i64 = row.try_get("score")?;
    let enforced: i64 = row.try_get("enforced")?;
    Ok(SecurityEvent {
        id: row.try_get("id")?,
        created_ms: row.try_get("created_ms")?,
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .unwrap_or_default(),
        request_id: row.try_get("request_id")?,
        event_type: row.try_get("event_type")?,
        score: score.clamp(0, 100) as u8,
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        decision: row.try_get("decision")?,
        enforced: enforced != 0,
        prompt_sha256: row.try_get("prompt_sha256")?,
        prompt_chars: row.try_get("prompt_chars")?,
        prompt: row.try_get("prompt")?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str, key: &NewKey) -> Result<Tenant, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, status, created_ms) VALUES (?, ?, 'active', ?)",
        )
        .bind(&id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a tenant named {name:?} already exists"))
            } else {
                StoreError::Db(e)
            }
        })?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, secret_hash, created_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(&key.key_id)
        .bind(&id)
        .bind(&key.secret_hash[..])
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Tenant {
            id,
            name: name.to_string(),
            status: TenantStatus::Active,
            created_ms: now,
            key_rotated_ms: None,
            revoked_ms: None,
            thresholds: None,
            prob_policy: None,
            rate_limit_tier: None,
        })
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(tenant).collect::<Result<_, _>>()?)
    }

    async fn find_tenant(&self, id_or_name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ? OR name = ? LIMIT 1"
        ))
        .bind(id_or_name)
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(tenant).transpose()?)
    }

    async fn rotate_key(&self, tenant_id: &str, key: &NewKey) -> Result<Tenant, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let updated =
            sqlx::query("UPDATE tenants SET key_rotated_ms = ? WHERE id = ? AND status = 'active'")
                .bind(now)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("active tenant"));
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_ms = ? WHERE tenant_id = ? AND revoked_ms IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, secret_hash, created_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(&key.key_id)
        .bind(tenant_id)
        .bind(&key.secret_hash[..])
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ?"
        ))
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(tenant(&row)?)
    }

    async fn revoke_tenant(&self, tenant_id: &str) -> Result<Tenant, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE tenants SET status = 'revoked', revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?")
            .bind(now)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_ms = ? WHERE tenant_id = ? AND revoked_ms IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ?"
        ))
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(tenant(&row)?)
    }

    async fn lookup_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT k.tenant_id, t.name, k.secret_hash, k.revoked_ms, t.status, t.risk_threshold_warn, t.risk_threshold_block, t.prob_policy, t.rate_limit_tier \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_id = ?",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let revoked: Option<i64> = row.try_get("revoked_ms")?;
        let status: String = row.try_get("status")?;
        Ok(Some(KeyRecord {
            tenant_id: row.try_get("tenant_id")?,
            tenant_name: row.try_get("name")?,
            secret_hash: row.try_get("secret_hash")?,
            thresholds: thresholds(&row)?,
            prob_policy: prob_policy(&row)?,
            rate_limit_tier: row.try_get("rate_limit_tier")?,
            usable: revoked.is_none() && status == "active",
        }))
    }

    async fn set_rate_limit_tier(
        &self,
        tenant_id: &str,
        tier: Option<&str>,
    ) -> Result<Tenant, StoreError> {
        let updated = sqlx::query("UPDATE tenants SET rate_limit_tier = ? WHERE id = ?")
            .bind(tier)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ?"
        ))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(tenant(&row)?)
    }

    async fn set_thresholds(
        &self,
        tenant_id: &str,
        thresholds: Option<Thresholds>,
    ) -> Result<Tenant, StoreError> {
        let updated = sqlx::query(
            "UPDATE tenants SET risk_threshold_warn = ?, risk_threshold_block = ? WHERE id = ?",
        )
        .bind(thresholds.map(|t| i64::from(t.warn)))
        .bind(thresholds.map(|t| i64::from(t.block)))
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ?"
        ))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(tenant(&row)?)
    }

    async fn set_prob_policy(
        &self,
        tenant_id: &str,
        policy: Option<&TenantProbPolicy>,
    ) -> Result<Tenant, StoreError> {
        let json = policy
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Conflict(format!("policy cannot be stored: {e}")))?;
        let updated = sqlx::query("UPDATE tenants SET prob_policy = ? WHERE id = ?")
            .bind(json)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = ?"
        ))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(tenant(&row)?)
    }

    async fn insert_event(&self, e: &SecurityEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO security_events (id, created_ms, tenant_id, request_id, event_type, score, reasons, \
             decision, enforced, prompt_sha256, prompt_chars, prompt, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(e.created_ms)
        .bind((!e.tenant_id.is_empty()).then_some(&e.tenant_id))
        .bind(&e.request_id)
        .bind(&e.event_type)
        .bind(i64::from(e.score))
        .bind(serde_json::to_string(&e.reasons).unwrap_or_else(|_| "[]".into()))
        .bind(&e.decision)
        .bind(i64::from(e.enforced))
        .bind(&e.prompt_sha256)
        .bind(e.prompt_chars)
        .bind(&e.prompt)
        .bind(e.detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<SecurityEvent>, StoreError> {
        // Each filter is "(? IS NULL OR column = ?)" so the statement stays static.
        let rows = sqlx::query(
            "SELECT * FROM security_events WHERE \
             (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR event_type = ?2) AND (?3 IS NULL OR decision = ?3) \
             AND (?4 IS NULL OR created_ms >= ?4) AND (?5 IS NULL OR created_ms < ?5) AND (?6 IS NULL OR id < ?6) \
             ORDER BY id DESC LIMIT ?7",
        )
        .bind(&f.tenant_id)
        .bind(&f.event_type)
        .bind(&f.decision)
        .bind(f.since_ms)
        .bind(f.until_ms)
        .bind(&f.before_id)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event).collect::<Result<_, _>>()?)
    }

    async fn output_overrides(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT overrides FROM tenant_output_policy WHERE tenant_id = ?")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("overrides")).transpose()?)
    }

    async fn set_output_overrides(
        &self,
        tenant_id: &str,
        overrides: Option<&str>,
    ) -> Result<(), StoreError> {
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        match overrides {
            Some(json) => {
                sqlx::query(
                    "INSERT INTO tenant_output_policy (tenant_id, overrides, updated_ms) VALUES (?, ?, ?) \
                     ON CONFLICT (tenant_id) DO UPDATE SET overrides = excluded.overrides, updated_ms = excluded.updated_ms",
                )
                .bind(tenant_id)
                .bind(json)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM tenant_output_policy WHERE tenant_id = ?")
                    .bind(tenant_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn insert_audit(&self, records: &[crate::audit::AuditRecord]) -> Result<(), StoreError> {
        super::audit_sqlite::insert(&self.pool, records).await
    }

    async fn list_audit(
        &self,
        filter: &crate::audit::AuditFilter,
    ) -> Result<Vec<crate::audit::AuditRecord>, StoreError> {
        super::audit_sqlite::list(&self.pool, filter).await
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        super::audit_sqlite::purge(&self.pool, before_ms).await
    }
}
