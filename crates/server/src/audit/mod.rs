//! The audit trail: one record per request outcome and one per admin action, in the database.
//!
//! Request records go through a bounded queue to a writer task that inserts them in batches,
//! so a burst of traffic costs one transaction per batch rather than one per request. The queue
//! is flushed before the audit endpoint or the dashboard reads (so a reader sees every request
//! that finished before it asked) and on shutdown (so nothing accepted is lost). Admin actions
//! are rare and must not be lost: they are written directly, before the action's response.
//!
//! No record holds a key, and none holds a raw prompt: only the prompt's SHA-256 and length.

pub mod cli;
pub mod export;
mod record;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use record::{AuditFilter, AuditKind, AuditRecord};

use crate::auth::Principal;
use crate::metrics::Metrics;
use crate::store::{Store, now_ms};

/// Records waiting for the writer. A full queue makes finishing requests wait (never drops).
const QUEUE: usize = 8192;
/// Most records inserted in one transaction.
const BATCH: usize = 512;
/// Longest a record waits for others to share its write (a flush never waits).
const COALESCE: Duration = Duration::from_millis(20);
/// How often expired records are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

enum Msg {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the audit trail; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Starts the writer (and, with a retention, the purge task) on the current runtime.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        retention: Option<Duration>,
    ) -> AuditLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(rx, store.clone(), metrics.clone()));
        if let Some(retention) = retention {
            tokio::spawn(purger(store.clone(), metrics.clone(), retention));
        }
        AuditLog { tx, store, metrics }
    }

    /// Queues a request record. Never blocks the caller: when the queue is full the record is
    /// handed to a task that waits for room.
    pub fn record(&self, record: AuditRecord) {
        match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(msg).await;
                });
            }
            // The writer is gone only after shutdown; nothing is left to write to.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit writer stopped; a request record was not written");
            }
        }
    }

    /// Waits until every record queued before this call is in the database.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Writes an admin action (who, what, on which tenant) straight to the database.
    pub async fn admin_action(
        &self,
        principal: &Principal,
        request_id: Option<&str>,
        action: &str,
        tenant_id: Option<&str>,
        detail: serde_json::Value,
    ) {
        let actor = match principal {
            Principal::Admin => "admin".to_string(),
            Principal::Tenant(t) => t.id.clone(),
        };
        let mut rec = AuditRecord::new(AuditKind::Admin, actor, action);
        rec.request_id = request_id.map(str::to_string);
        rec.tenant_id = tenant_id.map(str::to_string);
        rec.detail = detail;
        write_admin(self.store.as_ref(), &self.metrics, rec).await;
    }
}

/// Writes one admin record directly (also used by the CLI, which has no queue).
pub async fn write_admin(store: &dyn Store, metrics: &Metrics, rec: AuditRecord) {
    match store.insert_audit(std::slice::from_ref(&rec)).await {
        Ok(()) => metrics.audit_records("written", 1),
        Err(e) => {
            metrics.audit_records("failed", 1);
            metrics.backend_error("database", "audit_write");
            tracing::error!(error = %e, action = %rec.action, "could not write an admin audit record");
        }
    }
}

async fn writer(mut rx: mpsc::Receiver<Msg>, store: Arc<dyn Store>, metrics: Arc<Metrics>) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // At a steady few hundred requests a second records arrive one by one; waiting a
        // moment for company turns one SQLite transaction per request into one per batch.
        // A flush (a reader, shutdown) or a full batch writes at once.
        let deadline = tokio::time::Instant::now() + COALESCE;
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Record(r) => batch.push(*r),
                    Msg::Flush(ack) => acks.push(ack),
                }
                if batch.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if batch.len() >= BATCH || !acks.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => next = Some(msg),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match store.insert_audit(&batch).await {
                Ok(()) => metrics.audit_records("written", n),
                Err(e) => {
                    metrics.audit_records("failed", n);
                    metrics.backend_error("database", "audit_write");
                    tracing::error!(error = %e, records = n, "could not write audit records");
                }
            }
            batch.clear();
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

async fn purger(store: Arc<dyn Store>, metrics: Arc<Metrics>, retention: Duration) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        let cutoff =
            now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        match store.purge_audit(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired audit records deleted"),
            Err(e) => {
                metrics.backend_error("database", "audit_purge");
                tracing::error!(error = %e, "could not delete expired audit records");
            }
        }
    }
}
