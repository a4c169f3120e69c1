//! Probability policy: which `logprobs` / `logit_bias` requests are allowed, how returned
//! values are coarsened, and how much probability information a tenant may take per day.
//!
//! The shell parses the JSON body into [`ProbRequestView`], applies [`RequestAdjustments`] to
//! the upstream request, rounds every returned logprob with [`round_logprob`] and drops the
//! per-token `bytes` arrays (they add nothing a client needs and make rounding moot for
//! byte-level reconstruction).

use std::collections::VecDeque;

use serde::Serialize;

use super::hashing::{Fnv, PreHashedMap};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogprobPolicy {
    /// `LOGIT_BIAS_ALLOWED` (default false).
    pub allow_logit_bias: bool,
    /// `LOGIT_BIAS_MAX_ENTRIES` (default 20).
    pub max_logit_bias_entries: usize,
    /// `LOGIT_BIAS_ALLOW_POSITIVE` (default false).
    pub allow_positive_bias: bool,
    /// `LOGPROBS_MAX_TOP` (default 5; OpenAI's own maximum is 20).
    pub max_top_logprobs: u8,
    /// `LOGPROBS_ROUND_DECIMALS` (default 2).
    pub round_decimals: u8,
    /// `LOGPROBS_MAX_N` (default 4).
    pub max_n: u8,
    /// `LOGPROB_DAILY_BUDGET`, in [`logprob_cost`] units (default 1,000,000).
    pub daily_logprob_budget: u64,
}

impl Default for LogprobPolicy {
    fn default() -> Self {
        Self {
            allow_logit_bias: false,
            max_logit_bias_entries: 20,
            allow_positive_bias: false,
            max_top_logprobs: 5,
            round_decimals: 2,
            max_n: 4,
            daily_logprob_budget: 1_000_000,
        }
    }
}

/// The probability-related parameters of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbRequestView<'a> {
    /// `logit_bias` entries: token id (as sent, a string key) and bias.
    pub logit_bias: &'a [(&'a str, f64)],
    pub logprobs: bool,
    /// `top_logprobs`; vLLM accepts -1 for "the whole vocabulary".
    pub top_logprobs: Option<i64>,
    pub n: Option<i64>,
    /// Legacy completions `echo`.
    pub echo: bool,
    /// vLLM `prompt_logprobs` present.
    pub prompt_logprobs: bool,
    /// vLLM `allowed_token_ids` present.
    pub allowed_token_ids: bool,
}

/// A value the policy lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Clamped {
    pub requested: i64,
    pub applied: i64,
}

/// What the shell must change before forwarding, and how to post-process the response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestAdjustments {
    pub top_logprobs: Option<Clamped>,
    pub n: Option<Clamped>,
    /// `Some(decimals)` when the response carries logprobs that must be rounded (and their
    /// `bytes` dropped).
    pub round_decimals: Option<u8>,
}

/// Why a request was refused; becomes a 400 whose `param` is [`PolicyViolation::param`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyViolation {
    LogitBiasNotAllowed,
    LogitBiasWithLogprobs,
    TooManyLogitBiasEntries { count: usize, max: usize },
    PositiveLogitBias { token: String },
    InvalidLogitBias { token: String },
    AllTopLogprobs,
    InvalidTopLogprobs { value: i64 },
    PromptLogprobs,
    EchoWithLogprobs,
    AllowedTokenIds,
    InvalidN { value: i64 },
}

impl PolicyViolation {
    /// The request field at fault (OpenAI error `param`).
    pub fn param(&self) -> &'static str {
        match self {
            Self::LogitBiasNotAllowed
            | Self::LogitBiasWithLogprobs
            | Self::TooManyLogitBiasEntries { .. }
            | Self::PositiveLogitBias { .. }
            | Self::InvalidLogitBias { .. } => "logit_bias",
            Self::AllTopLogprobs | Self::InvalidTopLogprobs { .. } => "top_logprobs",
            Self::PromptLogprobs => "prompt_logprobs",
            Self::EchoWithLogprobs => "echo",
            Self::AllowedTokenIds => "allowed_token_ids",
            Self::InvalidN { .. } => "n",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::LogitBiasNotAllowed => "logit_bias is disabled on this gateway".into(),
            Self::LogitBiasWithLogprobs => {
                "logit_bias cannot be combined with logprobs or top_logprobs".into()
            }
            Self::TooManyLogitBiasEntries { count, max } => {
                format!("logit_bias has {count} entries; at most {max} are allowed")
            }
            Self::PositiveLogitBias { token } => format!(
                "logit_bias for token {token} is positive; only negative biases are allowed"
            ),
            Self::InvalidLogitBias { token } => format!(
                "logit_bias entry {token} needs an integer token id and a finite bias in [-100, 100]"
            ),
            Self::AllTopLogprobs => "top_logprobs = -1 (full vocabulary) is not allowed".into(),
            Self::InvalidTopLogprobs { value } => format!("top_logprobs must be >= 0, got {value}"),
            Self::PromptLogprobs => "prompt_logprobs is not allowed".into(),
            Self::EchoWithLogprobs => "echo cannot be combined with logprobs".into(),
            Self::AllowedTokenIds => "allowed_token_ids is not allowed".into(),
            Self::InvalidN { value } => format!("n must be >= 1, got {value}"),
        }
    }
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PolicyViolation {}

/// Checks one request against the policy: rejects what leaks too much, clamps what can be
/// served more coarsely.
pub fn check_request(
    p: &LogprobPolicy,
    r: &ProbRequestView<'_>,
) -> Result<RequestAdjustments, PolicyViolation> {
    if r.prompt_logprobs {
        return Err(PolicyViolation::PromptLogprobs);
    }
    if r.allowed_token_ids {
        return Err(PolicyViolation::AllowedTokenIds);
    }
    let wants_logprobs = r.logprobs || r.top_logprobs.is_some_and(|t| t != 0);
    if r.echo && wants_logprobs {
        return Err(PolicyViolation::EchoWithLogprobs);
    }
    if !r.logit_bias.is_empty() {
        if !p.allow_logit_bias {
            return Err(PolicyViolation::LogitBiasNotAllowed);
        }
        if wants_logprobs {
            return Err(PolicyViolation::LogitBiasWithLogprobs);
        }
        if r.logit_bias.len() > p.max_logit_bias_entries {
            return Err(PolicyViolation::TooManyLogitBiasEntries {
                count: r.logit_bias.len(),
                max: p.max_logit_bias_entries,
            });
        }
        for (token, bias) in r.logit_bias {
            if token.parse::<u32>().is_err() || !bias.is_finite() || bias.abs() > 100.0 {
                return Err(PolicyViolation::InvalidLogitBias {
                    token: (*token).to_owned(),
                });
            }
            if *bias > 0.0 && !p.allow_positive_bias {
                return Err(PolicyViolation::PositiveLogitBias {
                    token: (*token).to_owned(),
                });
            }
        }
    }
    let mut adj = RequestAdjustments::default();
    match r.top_logprobs {
        Some(-1) => return Err(PolicyViolation::AllTopLogprobs),
        Some(v) if v < 0 => return Err(PolicyViolation::InvalidTopLogprobs { value: v }),
        Some(v) if v > i64::from(p.max_top_logprobs) => {
            adj.top_logprobs = Some(Clamped {
                requested: v,
                applied: i64::from(p.max_top_logprobs),
            });
        }
        _ => {}
    }
    match r.n {
        Some(v) if v < 1 => return Err(PolicyViolation::InvalidN { value: v }),
        Some(v) if v > i64::from(p.max_n) => {
            adj.n = Some(Clamped {
                requested: v,
                applied: i64::from(p.max_n),
            })
        }
        _ => {}
    }
    if wants_logprobs {
        adj.round_decimals = Some(p.round_decimals);
    }
    Ok(adj)
}

/// Rounds a logprob to `decimals` places (capped at 15). Non-finite values (`-inf` for
/// impossible tokens) pass through unchanged.
pub fn round_logprob(x: f64, decimals: u8) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(i32::from(decimals.min(15)));
    let r = (x * scale).round() / scale;
    // A logprob is never positive; rounding must not turn -0.004 into a "probability > 1".
    if r == 0.0 { 0.0 } else { r }
}

/// Probability values a response discloses: one chosen-token logprob plus `top_logprobs`
/// alternatives per generated token.
pub fn logprob_cost(tokens: u64, top_logprobs: u8) -> u64 {
    tokens.saturating_mul(1 + u64::from(top_logprobs))
}

/// Budget thresholds reported once per day when first crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetCrossing {
    Half,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetReport {
    pub used: u64,
    pub limit: u64,
    /// Set on the charge that first crossed 50% or 100% today (the higher one if both).
    pub crossed: Option<BudgetCrossing>,
    /// Used >= limit: further logprob requests should be refused until the next UTC day.
    pub exhausted: bool,
}

/// One tenant's logprob spending for the current UTC day. In Redis: one counter per
/// `(tenant, day)` with a two-day TTL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogprobBudget {
    day: u64,
    used: u64,
}

impl LogprobBudget {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn charge(&mut self, now_ms: u64, cost: u64, limit: u64) -> BudgetReport {
        let day = now_ms / 86_400_000;
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
        let before = self.used;
        self.used = self.used.saturating_add(cost);
        Self::report(before, self.used, limit)
    }

    /// The report for a day's total moving from `before` to `used`; for counters kept
    /// elsewhere (a shared store) that apply the same thresholds.
    pub fn report(before: u64, used: u64, limit: u64) -> BudgetReport {
        let half = limit / 2;
        let crossed = if before < limit && used >= limit {
            Some(BudgetCrossing::Full)
        } else if before < half && used >= half {
            Some(BudgetCrossing::Half)
        } else {
            None
        };
        BudgetReport {
            used,
            limit,
            crossed,
            exhausted: used >= limit,
        }
    }
}

/// Distinct biased token ids seen in the window, capped. A logit-bias sweep (biasing one token
/// after another to read its logit back through the sampled output) touches hundreds of ids;
/// ordinary use repeats a few.
#[derive(Debug, Clone)]
pub struct LogitBiasSweep {
    cap: usize,
    last_seen: PreHashedMap<u64>,
    log: VecDeque<(u64, u64)>,
}

impl LogitBiasSweep {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            last_seen: PreHashedMap::default(),
            log: VecDeque::new(),
        }
    }

    pub fn record<'a>(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        ids: impl IntoIterator<Item = &'a str>,
    ) {
        self.expire(now_ms.saturating_sub(window_ms));
        for id in ids {
            let mut h = Fnv::new();
            h.bytes(id.trim().as_bytes());
            let key = h.finish();
            if !self.last_seen.contains_key(&key) && self.last_seen.len() >= self.cap {
                continue;
            }
            self.last_seen.insert(key, now_ms);
            self.log.push_back((now_ms, key));
            if self.log.len() > self.cap.saturating_mul(4) {
                self.pop();
            }
        }
    }

    pub fn distinct(&mut self, now_ms: u64, window_ms: u64) -> usize {
        self.expire(now_ms.saturating_sub(window_ms));
        self.last_seen.len()
    }

    fn expire(&mut self, cutoff: u64) {
        while self.log.front().is_some_and(|(ts, _)| *ts < cutoff) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some((ts, key)) = self.log.pop_front()
            && self.last_seen.get(&key) == Some(&ts)
        {
            self.last_seen.remove(&key);
        }
    }
}
