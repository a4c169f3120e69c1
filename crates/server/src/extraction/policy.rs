//! The probability policy on the request side: which `logprobs` / `logit_bias` requests are
//! refused (400), which values are lowered before the request is forwarded, and the per-tenant
//! overrides an admin can set. The rules themselves live in the detection core
//! (`extraction::logprobs::check_request`); this module maps a JSON request onto them.

use secureinfer_guard::extraction::{LogprobPolicy, ProbRequestView, RequestAdjustments};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::openai::ValidatedChat;

/// Error code of a request the probability policy refuses.
pub const POLICY_CODE: &str = "probability_policy";

/// A tenant's overrides of the gateway's probability policy. Absent fields keep the
/// gateway's value (`LOGIT_BIAS_*`, `LOGPROBS_*`, `LOGPROB_DAILY_BUDGET`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantProbPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias_allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias_allow_positive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias_max_entries: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs_max_top: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs_round_decimals: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs_max_n: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprob_daily_budget: Option<u64>,
}

impl TenantProbPolicy {
    pub fn is_empty(&self) -> bool {
        self == &TenantProbPolicy::default()
    }

    /// The same ranges as the environment variables; `Err((message, field))`.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        let check = |v: Option<u64>, lo: u64, hi: u64, field: &'static str| match v {
            Some(v) if !(lo..=hi).contains(&v) => {
                Err((format!("{field} must be between {lo} and {hi}"), field))
            }
            _ => Ok(()),
        };
        check(
            self.logit_bias_max_entries.map(|v| v as u64),
            1,
            300,
            "logit_bias_max_entries",
        )?;
        check(
            self.logprobs_max_top.map(u64::from),
            0,
            20,
            "logprobs_max_top",
        )?;
        check(
            self.logprobs_round_decimals.map(u64::from),
            0,
            6,
            "logprobs_round_decimals",
        )?;
        check(self.logprobs_max_n.map(u64::from), 1, 8, "logprobs_max_n")?;
        check(
            self.logprob_daily_budget,
            0,
            u64::MAX / 2,
            "logprob_daily_budget",
        )
    }

    /// The gateway's policy with this tenant's overrides applied.
    pub fn apply(&self, base: &LogprobPolicy) -> LogprobPolicy {
        LogprobPolicy {
            allow_logit_bias: self.logit_bias_allowed.unwrap_or(base.allow_logit_bias),
            allow_positive_bias: self
                .logit_bias_allow_positive
                .unwrap_or(base.allow_positive_bias),
            max_logit_bias_entries: self
                .logit_bias_max_entries
                .unwrap_or(base.max_logit_bias_entries),
            max_top_logprobs: self.logprobs_max_top.unwrap_or(base.max_top_logprobs),
            round_decimals: self.logprobs_round_decimals.unwrap_or(base.round_decimals),
            max_n: self.logprobs_max_n.unwrap_or(base.max_n),
            daily_logprob_budget: self
                .logprob_daily_budget
                .unwrap_or(base.daily_logprob_budget),
        }
    }
}

/// What the policy decided for one request, carried to the response side.
#[derive(Debug, Clone)]
pub struct ProbPlan {
    pub policy: LogprobPolicy,
    pub adjustments: RequestAdjustments,
    /// The client asked for logprobs (after clamping): they are rounded and charged.
    pub wants_logprobs: bool,
    /// `top_logprobs` as forwarded, for the budget cost.
    pub top_logprobs: u8,
    /// Token ids of an accepted `logit_bias` (for the sweep signal).
    pub logit_bias_ids: Vec<String>,
}

/// A field counts as sent when it is present and not `null`, `false` or `0`.
fn present(raw: &Map<String, Value>, key: &str) -> bool {
    match raw.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

fn refused(message: String, param: &str) -> ApiError {
    ApiError::BadRequest {
        message,
        param: Some(param.to_string()),
        code: POLICY_CODE,
    }
}

/// Checks the request against `policy`, refuses what leaks too much and lowers what can be
/// served more coarsely, in both the typed view (read by the Ollama and mock upstreams) and
/// the raw body (forwarded to OpenAI-compatible servers).
pub fn apply(policy: LogprobPolicy, chat: &mut ValidatedChat) -> Result<ProbPlan, ApiError> {
    let bias: Vec<(&str, f64)> = match chat.raw.get("logit_bias") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_f64().unwrap_or(f64::NAN)))
            .collect(),
        Some(_) => {
            return Err(refused(
                "logit_bias must be an object of token id to bias".into(),
                "logit_bias",
            ));
        }
    };
    let view = ProbRequestView {
        logit_bias: &bias,
        logprobs: chat.typed.logprobs == Some(true),
        top_logprobs: chat.typed.top_logprobs,
        n: chat.typed.n.map(i64::from),
        echo: present(&chat.raw, "echo"),
        prompt_logprobs: present(&chat.raw, "prompt_logprobs"),
        allowed_token_ids: present(&chat.raw, "allowed_token_ids"),
    };
    let adjustments = secureinfer_guard::extraction::check_request(&policy, &view)
        .map_err(|v| refused(v.message(), v.param()))?;
    let logit_bias_ids = bias.iter().map(|(k, _)| (*k).to_string()).collect();
    if let Some(c) = adjustments.top_logprobs {
        chat.typed.top_logprobs = Some(c.applied);
        chat.raw
            .insert("top_logprobs".into(), Value::from(c.applied));
    }
    if let Some(c) = adjustments.n {
        chat.typed.n = u32::try_from(c.applied).ok();
        chat.raw.insert("n".into(), Value::from(c.applied));
    }
    let wants_logprobs = adjustments.round_decimals.is_some();
    let top_logprobs = chat
        .typed
        .top_logprobs
        .unwrap_or(0)
        .clamp(0, i64::from(policy.max_top_logprobs)) as u8;
    Ok(ProbPlan {
        policy,
        adjustments,
        wants_logprobs,
        top_logprobs,
        logit_bias_ids,
    })
}
