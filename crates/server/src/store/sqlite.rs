//! SQLite store (WAL mode), the embedded default.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{KeyRecord, NewKey, Store, StoreError, Tenant, TenantStatus, now_ms};

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
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

/// Expands to the tenant column list, so queries stay `&'static str` (sqlx refuses built strings).
macro_rules! tenant_columns {
    () => {
        "id, name, status, created_ms, key_rotated_ms, revoked_ms"
    };
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
            "SELECT k.tenant_id, t.name, k.secret_hash, k.revoked_ms, t.status \
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
            usable: revoked.is_none() && status == "active",
        }))
    }
}
