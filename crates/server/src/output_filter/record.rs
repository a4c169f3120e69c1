//! What the output guard found in one request, turned into a security event and counters.
//! Only categories, actions and offsets are kept: never the matched text.

use std::sync::atomic::{AtomicU64, Ordering};

use secureinfer_guard::output::{Action, Category, Finding};
use serde_json::{Value, json};

use crate::store::{SecurityEvent, now_ms};

/// Findings listed one by one in an event; beyond this only the counts grow.
const MAX_LISTED: usize = 100;

/// Where in the exchange a finding was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Content,
    ToolArguments(u64),
    /// A user or tool message before it went upstream (message index, content part index).
    Prompt(usize, Option<usize>),
}

impl Field {
    fn json(self) -> Value {
        match self {
            Field::Content => json!("content"),
            Field::ToolArguments(i) => json!(format!("tool_calls[{i}].function.arguments")),
            Field::Prompt(m, None) => json!(format!("messages[{m}].content")),
            Field::Prompt(m, Some(p)) => json!(format!("messages[{m}].content[{p}]")),
        }
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Redact => "redact",
        Action::Block => "block",
        Action::Log => "log",
        Action::Off => "off",
    }
}

/// Findings of one request (prompt side or answer side).
#[derive(Debug, Default)]
pub struct FindingLog {
    listed: Vec<(u64, Field, Finding)>,
    counts: [[u32; 4]; Category::ALL.len()],
    total: usize,
    pub blocked: bool,
}

fn action_index(a: Action) -> usize {
    match a {
        Action::Redact => 0,
        Action::Block => 1,
        Action::Log => 2,
        Action::Off => 3,
    }
}

fn category_index(c: Category) -> usize {
    Category::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

impl FindingLog {
    pub fn add(&mut self, choice: u64, field: Field, findings: &[Finding]) {
        for f in findings {
            self.total += 1;
            let slot = &mut self.counts[category_index(f.category)][action_index(f.action)];
            *slot = slot.saturating_add(1);
            if self.listed.len() < MAX_LISTED {
                self.listed.push((choice, field, *f));
            }
            self.blocked |= f.action == Action::Block;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Labels of the categories found, in the catalogue's order.
    pub fn labels(&self) -> Vec<&'static str> {
        Category::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.counts[*i].iter().any(|&n| n > 0))
            .map(|(_, c)| c.label())
            .collect()
    }

    /// Labels of the categories that caused a block.
    pub fn block_labels(&self) -> Vec<&'static str> {
        Category::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.counts[*i][action_index(Action::Block)] > 0)
            .map(|(_, c)| c.label())
            .collect()
    }

    fn acted(&self) -> bool {
        self.counts
            .iter()
            .any(|row| row[action_index(Action::Redact)] + row[action_index(Action::Block)] > 0)
    }

    fn has_leak(&self) -> bool {
        [Category::Canary, Category::SystemPromptLeak]
            .iter()
            .any(|&c| self.counts[category_index(c)].iter().any(|&n| n > 0))
    }

    /// The event for these findings; `None` when there are none.
    pub fn event(&self, ctx: &EventContext<'_>, prompt_side: bool) -> Option<SecurityEvent> {
        if self.is_empty() {
            return None;
        }
        let event_type = if prompt_side {
            "prompt_sensitive_data"
        } else if self.has_leak() {
            "output_leak"
        } else {
            "output_sensitive_data"
        };
        // A recited canary proves the extraction worked, whatever the prompt scored: it must
        // raise the tenant's rolling risk.
        let score = if self.has_leak() {
            ctx.score.max(LEAK_SCORE)
        } else {
            ctx.score
        };
        let prefix = if prompt_side { "prompt_" } else { "output_" };
        let reasons = self
            .labels()
            .iter()
            .map(|l| format!("{prefix}{}", l.to_ascii_lowercase()))
            .collect();
        let findings: Vec<Value> = self
            .listed
            .iter()
            .map(|(choice, field, f)| {
                json!({
                    "category": f.category.label(),
                    "action": action_name(f.action),
                    "choice": choice,
                    "field": field.json(),
                    "start": f.start,
                    "end": f.end,
                })
            })
            .collect();
        let mut counts = serde_json::Map::new();
        for (i, c) in Category::ALL.iter().enumerate() {
            let n: u32 = self.counts[i].iter().sum();
            if n > 0 {
                counts.insert(c.label().to_string(), n.into());
            }
        }
        Some(SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: now_ms(),
            tenant_id: ctx.tenant_id.to_string(),
            request_id: ctx.request_id.to_string(),
            event_type: event_type.to_string(),
            score,
            reasons,
            decision: if self.blocked { "block" } else { "warn" }.to_string(),
            enforced: self.acted(),
            prompt_sha256: ctx.prompt_sha256.to_string(),
            prompt_chars: ctx.prompt_chars,
            prompt: None,
            detail: json!({
                "stage": if prompt_side { "prompt" } else { "output" },
                "stream": ctx.stream,
                "findings": findings,
                "counts": counts,
                "truncated": self.total > self.listed.len(),
            }),
        })
    }
}

/// The score an output leak event carries at least (the gate's block threshold by default).
pub const LEAK_SCORE: u8 = 80;

/// Request facts an event needs.
#[derive(Debug, Clone)]
pub struct EventContext<'a> {
    pub tenant_id: &'a str,
    pub request_id: &'a str,
    pub score: u8,
    pub prompt_sha256: &'a str,
    pub prompt_chars: i64,
    pub stream: bool,
}

/// Process-wide counters of output-guard outcomes, for metrics.
#[derive(Debug, Default)]
pub struct OutputCounters {
    findings: [[AtomicU64; 4]; Category::ALL.len()],
    pub answers_scanned: AtomicU64,
    pub answers_redacted: AtomicU64,
    pub answers_blocked: AtomicU64,
    pub prompts_redacted: AtomicU64,
    pub prompts_blocked: AtomicU64,
    pub canaries_planted: AtomicU64,
}

/// One row of [`OutputCounters::findings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingCount {
    pub category: &'static str,
    pub action: &'static str,
    pub count: u64,
}

impl OutputCounters {
    pub fn record(&self, log: &FindingLog, prompt_side: bool) {
        for (i, row) in log.counts.iter().enumerate() {
            for (j, &n) in row.iter().enumerate() {
                if n > 0 {
                    self.findings[i][j].fetch_add(u64::from(n), Ordering::Relaxed);
                }
            }
        }
        let (redacted, blocked) = if prompt_side {
            (&self.prompts_redacted, &self.prompts_blocked)
        } else {
            (&self.answers_redacted, &self.answers_blocked)
        };
        if log.blocked {
            blocked.fetch_add(1, Ordering::Relaxed);
        } else if log
            .counts
            .iter()
            .any(|r| r[action_index(Action::Redact)] > 0)
        {
            redacted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the counters as OpenMetrics text (families named without `_total`, as the
    /// format requires; samples keep it).
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP secureinfer_output_findings Output-guard findings in answers and prompts, by category and the action taken.\n\
             # TYPE secureinfer_output_findings counter"
        );
        for f in self.findings() {
            let _ = writeln!(
                out,
                "secureinfer_output_findings_total{{category=\"{}\",action=\"{}\"}} {}",
                f.category, f.action, f.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP secureinfer_output_answers Answers the output guard scanned, and of those the ones it redacted or blocked.\n\
             # TYPE secureinfer_output_answers counter"
        );
        for (outcome, n) in [
            ("scanned", &self.answers_scanned),
            ("redacted", &self.answers_redacted),
            ("blocked", &self.answers_blocked),
        ] {
            let _ = writeln!(
                out,
                "secureinfer_output_answers_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP secureinfer_output_prompts Prompts redacted or refused by OUTPUT_SCAN_PROMPTS before going upstream.\n\
             # TYPE secureinfer_output_prompts counter"
        );
        for (outcome, n) in [
            ("redacted", &self.prompts_redacted),
            ("blocked", &self.prompts_blocked),
        ] {
            let _ = writeln!(
                out,
                "secureinfer_output_prompts_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP secureinfer_output_canaries_planted Per-request canaries planted in system prompts.\n\
             # TYPE secureinfer_output_canaries_planted counter\n\
             secureinfer_output_canaries_planted_total {}",
            self.canaries_planted.load(Ordering::Relaxed)
        );
    }

    /// Non-zero finding counts by category and action (for a metrics exporter).
    pub fn findings(&self) -> Vec<FindingCount> {
        let actions = [Action::Redact, Action::Block, Action::Log, Action::Off];
        let mut out = Vec::new();
        for (i, c) in Category::ALL.iter().enumerate() {
            for (j, a) in actions.iter().enumerate() {
                let count = self.findings[i][j].load(Ordering::Relaxed);
                if count > 0 {
                    out.push(FindingCount {
                        category: c.label(),
                        action: action_name(*a),
                        count,
                    });
                }
            }
        }
        out
    }
}
