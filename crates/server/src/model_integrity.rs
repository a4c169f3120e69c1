//! Model integrity in the gateway: verify the model at start-up and on an interval, keep the
//! latest result for `/health`, `/v1/security/verify` and the chat route, and record a
//! security event when the model fails.
//!
//! The hashing itself is `secureinfer-integrity` (synchronous, reads whole model files). It
//! runs on a dedicated thread, not the blocking pool, so a multi-gigabyte check never holds up
//! shutdown: the runtime waits for blocking-pool tasks when it is dropped, not for threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secureinfer_integrity::{ModelSource, VerificationReport, VerifyOptions};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{ConfigError, IntegrityMode, IntegritySettings, ModelLocation};
use crate::error::ApiError;
use crate::routes::tenants::rfc3339;
use crate::store::{SecurityEvent, Store, now_ms};

/// Security event type recorded when the model fails verification.
pub const EVENT_TYPE: &str = "model_integrity";

/// What started a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Interval,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Interval => "interval",
            Trigger::Admin => "admin",
        }
    }
}

/// One completed verification.
#[derive(Debug, Clone)]
pub struct Check {
    pub report: VerificationReport,
    pub trigger: Trigger,
    pub checked_ms: i64,
    pub duration_ms: u64,
    started: Instant,
}

/// Bytes hashed so far by the check in progress, for the status endpoint.
#[derive(Default)]
struct Progress {
    running: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
}

/// Counters for a metrics exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IntegrityCounters {
    pub checks_total: u64,
    pub failed_checks_total: u64,
    /// `None` until the first check; then whether the latest one passed.
    pub valid: Option<bool>,
}

pub struct IntegrityMonitor {
    settings: IntegritySettings,
    options: VerifyOptions,
    store: Arc<dyn Store>,
    last: RwLock<Option<Arc<Check>>>,
    /// Serialises checks: two full reads of a large model at once only slow each other down.
    run_lock: tokio::sync::Mutex<()>,
    progress: Arc<Progress>,
    checks_total: AtomicU64,
    failed_total: AtomicU64,
}

/// Ollama's own default when `OLLAMA_MODELS` is unset.
fn default_models_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".ollama/models"))
        .unwrap_or_else(|| PathBuf::from(".ollama/models"))
}

fn options(settings: &IntegritySettings, model_name: &str) -> VerifyOptions {
    let source = match &settings.location {
        ModelLocation::Path(p) => ModelSource::Path(p.clone()),
        ModelLocation::Ollama { models_dir } => ModelSource::OllamaStore {
            models_dir: models_dir.clone().unwrap_or_else(default_models_dir),
            model: model_name.to_string(),
        },
    };
    VerifyOptions {
        source,
        expected_hash: settings.expected_hash.clone(),
        signature: settings.signature.clone(),
        public_key: settings.public_key.clone(),
        require_signature: settings.require_signature,
        allowlist: settings.allowlist.clone(),
    }
}

/// The key, signature and allowlist are configuration: a missing one is an operator's typo,
/// reported at start-up by name. (A missing *model* file is a verification failure instead.)
fn check_files(settings: &IntegritySettings) -> Result<(), ConfigError> {
    for (var, path) in [
        ("MODEL_PUBLIC_KEY", &settings.public_key),
        ("MODEL_SIGNATURE", &settings.signature),
        ("MODEL_ALLOWLIST", &settings.allowlist),
    ] {
        if let Some(p) = path
            && let Err(e) = std::fs::File::open(p)
        {
            return Err(ConfigError {
                var,
                value: p.display().to_string(),
                expected: format!("a readable file ({e})"),
            });
        }
    }
    Ok(())
}

fn report_failed(model: String, reason: String) -> VerificationReport {
    VerificationReport {
        valid: false,
        message: format!("model integrity check failed: {reason}"),
        model,
        digest: None,
        manifest_digest: None,
        files: 0,
        failures: vec![secureinfer_integrity::FileFailure {
            path: "verification".into(),
            reason,
        }],
    }
}

impl IntegrityMonitor {
    pub fn new(
        settings: IntegritySettings,
        model_name: &str,
        store: Arc<dyn Store>,
    ) -> Result<Self, ConfigError> {
        check_files(&settings)?;
        Ok(IntegrityMonitor {
            options: options(&settings, model_name),
            settings,
            store,
            last: RwLock::new(None),
            run_lock: tokio::sync::Mutex::new(()),
            progress: Arc::new(Progress::default()),
            checks_total: AtomicU64::new(0),
            failed_total: AtomicU64::new(0),
        })
    }

    pub fn settings(&self) -> &IntegritySettings {
        &self.settings
    }

    /// Runs the start-up check (when configured) before returning, then schedules re-checks.
    pub async fn start(self: &Arc<Self>) {
        if self.settings.verify_on_start {
            tracing::info!(model = %self.model_label(), "verifying model integrity before serving");
            self.run(Trigger::Start).await;
        }
        if let Some(every) = self.settings.interval {
            self.spawn_interval(every);
        }
    }

    fn spawn_interval(self: &Arc<Self>, every: Duration) {
        // A weak reference: the task ends once the gateway state is gone.
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // A check slower than the interval delays the next one instead of queueing a burst.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(monitor) = weak.upgrade() else {
                    break;
                };
                monitor.run(Trigger::Interval).await;
            }
        });
    }

    pub fn latest(&self) -> Option<Arc<Check>> {
        match self.last.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_latest(&self, check: Arc<Check>) {
        match self.last.write() {
            Ok(mut g) => *g = Some(check),
            Err(poisoned) => *poisoned.into_inner() = Some(check),
        }
    }

    fn model_label(&self) -> String {
        match &self.options.source {
            ModelSource::Path(p) => p.display().to_string(),
            ModelSource::OllamaStore { model, .. } => model.clone(),
        }
    }

    /// Verifies now. A check that arrives while another is running waits for it and then
    /// runs its own, unless a check that started after it arrived has already finished.
    /// The check runs in its own task, so it completes (and is recorded) even if the admin
    /// request that asked for it is cancelled.
    pub async fn run(self: &Arc<Self>, trigger: Trigger) -> Arc<Check> {
        let arrived = Instant::now();
        let me = self.clone();
        match tokio::spawn(async move { me.run_inner(trigger, arrived).await }).await {
            Ok(check) => check,
            Err(e) => Arc::new(Check {
                report: report_failed(self.model_label(), format!("verification task failed: {e}")),
                trigger,
                checked_ms: now_ms(),
                duration_ms: arrived.elapsed().as_millis() as u64,
                started: arrived,
            }),
        }
    }

    async fn run_inner(&self, trigger: Trigger, arrived: Instant) -> Arc<Check> {
        let _running = self.run_lock.lock().await;
        if let Some(last) = self.latest()
            && last.started >= arrived
        {
            return last;
        }
        let started = Instant::now();
        self.progress.done.store(0, Ordering::Relaxed);
        self.progress.total.store(0, Ordering::Relaxed);
        self.progress.running.store(true, Ordering::Relaxed);
        let report = self.verify_on_thread().await;
        self.progress.running.store(false, Ordering::Relaxed);
        let check = Arc::new(Check {
            report,
            trigger,
            checked_ms: now_ms(),
            duration_ms: started.elapsed().as_millis() as u64,
            started,
        });
        let previous = self.latest();
        self.set_latest(check.clone());
        self.record(&check, previous.as_deref()).await;
        check
    }

    async fn verify_on_thread(&self) -> VerificationReport {
        let opts = self.options.clone();
        let progress = self.progress.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("model-verify".into())
            .spawn(move || {
                let report = secureinfer_integrity::verify(&opts, &|done, total| {
                    progress.done.store(done, Ordering::Relaxed);
                    progress.total.store(total, Ordering::Relaxed);
                });
                let _ = tx.send(report);
            });
        if let Err(e) = spawned {
            return report_failed(
                self.model_label(),
                format!("cannot start the verification thread: {e}"),
            );
        }
        match rx.await {
            Ok(report) => report,
            // `verify` does not panic by contract; if the thread died anyway, fail closed.
            Err(_) => report_failed(self.model_label(), "the verification thread died".into()),
        }
    }

    /// Counts the check, logs it, and records a security event when the model fails, once per
    /// distinct failure (a model that stays broken does not add an event every interval).
    async fn record(&self, check: &Check, previous: Option<&Check>) {
        self.checks_total.fetch_add(1, Ordering::Relaxed);
        let r = &check.report;
        if r.valid {
            if previous.is_some_and(|p| !p.report.valid) {
                tracing::info!(model = %r.model, digest = r.digest.as_deref(), "model integrity restored: {}", r.message);
            } else {
                tracing::info!(model = %r.model, digest = r.digest.as_deref(), trigger = check.trigger.as_str(), duration_ms = check.duration_ms, "{}", r.message);
            }
            return;
        }
        self.failed_total.fetch_add(1, Ordering::Relaxed);
        let enforced = self.settings.mode == IntegrityMode::Enforce;
        tracing::error!(
            model = %r.model,
            trigger = check.trigger.as_str(),
            failures = r.failures.len(),
            mode = self.settings.mode.as_str(),
            "{}{}",
            r.message,
            if enforced { "; refusing inference until the model verifies again" } else { "; MODEL_INTEGRITY_MODE=monitor: still serving" }
        );
        let repeated = previous.is_some_and(|p| {
            !p.report.valid && p.report.failures == r.failures && p.report.digest == r.digest
        });
        if repeated {
            return;
        }
        let event = SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: check.checked_ms,
            tenant_id: String::new(),
            request_id: String::new(),
            event_type: EVENT_TYPE.to_string(),
            score: 100,
            reasons: vec!["model_integrity_failed".to_string()],
            decision: if enforced { "block" } else { "warn" }.to_string(),
            enforced,
            prompt_sha256: String::new(),
            prompt_chars: 0,
            prompt: None,
            detail: json!({
                "trigger": check.trigger,
                "model": r.model,
                "message": r.message,
                "digest": r.digest,
                "manifest_digest": r.manifest_digest,
                "failures": r.failures,
            }),
        };
        if let Err(e) = self.store.insert_event(&event).await {
            tracing::error!(error = %e, "could not record the model integrity event");
        }
    }

    /// Whether inference may proceed: refused only when enforcing and the latest check failed.
    pub fn admit(&self) -> Result<(), ApiError> {
        if self.settings.mode != IntegrityMode::Enforce {
            return Ok(());
        }
        match self.latest() {
            Some(c) if !c.report.valid => Err(ApiError::ModelIntegrity(format!(
                "{}. Inference is refused until the model verifies again (details: GET /v1/security/verify)",
                c.report.message
            ))),
            _ => Ok(()),
        }
    }

    pub fn counters(&self) -> IntegrityCounters {
        IntegrityCounters {
            checks_total: self.checks_total.load(Ordering::Relaxed),
            failed_checks_total: self.failed_total.load(Ordering::Relaxed),
            valid: self.latest().map(|c| c.report.valid),
        }
    }

    fn status_name(&self, latest: Option<&Check>) -> &'static str {
        match latest {
            Some(c) if c.report.valid => "valid",
            Some(_) => "invalid",
            None if self.settings.enabled() => "unchecked",
            None => "disabled",
        }
    }

    /// The `/health` view: the latest result (`None` before the first check), whether it makes
    /// the gateway unhealthy, and a short summary.
    pub fn health(&self) -> (Option<bool>, bool, Value) {
        let latest = self.latest();
        let valid = latest.as_ref().map(|c| c.report.valid);
        let failing = valid == Some(false) && self.settings.mode == IntegrityMode::Enforce;
        let summary = json!({
            "status": self.status_name(latest.as_deref()),
            "mode": self.settings.mode.as_str(),
            "model": latest.as_ref().map_or_else(|| self.model_label(), |c| c.report.model.clone()),
            "digest": latest.as_ref().and_then(|c| c.report.digest.clone()),
            "checked_at": latest.as_ref().map(|c| rfc3339(c.checked_ms)),
            "message": latest.as_ref().map(|c| c.report.message.clone()),
        });
        (valid, failing, summary)
    }

    /// The body of `GET`/`POST /v1/security/verify` for a given check (the latest by default).
    pub fn status_json(&self, check: Option<Arc<Check>>) -> Value {
        let latest = check.or_else(|| self.latest());
        let status = self.status_name(latest.as_deref());
        let running = self.progress.running.load(Ordering::Relaxed);
        let checking = running.then(|| {
            json!({
                "bytes_done": self.progress.done.load(Ordering::Relaxed),
                "bytes_total": self.progress.total.load(Ordering::Relaxed),
            })
        });
        let counters = self.counters();
        let mut body = json!({
            "object": "security.model_integrity",
            "status": status,
            "valid": latest.as_ref().is_some_and(|c| c.report.valid),
            "mode": self.settings.mode.as_str(),
            "serving": self.admit().is_ok(),
            "checking": checking,
            "interval_seconds": self.settings.interval.map(|d| d.as_secs_f64()),
            "checks_total": counters.checks_total,
            "failed_checks_total": counters.failed_checks_total,
        });
        match latest {
            Some(c) => {
                let r = &c.report;
                for (k, v) in [
                    ("message", json!(r.message)),
                    ("model", json!(r.model)),
                    ("digest", json!(r.digest)),
                    ("manifest_digest", json!(r.manifest_digest)),
                    ("files", json!(r.files)),
                    ("failures", json!(r.failures)),
                    ("checked_at", json!(rfc3339(c.checked_ms))),
                    ("duration_ms", json!(c.duration_ms)),
                    ("trigger", json!(c.trigger)),
                ] {
                    body[k] = v;
                }
            }
            None => {
                let message = if status == "disabled" {
                    "model integrity checking is not configured: set MODEL_EXPECTED_HASH, \
                     MODEL_SIGNATURE or MODEL_ALLOWLIST (or MODEL_VERIFY_ON_START=true); \
                     the admin can run a check now with POST /v1/security/verify"
                } else {
                    "the model has not been verified yet"
                };
                for (k, v) in [
                    ("message", json!(message)),
                    ("model", json!(self.model_label())),
                    ("digest", Value::Null),
                    ("manifest_digest", Value::Null),
                    ("files", json!(0)),
                    ("failures", json!([])),
                    ("checked_at", Value::Null),
                    ("duration_ms", Value::Null),
                    ("trigger", Value::Null),
                ] {
                    body[k] = v;
                }
            }
        }
        body
    }
}
