//! The probability policy and the divergence check on the response side, for whole
//! completions and for SSE chunks alike:
//! - logprobs are rounded to the tenant's decimals, `bytes` arrays dropped, `top_logprobs`
//!   lists cut to the applied maximum, and logprobs the client did not ask for removed;
//! - disclosed logprob values are counted and charged to the tenant's daily budget;
//! - a response that repeats one word for long and then drifts off (how memorised training
//!   data leaks) is cut at the point of divergence and recorded.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use secureinfer_guard::extraction::{
    BudgetCrossing, DivergenceFinding, DivergenceScanner, logprob_cost, output_divergence,
    round_logprob,
};
use serde_json::{Value, json};

use super::Extraction;
use crate::store::{SecurityEvent, Store, now_ms};
use crate::upstream::{ChunkStream, StreamItem, UpstreamError};

/// Most choices tracked for divergence in one stream (`n` is capped well below this).
const MAX_CHOICES: usize = 8;

/// Per-request response state. Settles (charges the budget, records events) exactly once:
/// explicitly with [`ResponseGuard::settle`], or when dropped, e.g. because the client went
/// away mid-stream.
pub struct ResponseGuard {
    pub(super) ext: Arc<Extraction>,
    pub(super) store: Arc<dyn Store>,
    pub(super) tenant_id: String,
    pub(super) request_id: String,
    pub(super) prompt_sha256: String,
    pub(super) prompt_chars: i64,
    /// `Some(decimals)` when the client asked for logprobs; `None` strips any the upstream sent.
    pub(super) round: Option<u8>,
    pub(super) top: u8,
    pub(super) budget_limit: u64,
    /// Cut diverging output (enforce mode) or only record it (monitor mode).
    pub(super) enforce: bool,
    pub(super) store_word: bool,
    pub(super) tokens: u64,
    pub(super) scanners: Vec<DivergenceScanner>,
    pub(super) finding: Option<(DivergenceFinding, bool)>,
    pub(super) settled: bool,
}

/// Rounds, trims and strips the logprobs of one choice; returns the token entries seen.
fn filter_logprobs(choice: &mut Value, round: Option<u8>, top: u8) -> u64 {
    let Some(obj) = choice.as_object_mut() else {
        return 0;
    };
    let Some(decimals) = round else {
        if obj.get("logprobs").is_some_and(|v| !v.is_null()) {
            obj.insert("logprobs".into(), Value::Null);
        }
        return 0;
    };
    let Some(lp) = obj.get_mut("logprobs").and_then(Value::as_object_mut) else {
        return 0;
    };
    let mut tokens = 0u64;
    for key in ["content", "refusal"] {
        let Some(entries) = lp.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for entry in entries.iter_mut() {
            tokens += 1;
            round_entry(entry, decimals);
            if let Some(alts) = entry.get_mut("top_logprobs").and_then(Value::as_array_mut) {
                alts.truncate(usize::from(top));
                for alt in alts.iter_mut() {
                    round_entry(alt, decimals);
                }
            }
        }
    }
    tokens
}

fn round_entry(entry: &mut Value, decimals: u8) {
    let Some(e) = entry.as_object_mut() else {
        return;
    };
    e.remove("bytes");
    if let Some(x) = e.get("logprob").and_then(Value::as_f64) {
        let r = round_logprob(x, decimals);
        // serde_json cannot hold -inf; such a value never arrives as a JSON number anyway.
        if let Some(n) = serde_json::Number::from_f64(r) {
            e.insert("logprob".into(), Value::Number(n));
        }
    }
}

fn choices(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v.get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn choice_index(choice: &Value) -> usize {
    choice
        .get("index")
        .and_then(Value::as_u64)
        .map_or(0, |i| i as usize)
}

impl ResponseGuard {
    /// A complete `chat.completion`: filter logprobs, check every choice for divergence.
    pub fn completion(&mut self, body: &mut Value) {
        let (round, top, enforce) = (self.round, self.top, self.enforce);
        let mut found = None;
        for choice in choices(body) {
            self.tokens += filter_logprobs(choice, round, top);
            let Some(text) = choice.pointer("/message/content").and_then(Value::as_str) else {
                continue;
            };
            let Some(f) = output_divergence(text) else {
                continue;
            };
            if enforce {
                let kept = text.get(..f.diverges_at).unwrap_or("").to_string();
                choice["message"]["content"] = Value::String(kept);
                choice["finish_reason"] = Value::from("content_filter");
                if let Some(lp) = choice.get_mut("logprobs").filter(|v| !v.is_null()) {
                    *lp = Value::Null;
                }
            }
            found.get_or_insert(f);
        }
        if let Some(f) = found {
            self.finding = Some((f, false));
        }
    }

    /// One stream chunk; returns false when the stream must stop after it (divergence found:
    /// the chunk's text is withheld and it closes the choice with `content_filter`).
    pub fn chunk(&mut self, chunk: &mut Value) -> bool {
        let (round, top, enforce) = (self.round, self.top, self.enforce);
        let mut stop = false;
        for choice in choices(chunk) {
            self.tokens += filter_logprobs(choice, round, top);
            let idx = choice_index(choice);
            let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) else {
                continue;
            };
            if idx >= MAX_CHOICES || self.finding.is_some() {
                continue;
            }
            if self.scanners.len() <= idx {
                self.scanners.resize_with(idx + 1, DivergenceScanner::new);
            }
            let Some(f) = self.scanners[idx].push(text).cloned() else {
                continue;
            };
            self.finding = Some((f, true));
            if enforce {
                choice["delta"] = json!({});
                choice["finish_reason"] = Value::from("content_filter");
                choice["logprobs"] = Value::Null;
                stop = true;
            }
        }
        !stop
    }

    /// The stream ended: a divergence completed by the last word is still recorded (there is
    /// nothing left to cut).
    fn end_of_stream(&mut self) {
        if self.finding.is_some() {
            return;
        }
        let found = self.scanners.iter_mut().find_map(|s| s.finish().cloned());
        if let Some(f) = found {
            self.finding = Some((f, true));
        }
    }

    /// Charges the budget and records the events this response earned. Idempotent.
    pub async fn settle(mut self) {
        if let Some(work) = self.take_work() {
            work.run().await;
        }
    }

    fn take_work(&mut self) -> Option<Settle> {
        if self.settled {
            return None;
        }
        self.settled = true;
        let base = EventBase {
            tenant_id: self.tenant_id.clone(),
            request_id: self.request_id.clone(),
            prompt_sha256: self.prompt_sha256.clone(),
            prompt_chars: self.prompt_chars,
            enforce: self.enforce,
        };
        let mut events = Vec::new();
        if let Some((f, streamed)) = self.finding.take() {
            events.push(base.divergence(&f, streamed, self.store_word));
        }
        let cost =
            (self.round.is_some() && self.tokens > 0).then(|| logprob_cost(self.tokens, self.top));
        Some(Settle {
            ext: self.ext.clone(),
            store: self.store.clone(),
            base,
            events,
            cost,
            limit: self.budget_limit,
        })
    }
}

/// What a response leaves to do once it is over: charge the budget, store the events.
struct Settle {
    ext: Arc<Extraction>,
    store: Arc<dyn Store>,
    base: EventBase,
    events: Vec<SecurityEvent>,
    cost: Option<u64>,
    limit: u64,
}

impl Settle {
    async fn run(mut self) {
        if let Some(cost) = self.cost {
            let report = self
                .ext
                .charge_budget(&self.base.tenant_id, cost, self.limit)
                .await;
            if let Some(crossed) = report.crossed {
                let (decision, score, level) = match crossed {
                    BudgetCrossing::Half => ("warn", 50, "half"),
                    BudgetCrossing::Full => ("block", 100, "full"),
                };
                self.events.push(self.base.event(
                    "logprob_budget",
                    score,
                    decision,
                    json!({"crossed": level, "used": report.used, "limit": report.limit}),
                ));
            }
        }
        write_events(self.store, self.events).await;
    }
}

struct EventBase {
    tenant_id: String,
    request_id: String,
    prompt_sha256: String,
    prompt_chars: i64,
    enforce: bool,
}

impl EventBase {
    fn divergence(&self, f: &DivergenceFinding, streamed: bool, store_word: bool) -> SecurityEvent {
        let mut detail = json!({
            "repeats": f.repeats,
            "diverges_at": f.diverges_at,
            "tail_words": f.tail_words,
            "stream": streamed,
            "cut": self.enforce,
        });
        // The word comes from the model's output; keep it only where prompts may be kept.
        if store_word {
            detail["word"] = Value::String(f.word.clone());
        }
        let decision = if self.enforce { "block" } else { "warn" };
        self.event("output_divergence", 90, decision, detail)
    }

    fn event(&self, kind: &str, score: u8, decision: &str, detail: Value) -> SecurityEvent {
        SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: now_ms(),
            tenant_id: self.tenant_id.clone(),
            request_id: self.request_id.clone(),
            event_type: kind.to_string(),
            score,
            reasons: vec![kind.to_string()],
            decision: decision.to_string(),
            enforced: self.enforce,
            prompt_sha256: self.prompt_sha256.clone(),
            prompt_chars: self.prompt_chars,
            prompt: None,
            detail,
        }
    }
}

async fn write_events(store: Arc<dyn Store>, events: Vec<SecurityEvent>) {
    if events.is_empty() {
        return;
    }
    for e in events {
        if let Err(err) = store.insert_event(&e).await {
            tracing::error!(error = %err, event_type = %e.event_type, "could not record a security event");
        } else {
            tracing::warn!(
                request_id = %e.request_id,
                tenant = %e.tenant_id,
                event_type = %e.event_type,
                decision = %e.decision,
                "extraction defence"
            );
        }
    }
}

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        if let Some(work) = self.take_work()
            && (work.cost.is_some() || !work.events.is_empty())
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(work.run());
        }
    }
}

/// Wraps an upstream stream so every chunk passes through the guard. After the last chunk
/// (or a chunk that closed a diverging choice) the guard settles *before* the stream reports
/// its end, so the relay sends `[DONE]` only once the events are stored.
pub fn guard_stream(inner: ChunkStream, guard: ResponseGuard) -> ChunkStream {
    GuardedStream {
        inner,
        guard: Some(guard),
        settling: None,
        after_settle: None,
        finished: false,
    }
    .boxed()
}

type Item = Result<StreamItem, UpstreamError>;

struct GuardedStream {
    inner: ChunkStream,
    guard: Option<ResponseGuard>,
    settling: Option<BoxFuture<'static, ()>>,
    /// What to report once settled: the upstream's error, or the end.
    after_settle: Option<Item>,
    finished: bool,
}

impl GuardedStream {
    fn begin_settle(&mut self, then: Option<Item>) {
        if let Some(g) = self.guard.take() {
            self.settling = Some(g.settle().boxed());
        }
        self.after_settle = then;
    }
}

impl Stream for GuardedStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        loop {
            if let Some(fut) = self.settling.as_mut() {
                if fut.poll_unpin(cx).is_pending() {
                    return Poll::Pending;
                }
                self.settling = None;
                self.finished = true;
                return Poll::Ready(self.after_settle.take());
            }
            if self.finished {
                return Poll::Ready(None);
            }
            let next = match self.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            match next {
                Some(Ok(mut item)) => {
                    let go_on = self.guard.as_mut().is_none_or(|g| g.chunk(&mut item.chunk));
                    if !go_on {
                        self.begin_settle(None);
                    }
                    return Poll::Ready(Some(Ok(item)));
                }
                other => {
                    if let Some(g) = self.guard.as_mut() {
                        g.end_of_stream();
                    }
                    self.begin_settle(other);
                    self.finished = self.settling.is_none();
                    if self.finished {
                        return Poll::Ready(self.after_settle.take());
                    }
                }
            }
        }
    }
}
