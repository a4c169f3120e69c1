//! Output-guard settings (`OUTPUT_*`): which categories are redacted, blocked or only logged,
//! and whether canaries and system-prompt overlap are used. A tenant may override the same
//! fields (see `output_filter::tenant`), so the merge lives here next to the parsing.

use secureinfer_guard::output::{Action, Category, CategoryGroup, OutputPolicy};
use serde::{Deserialize, Serialize};

use super::parse::{ConfigError, choice, flag, get, invalid, number};

/// The gateway-wide output-guard configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSettings {
    pub enabled: bool,
    pub canary: bool,
    pub canary_position: CanaryPosition,
    /// 0 disables the overlap check (the system prompt is not kept for the response).
    pub overlap_words: usize,
    pub leak: Action,
    /// `None`: the core's defaults (redact, private keys block).
    pub secret: Option<Action>,
    pub pii: Action,
    pub ip: Action,
    pub overrides: Vec<(Category, Action)>,
    /// The strongest action applied to findings in user messages before they go upstream.
    pub prompt_scan: Action,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            enabled: true,
            canary: true,
            canary_position: CanaryPosition::Start,
            overlap_words: 12,
            leak: Action::Block,
            secret: None,
            pii: Action::Redact,
            ip: Action::Log,
            overrides: Vec::new(),
            prompt_scan: Action::Off,
        }
    }
}

/// Where the canary goes in the system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryPosition {
    /// Before the prompt: a streamed recital is stopped before any of the prompt is sent.
    Start,
    /// After the prompt: the prompt's prefix stays cacheable by the upstream.
    End,
}

impl CanaryPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPosition::Start => "start",
            CanaryPosition::End => "end",
        }
    }
}

/// A tenant's overrides: every field that is set replaces the gateway's value; `overrides`
/// are applied after the gateway's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOutputOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_position: Option<CanaryPosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_overlap_words: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_action: Option<String>,
    /// `{"EMAIL": "log", "PRIVATE_KEY": "redact"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_prompts: Option<String>,
}

/// Largest accepted overlap threshold: longer runs than this are never needed to be sure.
pub const MAX_OVERLAP_WORDS: usize = 1000;

const ACTIONS: &str = "one of redact, block, log, off";

fn action(var: &'static str, raw: &str) -> Result<Action, ConfigError> {
    raw.parse::<Action>()
        .map_err(|_| invalid(var, raw, ACTIONS))
}

/// `LABEL=action,LABEL=action`; labels are the redaction labels (`EMAIL`, `AWS_KEY`, …).
pub fn parse_overrides(
    var: &'static str,
    raw: &str,
) -> Result<Vec<(Category, Action)>, ConfigError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((label, act)) = item.split_once('=') else {
            return Err(invalid(var, raw, "LABEL=action pairs separated by commas"));
        };
        let category = label
            .parse::<Category>()
            .map_err(|e| invalid(var, raw, format!("labels from {}", e.accepted)))?;
        out.push((category, action(var, act)?));
    }
    Ok(out)
}

pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<OutputSettings, ConfigError> {
    let d = OutputSettings::default();
    let act = |var: &'static str, default: Action| -> Result<Action, ConfigError> {
        get(lookup, var).map_or(Ok(default), |raw| action(var, &raw))
    };
    Ok(OutputSettings {
        enabled: flag(lookup, "OUTPUT_GUARD_ENABLED", d.enabled)?,
        canary: flag(lookup, "OUTPUT_CANARY_ENABLED", d.canary)?,
        canary_position: choice(
            lookup,
            "OUTPUT_CANARY_POSITION",
            &[
                ("start", CanaryPosition::Start),
                ("end", CanaryPosition::End),
            ],
            d.canary_position,
        )?,
        overlap_words: number(
            lookup,
            "OUTPUT_PROMPT_OVERLAP_WORDS",
            d.overlap_words,
            0,
            MAX_OVERLAP_WORDS,
        )?,
        leak: act("OUTPUT_LEAK_ACTION", d.leak)?,
        secret: get(lookup, "OUTPUT_SECRET_ACTION")
            .map(|raw| action("OUTPUT_SECRET_ACTION", &raw))
            .transpose()?,
        pii: act("OUTPUT_PII_ACTION", d.pii)?,
        ip: act("OUTPUT_IP_ACTION", d.ip)?,
        overrides: match get(lookup, "OUTPUT_ACTION_OVERRIDES") {
            Some(raw) => parse_overrides("OUTPUT_ACTION_OVERRIDES", &raw)?,
            None => Vec::new(),
        },
        prompt_scan: act("OUTPUT_SCAN_PROMPTS", d.prompt_scan)?,
    })
}

impl OutputSettings {
    /// The core policy for answers.
    pub fn policy(&self) -> OutputPolicy {
        let mut p = OutputPolicy::default();
        p.set_group(CategoryGroup::Leak, self.leak);
        if let Some(a) = self.secret {
            p.set_group(CategoryGroup::Secret, a);
        }
        p.set_group(CategoryGroup::Pii, self.pii);
        p.set_group(CategoryGroup::Network, self.ip);
        for &(c, a) in &self.overrides {
            p.set(c, a);
        }
        // The core refuses 0; overlap is switched off by not passing the prompt instead.
        p.prompt_overlap_min_words = self.overlap_words.max(1);
        p
    }

    /// The policy for user messages: leaks do not apply, and no category acts more strongly
    /// than `prompt_scan` (so `log` only records, `redact` never refuses the request).
    pub fn prompt_policy(&self) -> OutputPolicy {
        let mut p = self.policy();
        p.set_group(CategoryGroup::Leak, Action::Off);
        for c in Category::ALL {
            let capped = weaker(p.action(c), self.prompt_scan);
            p.set(c, capped);
        }
        p
    }

    /// The settings in force for a tenant with these overrides; errors name the field.
    pub fn with_tenant(&self, t: &TenantOutputOverrides) -> Result<OutputSettings, String> {
        let parse = |field: &str, v: &Option<String>| -> Result<Option<Action>, String> {
            v.as_deref()
                .map(|raw| {
                    raw.parse::<Action>()
                        .map_err(|_| format!("{field}: {raw:?} is not {ACTIONS}"))
                })
                .transpose()
        };
        let mut s = self.clone();
        if let Some(v) = t.enabled {
            s.enabled = v;
        }
        if let Some(v) = t.canary {
            s.canary = v;
        }
        if let Some(v) = t.canary_position {
            s.canary_position = v;
        }
        if let Some(v) = t.prompt_overlap_words {
            if v > MAX_OVERLAP_WORDS {
                return Err(format!(
                    "prompt_overlap_words: {v} is above {MAX_OVERLAP_WORDS}"
                ));
            }
            s.overlap_words = v;
        }
        if let Some(a) = parse("leak_action", &t.leak_action)? {
            s.leak = a;
        }
        if let Some(a) = parse("secret_action", &t.secret_action)? {
            s.secret = Some(a);
        }
        if let Some(a) = parse("pii_action", &t.pii_action)? {
            s.pii = a;
        }
        if let Some(a) = parse("ip_action", &t.ip_action)? {
            s.ip = a;
        }
        if let Some(map) = &t.actions {
            for (label, raw) in map {
                let c = label.parse::<Category>().map_err(|e| {
                    format!(
                        "actions: {label:?} is not a category; accepted: {}",
                        e.accepted
                    )
                })?;
                let a = parse("actions", &Some(raw.clone()))?.unwrap_or(Action::Off);
                s.overrides.push((c, a));
            }
        }
        if let Some(a) = parse("scan_prompts", &t.scan_prompts)? {
            s.prompt_scan = a;
        }
        Ok(s)
    }
}

fn strength(a: Action) -> u8 {
    match a {
        Action::Off => 0,
        Action::Log => 1,
        Action::Redact => 2,
        Action::Block => 3,
    }
}

fn weaker(a: Action, b: Action) -> Action {
    if strength(a) <= strength(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_match_the_core_defaults() {
        let s = parse(&lookup(&[])).unwrap();
        assert_eq!(s, OutputSettings::default());
        assert_eq!(s.policy(), OutputPolicy::default());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = parse(&lookup(&[("OUTPUT_PII_ACTION", "mask")])).err();
        assert_eq!(e.map(|e| e.var), Some("OUTPUT_PII_ACTION"));
        let e = parse(&lookup(&[("OUTPUT_ACTION_OVERRIDES", "EMAIL")])).err();
        assert_eq!(e.map(|e| e.var), Some("OUTPUT_ACTION_OVERRIDES"));
        let e = parse(&lookup(&[("OUTPUT_ACTION_OVERRIDES", "MAIL=log")])).err();
        assert!(e.is_some_and(|e| e.expected.contains("EMAIL")));
        let e = parse(&lookup(&[("OUTPUT_PROMPT_OVERLAP_WORDS", "-1")])).err();
        assert_eq!(e.map(|e| e.var), Some("OUTPUT_PROMPT_OVERLAP_WORDS"));
    }

    #[test]
    fn groups_then_overrides() {
        let s = parse(&lookup(&[
            ("OUTPUT_SECRET_ACTION", "log"),
            ("OUTPUT_ACTION_OVERRIDES", "PRIVATE_KEY=block, email=off"),
        ]))
        .unwrap();
        let p = s.policy();
        assert_eq!(p.action(Category::AwsAccessKey), Action::Log);
        assert_eq!(p.action(Category::PrivateKey), Action::Block);
        assert_eq!(p.action(Category::Email), Action::Off);
        assert_eq!(p.action(Category::Phone), Action::Redact);
    }

    #[test]
    fn prompt_policy_is_capped_and_has_no_leaks() {
        let s = OutputSettings {
            prompt_scan: Action::Redact,
            ..OutputSettings::default()
        };
        let p = s.prompt_policy();
        assert_eq!(p.action(Category::Canary), Action::Off);
        assert_eq!(p.action(Category::PrivateKey), Action::Redact);
        assert_eq!(p.action(Category::IpAddress), Action::Log);
        assert_eq!(
            OutputSettings::default()
                .prompt_policy()
                .action(Category::Email),
            Action::Off
        );
    }

    #[test]
    fn tenant_overrides_replace_and_validate() {
        let base = OutputSettings::default();
        let t = TenantOutputOverrides {
            pii_action: Some("log".into()),
            actions: Some([("CARD".to_string(), "block".to_string())].into()),
            ..Default::default()
        };
        let s = base.with_tenant(&t).unwrap();
        assert_eq!(s.policy().action(Category::Email), Action::Log);
        assert_eq!(s.policy().action(Category::PaymentCard), Action::Block);
        let bad = TenantOutputOverrides {
            actions: Some([("CARDS".to_string(), "block".to_string())].into()),
            ..Default::default()
        };
        assert!(
            base.with_tenant(&bad)
                .is_err_and(|e| e.starts_with("actions"))
        );
    }
}
