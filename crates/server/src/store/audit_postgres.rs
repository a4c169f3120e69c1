//! The audit table in PostgreSQL (twin of `audit_sqlite.rs`). Statements are static strings;
//! filters are `($n::type IS NULL OR …)`, the casts naming the type of a parameter sent as NULL.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::StoreError;
use crate::audit::{AuditFilter, AuditKind, AuditRecord};

pub(super) async fn insert(pool: &PgPool, records: &[AuditRecord]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for r in records {
        sqlx::query(
            "INSERT INTO audit_log (id, created_ms, kind, request_id, actor, tenant_id, action, status, decision, \
             score, reasons, latency_ms, model, prompt_sha256, prompt_chars, prompt_tokens, completion_tokens, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&r.id)
        .bind(r.created_ms)
        .bind(r.kind.as_str())
        .bind(&r.request_id)
        .bind(&r.actor)
        .bind(&r.tenant_id)
        .bind(&r.action)
        .bind(r.status.map(i64::from))
        .bind(&r.decision)
        .bind(r.score.map(i64::from))
        .bind(serde_json::to_string(&r.reasons).unwrap_or_else(|_| "[]".into()))
        .bind(r.latency_ms)
        .bind(&r.model)
        .bind(&r.prompt_sha256)
        .bind(r.prompt_chars.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(r.prompt_tokens.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(r.completion_tokens.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind((!r.detail.is_null()).then(|| r.detail.to_string()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn unsigned(row: &PgRow, col: &str) -> Result<Option<u64>, sqlx::Error> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(|n| u64::try_from(n).unwrap_or(0)))
}

fn record(row: &PgRow) -> Result<AuditRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let reasons: String = row.try_get("reasons")?;
    let detail: Option<String> = row.try_get("detail")?;
    let status: Option<i64> = row.try_get("status")?;
    let score: Option<i64> = row.try_get("score")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        created_ms: row.try_get("created_ms")?,
        kind: AuditKind::parse(&kind).unwrap_or(AuditKind::Request),
        request_id: row.try_get("request_id")?,
        actor: row.try_get("actor")?,
        tenant_id: row.try_get("tenant_id")?,
        action: row.try_get("action")?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        decision: row.try_get("decision")?,
        score: score.map(|s| s.clamp(0, 100) as u8),
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        latency_ms: row.try_get("latency_ms")?,
        model: row.try_get("model")?,
        prompt_sha256: row.try_get("prompt_sha256")?,
        prompt_chars: unsigned(row, "prompt_chars")?,
        prompt_tokens: unsigned(row, "prompt_tokens")?,
        completion_tokens: unsigned(row, "completion_tokens")?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

/// Newest first, or oldest first for exports.
pub(super) async fn list(pool: &PgPool, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    let (sql, cursor) = if f.oldest_first {
        (
            "SELECT * FROM audit_log WHERE \
             ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR actor = $3) \
             AND ($4::text IS NULL OR action = $4) AND ($5::bigint IS NULL OR created_ms >= $5) \
             AND ($6::bigint IS NULL OR created_ms < $6) AND ($7::text IS NULL OR id > $7) ORDER BY id ASC LIMIT $8",
            &f.after_id,
        )
    } else {
        (
            "SELECT * FROM audit_log WHERE \
             ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR actor = $3) \
             AND ($4::text IS NULL OR action = $4) AND ($5::bigint IS NULL OR created_ms >= $5) \
             AND ($6::bigint IS NULL OR created_ms < $6) AND ($7::text IS NULL OR id < $7) ORDER BY id DESC LIMIT $8",
            &f.before_id,
        )
    };
    let rows = sqlx::query(sql)
        .bind(f.kind.map(AuditKind::as_str))
        .bind(&f.tenant_id)
        .bind(&f.actor)
        .bind(&f.action)
        .bind(f.since_ms)
        .bind(f.until_ms)
        .bind(cursor)
        .bind(i64::from(f.limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
}

pub(super) async fn purge(pool: &PgPool, before_ms: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM audit_log WHERE created_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
