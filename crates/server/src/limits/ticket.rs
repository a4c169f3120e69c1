//! A chat request's admission, held until the request ends. Whatever way it ends — answered,
//! refused by the gate, upstream error, timeout, client gone mid-stream, or a handler future
//! dropped by the server — the ticket settles exactly once: it releases the concurrency slot
//! and reconciles the token reservation with what the request actually used.
//!
//! The chat handler touches it in four places: `admit_chat` hands it out, `mark_sent` says the
//! model may now spend tokens, and then either `watch` (streams: the ticket rides along with the
//! upstream stream and settles when it ends or is dropped) or `finish_with` (complete answers).
//! Settling before the response is released means a client that sends its next request right
//! after reading this one's answer finds its slot free again.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::DropGuard;

use super::Limiter;
use super::backend::{Settlement, SlotRelease, TokenAdjust};
use super::gcra::Quota;
use super::tokens;
use crate::openai::Usage;
use crate::upstream::{ChunkStream, Completion, StreamItem};

/// Completion text kept to count the tokens of a stream that ends without a usage report.
const MAX_OBSERVED_BYTES: usize = 256 * 1024;

/// Which backend admitted the request, and so which one settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    Local,
    Shared,
    /// Nothing to settle: no limit applied, or Redis was down under the `open` policy.
    Unlimited,
}

#[derive(Debug, Clone)]
pub(super) struct Reservation {
    pub key: String,
    pub quota: Quota,
    pub reserved: u64,
    pub prompt_estimate: u64,
}

pub struct Ticket {
    limiter: Arc<Limiter>,
    via: Via,
    group: String,
    tokens: Option<Reservation>,
    slot: Option<SlotRelease>,
    sent: bool,
    usage: Option<Usage>,
    observed: String,
    observed_extra_bytes: usize,
    settled: bool,
    /// Stops the lease-renewal task of a Redis slot when the ticket goes.
    _lease: Option<DropGuard>,
}

impl Ticket {
    pub(super) fn new(
        limiter: Arc<Limiter>,
        via: Via,
        group: String,
        tokens: Option<Reservation>,
        slot: Option<SlotRelease>,
        lease: Option<DropGuard>,
    ) -> Ticket {
        Ticket {
            limiter,
            via,
            group,
            tokens,
            slot,
            sent: false,
            usage: None,
            observed: String::new(),
            observed_extra_bytes: 0,
            settled: false,
            _lease: lease,
        }
    }

    /// From here on the upstream may spend tokens: if the request now ends without a usage
    /// report, it is charged its prompt and whatever completion was seen. Before this (a request
    /// refused by the gate) the whole reservation is given back.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    /// Wraps the upstream stream: watches usage and text as they pass, and settles when the
    /// stream ends (before the caller sees the end) or is dropped.
    pub fn watch(mut self, upstream: ChunkStream) -> ChunkStream {
        self.sent = true;
        futures::stream::unfold(Some((upstream, self)), |state| async move {
            let (mut upstream, mut ticket) = state?;
            match upstream.next().await {
                Some(item) => {
                    if let Ok(item) = &item {
                        ticket.observe(item);
                    }
                    Some((item, Some((upstream, ticket))))
                }
                None => {
                    ticket.finish().await;
                    None
                }
            }
        })
        .boxed()
    }

    /// Settles a complete (non-streamed) answer.
    pub async fn finish_with(mut self, completion: &Completion) {
        self.sent = true;
        self.usage = completion.usage;
        if self.usage.is_none() {
            let choices = completion.body.get("choices").and_then(Value::as_array);
            for choice in choices.into_iter().flatten() {
                if let Some(text) = choice.pointer("/message/content").and_then(Value::as_str) {
                    self.keep(text);
                }
            }
        }
        self.finish().await;
    }

    fn observe(&mut self, item: &StreamItem) {
        if item.usage.is_some() {
            self.usage = item.usage;
            return;
        }
        if self.tokens.is_none() || self.usage.is_some() {
            return;
        }
        let choices = item.chunk.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                self.keep(text);
            }
        }
    }

    fn keep(&mut self, text: &str) {
        if self.observed.len() + text.len() <= MAX_OBSERVED_BYTES {
            self.observed.push_str(text);
        } else {
            self.observed_extra_bytes += text.len();
        }
    }

    /// Tokens the request used: the upstream's report, else our count of what we saw.
    fn used(&self, reservation: &Reservation) -> u64 {
        if !self.sent {
            return 0;
        }
        if let Some(u) = self.usage {
            return u.total_tokens.max(u.prompt_tokens + u.completion_tokens);
        }
        // About 4 bytes per token for text past the kept part.
        let seen = tokens::text_tokens(&self.observed) + (self.observed_extra_bytes as u64) / 4;
        reservation.prompt_estimate + seen
    }

    fn settlement(&mut self) -> Option<Settlement> {
        if self.settled || self.via == Via::Unlimited {
            return None;
        }
        self.settled = true;
        let tokens = self.tokens.as_ref().and_then(|r| {
            let delta = self.used(r) as i64 - r.reserved as i64;
            (delta != 0).then(|| TokenAdjust {
                key: r.key.clone(),
                quota: r.quota,
                delta,
            })
        });
        let release = self.slot.take();
        if tokens.is_none() && release.is_none() {
            return None;
        }
        Some(Settlement {
            group: self.group.clone(),
            tokens,
            release,
        })
    }

    /// Settles now, waiting for the backend.
    pub async fn finish(mut self) {
        if let Some(s) = self.settlement() {
            self.limiter.settle(self.via, s).await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(s) = self.settlement() else { return };
        match self.via {
            Via::Local => self.limiter.local.settle_now(&s),
            Via::Shared => {
                // Drop cannot wait for Redis: settle in the background.
                let limiter = self.limiter.clone();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { limiter.settle(Via::Shared, s).await });
                }
            }
            Via::Unlimited => {}
        }
    }
}
