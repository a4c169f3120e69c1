//! `secureinfer audit export`: the trail as CSV or JSON Lines, oldest first, read from the
//! database in pages so an export of any size runs in bounded memory.

use std::io::Write;

use serde_json::{Value, json};

use super::{AuditFilter, AuditRecord};
use crate::routes::tenants::rfc3339;
use crate::store::{Store, StoreError};

/// Records read per database round-trip.
const PAGE: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// The CSV columns, in order (also the JSON field names).
pub const COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "kind",
    "request_id",
    "actor",
    "tenant_id",
    "action",
    "status",
    "decision",
    "score",
    "reasons",
    "latency_ms",
    "model",
    "prompt_sha256",
    "prompt_chars",
    "prompt_tokens",
    "completion_tokens",
    "detail",
];

/// The record as the API and the JSONL export show it.
pub fn record_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "created_at": rfc3339(r.created_ms),
        "kind": r.kind,
        "request_id": r.request_id,
        "actor": r.actor,
        "tenant_id": r.tenant_id,
        "action": r.action,
        "status": r.status,
        "decision": r.decision,
        "score": r.score,
        "reasons": r.reasons,
        "latency_ms": r.latency_ms,
        "model": r.model,
        "prompt_sha256": r.prompt_sha256,
        "prompt_chars": r.prompt_chars,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "detail": r.detail,
    })
}

/// One CSV field: quoted when needed (RFC 4180), and a leading `=`, `+`, `-`, `@` made inert
/// so a spreadsheet does not run it as a formula.
fn csv_field(out: &mut String, value: &str) {
    let inert = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = inert || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if inert {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

pub fn csv_header() -> String {
    let mut line = COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

pub fn csv_line(r: &AuditRecord) -> String {
    let v = record_json(r);
    let mut line = String::with_capacity(256);
    for (i, col) in COLUMNS.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let text = match &v[*col] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(";"),
            other => other.to_string(),
        };
        csv_field(&mut line, &text);
    }
    line.push_str("\r\n");
    line
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not write the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes every record matching `filter` (its paging fields are managed here); returns how many.
pub async fn export(
    store: &dyn Store,
    mut filter: AuditFilter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    filter.oldest_first = true;
    filter.before_id = None;
    filter.limit = PAGE;
    if format == Format::Csv {
        out.write_all(csv_header().as_bytes())?;
    }
    let mut written = 0u64;
    loop {
        let page = store.list_audit(&filter).await?;
        for r in &page {
            match format {
                Format::Csv => out.write_all(csv_line(r).as_bytes())?,
                Format::Jsonl => {
                    serde_json::to_writer(&mut *out, &record_json(r))
                        .map_err(std::io::Error::from)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => filter.after_id = Some(last.id.clone()),
            _ => break,
        }
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditKind;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let mut s = String::new();
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "\"a,\"\"b\"\"\"");
        let mut s = String::new();
        csv_field(&mut s, "=HYPERLINK(1)");
        assert_eq!(s, "\"'=HYPERLINK(1)\"");
        let mut s = String::new();
        csv_field(&mut s, "plain");
        assert_eq!(s, "plain");
    }

    #[test]
    fn csv_line_has_one_field_per_column() {
        let mut r = AuditRecord::new(AuditKind::Request, "t1", "POST /v1/chat/completions");
        r.reasons = vec!["a".into(), "b".into()];
        r.status = Some(403);
        let line = csv_line(&r);
        assert!(line.ends_with("\r\n"));
        assert_eq!(line.trim_end().split(',').count(), COLUMNS.len());
        assert!(line.contains(",403,"));
        assert!(line.contains(",a;b,"));
    }
}
