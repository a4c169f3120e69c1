//! Prefix-cache probe detection.
//!
//! A model server that shares its KV/prefix cache between users answers faster when a prompt
//! starts with text it has already cached. An attacker can learn another user's prompt one
//! piece at a time: send a guess with `max_tokens` 1 or 2 (only the time to the first token
//! matters), keep the guess that came back fast, extend it by a few tokens, repeat. Every
//! probe therefore *extends an earlier probe of the same sender by a few tokens* and asks for
//! almost no output. This window remembers a tenant's recent short-output prompts as
//! (length, hash) pairs — never the text — and counts how many new prompts extend one of them.
//!
//! Cost: one pass over the prompt plus a comparison per remembered prompt, so it stays linear
//! in the prompt length; memory is bounded by [`PrefixProbeConfig::remember`].

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixProbeConfig {
    /// Requests asking for at most this many output tokens are probe candidates.
    pub max_tokens: u32,
    /// An extension of 1..=this many bytes counts as "a few tokens" (about 4 bytes a token).
    pub max_extension_bytes: usize,
    /// How many recent candidate prompts are remembered per tenant.
    pub remember: usize,
    /// Extensions are counted over this window, in milliseconds.
    pub window_ms: u64,
    /// This many extensions inside the window flag the tenant.
    pub flag_after: usize,
}

impl Default for PrefixProbeConfig {
    fn default() -> Self {
        PrefixProbeConfig {
            max_tokens: 2,
            max_extension_bytes: 64,
            remember: 32,
            window_ms: 10 * 60 * 1000,
            flag_after: 5,
        }
    }
}

/// What one request looked like to the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeObservation {
    /// The request asked for at most `max_tokens` output tokens.
    pub candidate: bool,
    /// Its prompt extends a remembered prompt by a few bytes.
    pub extends_previous: bool,
    /// Extensions seen in the window, this one included.
    pub extensions_in_window: usize,
    /// `extensions_in_window` reached `flag_after`.
    pub flagged: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    len: usize,
    hash: u64,
}

/// One tenant's recent short-output prompts.
#[derive(Debug, Clone, Default)]
pub struct PrefixProbeWindow {
    seen: VecDeque<Seen>,
    extensions: VecDeque<u64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl PrefixProbeWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request. `prompt` is the whole prompt as the model would read it (all
    /// messages, in order); `now_ms` is the caller's clock.
    pub fn observe(
        &mut self,
        prompt: &str,
        max_tokens: u32,
        now_ms: u64,
        cfg: &PrefixProbeConfig,
    ) -> ProbeObservation {
        let cutoff = now_ms.saturating_sub(cfg.window_ms);
        while self.extensions.front().is_some_and(|&t| t < cutoff) {
            self.extensions.pop_front();
        }
        if max_tokens > cfg.max_tokens {
            return ProbeObservation {
                extensions_in_window: self.extensions.len(),
                ..ProbeObservation::default()
            };
        }
        let bytes = prompt.as_bytes();
        let n = bytes.len();
        // Hashes of the prefixes that could be "n minus a few bytes" long.
        let lo = n.saturating_sub(cfg.max_extension_bytes);
        let mut tail_hashes = Vec::with_capacity(n - lo);
        let mut h = FNV_OFFSET;
        for (i, &b) in bytes.iter().enumerate() {
            if i >= lo {
                // The hash of bytes[..i].
                tail_hashes.push(h);
            }
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        let full = h;
        let extends = self.seen.iter().any(|s| {
            s.len >= lo && s.len < n && s.len > 0 && tail_hashes.get(s.len - lo) == Some(&s.hash)
        });
        if extends {
            self.extensions.push_back(now_ms);
            while self.extensions.len() > cfg.remember.max(cfg.flag_after) {
                self.extensions.pop_front();
            }
        }
        if !self.seen.iter().any(|s| s.len == n && s.hash == full) {
            self.seen.push_back(Seen { len: n, hash: full });
            while self.seen.len() > cfg.remember {
                self.seen.pop_front();
            }
        }
        let count = self.extensions.len();
        ProbeObservation {
            candidate: true,
            extends_previous: extends,
            extensions_in_window: count,
            flagged: extends && count >= cfg.flag_after,
        }
    }

    /// True when nothing is remembered any more (the caller may drop the window).
    pub fn is_idle(&self, now_ms: u64, cfg: &PrefixProbeConfig) -> bool {
        let cutoff = now_ms.saturating_sub(cfg.window_ms);
        self.extensions.iter().all(|&t| t < cutoff)
    }
}
