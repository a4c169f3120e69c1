//! The security gate: scores a chat request with the detection core and turns the score
//! into ALLOW / WARN / BLOCK under the gateway's (or the tenant's) thresholds and mode.

use std::sync::Arc;

use secureinfer_guard::extraction::ExtractionAssessment;
use secureinfer_guard::{
    Assessment, CatalogueError, ChatMessage, Classifier, Decision, Guard, GuardConfig,
    Role as GuardRole, Thresholds,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ClassifierSettings, GateSettings, SecurityMode};
use crate::openai::{Message, Role};
use crate::store::{SecurityEvent, now_ms};

/// Prompts longer than this are scored on the blocking pool so they do not hold up the
/// async workers (scoring is linear: about 20 µs per KB).
const INLINE_SCORE_CHARS: usize = 16 * 1024;

pub struct Gate {
    guard: Guard,
    settings: GateSettings,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub score: u8,
    /// What the thresholds say.
    pub decision: Decision,
    /// Whether a BLOCK is acted on (false in monitor mode).
    pub enforced: bool,
    pub thresholds: Thresholds,
    pub assessment: Assessment,
    /// The tenant's extraction assessment after this request, when detection is on.
    pub extraction: Option<ExtractionAssessment>,
}

/// The gate factor the extraction detector feeds.
pub const EXTRACTION_FACTOR: &str = "model_extraction";

impl Verdict {
    pub fn blocks(&self) -> bool {
        self.decision == Decision::Block && self.enforced
    }

    /// The header value for WARN (and for a BLOCK that monitor mode let through).
    pub fn warns(&self) -> bool {
        self.decision != Decision::Allow && !self.blocks()
    }

    /// Adds the tenant's extraction score as its own factor. The prompt's risk and the query
    /// stream's extraction score are independent evidence, so they combine like independent
    /// probabilities (noisy-OR): either alone keeps its value, two moderate scores add up to
    /// more than each (30 and 40 make 58), and nothing exceeds 100.
    pub fn with_extraction(mut self, extraction: Option<&ExtractionAssessment>) -> Verdict {
        let Some(x) = extraction else {
            return self;
        };
        self.score = noisy_or(self.assessment.score, x.score);
        // The floor a benign discount must not cross combines with the extraction score too.
        let floor = match self.assessment.softened_from {
            0 => 0,
            s => noisy_or(s, x.score),
        };
        self.decision = self.thresholds.decide_softened(self.score, floor);
        self.extraction = Some(x.clone());
        self
    }

    /// Reason names for the 403 body and the event: the prompt's factors, then
    /// `model_extraction` and each extraction signal that scored (`model_extraction.enumeration`).
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .assessment
            .reason_names()
            .iter()
            .map(|r| r.to_string())
            .collect();
        if let Some(x) = self.extraction.as_ref().filter(|x| x.score > 0) {
            out.push(EXTRACTION_FACTOR.to_string());
            out.extend(
                x.signals
                    .iter()
                    .filter(|s| s.points > 0)
                    .map(|s| format!("{EXTRACTION_FACTOR}.{}", s.name)),
            );
        }
        out
    }

    /// `model_extraction` when the query stream, not the prompt, drove the verdict.
    pub fn event_type(&self) -> &'static str {
        match &self.extraction {
            Some(x) if x.score > self.assessment.score => EXTRACTION_FACTOR,
            _ => "prompt_risk",
        }
    }
}

fn guard_role(r: Role) -> GuardRole {
    match r {
        Role::System => GuardRole::System,
        Role::Developer => GuardRole::Developer,
        Role::User => GuardRole::User,
        Role::Assistant => GuardRole::Assistant,
        Role::Tool | Role::Function => GuardRole::Tool,
    }
}

/// Why the detection engine could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("the pattern catalogue failed to compile: {0}")]
    Catalogue(#[from] CatalogueError),
    #[error("CLASSIFIER_MODEL={path}: {reason}")]
    Model { path: String, reason: String },
    #[error("the built-in classifier model does not load: {0}")]
    Builtin(secureinfer_guard::ModelError),
    #[error("SEMANTIC_MODEL_DIR={dir}: {reason}")]
    Semantic { dir: String, reason: String },
}

/// Loads the learned detector the settings ask for: `None` when disabled, the file named
/// by CLASSIFIER_MODEL when set (read once, at start-up), else the built-in model.
pub fn load_classifier(s: &ClassifierSettings) -> Result<Option<Arc<Classifier>>, GateError> {
    if !s.enabled {
        return Ok(None);
    }
    let model = match &s.model {
        None => Classifier::builtin().map_err(GateError::Builtin)?,
        Some(path) => {
            let err = |reason: String| GateError::Model {
                path: path.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
            Classifier::from_bytes(&bytes).map_err(|e| err(e.to_string()))?
        }
    };
    Ok(Some(Arc::new(model)))
}

/// The scorer the settings describe: heuristics, plus the learned detector when enabled.
pub fn build_guard(
    score_system: bool,
    classifier: &ClassifierSettings,
) -> Result<Guard, GateError> {
    let guard = Guard::new(GuardConfig { score_system })?;
    let guard = match load_classifier(classifier)? {
        Some(model) => guard.with_classifier(model, classifier.weight),
        None => guard,
    };
    Ok(match &classifier.semantic_model_dir {
        None => guard,
        Some(dir) => guard.with_second_tier(load_semantic(dir)?),
    })
}

/// Loads the semantic tier from the encoder directory (read once, at start-up).
#[cfg(feature = "semantic")]
fn load_semantic(
    dir: &std::path::Path,
) -> Result<Arc<dyn secureinfer_guard::SecondTier>, GateError> {
    crate::semantic_model::load(dir)
        .map(|d| Arc::new(d) as Arc<dyn secureinfer_guard::SecondTier>)
        .map_err(|reason| GateError::Semantic {
            dir: dir.display().to_string(),
            reason,
        })
}

/// Without the `semantic` feature the setting is refused when parsed; this is the backstop.
#[cfg(not(feature = "semantic"))]
fn load_semantic(
    dir: &std::path::Path,
) -> Result<Arc<dyn secureinfer_guard::SecondTier>, GateError> {
    Err(GateError::Semantic {
        dir: dir.display().to_string(),
        reason: "this build has no semantic encoder (build with --features semantic)".to_string(),
    })
}

impl Gate {
    pub fn new(settings: GateSettings) -> Result<Self, GateError> {
        let guard = build_guard(settings.score_system_prompt, &settings.classifier)?;
        Ok(Gate { guard, settings })
    }

    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    /// Which detection tiers score prompts (for `/health`): an operator who set
    /// SEMANTIC_MODEL_DIR can see that the encoder loaded.
    pub fn detectors(&self) -> serde_json::Value {
        serde_json::json!({
            "heuristics": true,
            "classifier": self.guard.classifier().is_some(),
            "semantic": self.guard.has_second_tier(),
        })
    }

    /// Scores the messages synchronously (the detection core does no I/O).
    pub fn assess(&self, messages: &[Message], tenant_thresholds: Option<Thresholds>) -> Verdict {
        let texts: Vec<(GuardRole, String)> = messages
            .iter()
            .map(|m| (guard_role(m.role), m.text()))
            .collect();
        let views: Vec<ChatMessage<'_>> = texts
            .iter()
            .map(|(role, text)| ChatMessage { role: *role, text })
            .collect();
        let assessment = self.guard.score(&views);
        let thresholds = tenant_thresholds.unwrap_or(self.settings.thresholds);
        Verdict {
            score: assessment.score,
            decision: thresholds.decide_softened(assessment.score, assessment.softened_from),
            enforced: self.settings.mode == SecurityMode::Enforce,
            thresholds,
            assessment,
            extraction: None,
        }
    }

    /// [`Gate::assess`], moved off the async workers for long prompts.
    pub async fn assess_async(
        self: &std::sync::Arc<Self>,
        messages: &[Message],
        tenant_thresholds: Option<Thresholds>,
    ) -> Verdict {
        let chars: usize = messages.iter().map(Message::char_count).sum();
        // The semantic tier spends milliseconds per prompt it is asked about: never on the
        // async workers.
        if chars <= INLINE_SCORE_CHARS && !self.guard.has_second_tier() {
            return self.assess(messages, tenant_thresholds);
        }
        let gate = self.clone();
        let owned = messages.to_vec();
        match tokio::task::spawn_blocking(move || gate.assess(&owned, tenant_thresholds)).await {
            Ok(v) => v,
            // The scorer does not panic (property-tested); if the task died anyway, score inline.
            Err(_) => self.assess(messages, tenant_thresholds),
        }
    }

    /// The event recorded for a WARN/BLOCK verdict: prompt hash and length, never the
    /// prompt itself unless EVENT_STORE_PROMPT is on.
    pub fn event(
        &self,
        verdict: &Verdict,
        tenant_id: &str,
        request_id: &str,
        messages: &[Message],
    ) -> SecurityEvent {
        let prompt: String = messages
            .iter()
            .filter(|m| !matches!(m.role, Role::Assistant))
            .map(|m| m.text())
            .collect::<Vec<_>>()
            .join("\n");
        SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: now_ms(),
            tenant_id: tenant_id.to_string(),
            request_id: request_id.to_string(),
            event_type: verdict.event_type().to_string(),
            score: verdict.score,
            reasons: verdict.reasons(),
            decision: verdict.decision.as_str().to_string(),
            enforced: verdict.enforced,
            prompt_sha256: hex::encode(Sha256::digest(prompt.as_bytes())),
            prompt_chars: prompt.chars().count() as i64,
            prompt: self.settings.event_store_prompt.then_some(prompt),
            detail: serde_json::json!({
                "patterns": verdict.assessment.reasons,
                "obfuscation": verdict.assessment.obfuscation,
                "classifier": verdict.assessment.learned,
                "semantic": verdict.assessment.semantic,
                "thresholds": verdict.thresholds,
                "prompt_score": verdict.assessment.score,
                "prompt_score_before_discount": verdict.assessment.softened_from,
                "extraction": verdict.extraction.as_ref().map(|x| serde_json::json!({
                    "score": x.score,
                    "status": x.status,
                    "signals": x.signals.iter().filter(|s| s.points > 0).collect::<Vec<_>>(),
                })),
            }),
        }
    }
}

/// Two independent scores (0..=100) combined as probabilities: 1 - (1 - p)(1 - q).
fn noisy_or(a: u8, b: u8) -> u8 {
    let p = f64::from(a.min(100)) / 100.0;
    let q = f64::from(b.min(100)) / 100.0;
    (100.0 * (1.0 - (1.0 - p) * (1.0 - q)))
        .round()
        .clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secureinfer_guard::extraction::{ExtractionAssessment, ExtractionStatus};
    use secureinfer_guard::{Assessment, Decision, Thresholds};

    use super::Verdict;

    /// A prompt the benign discount softened (75 to 55) meets a moderate extraction score
    /// (40). Undiscounted, the two make 85, a warning at WARN 83; the discounted 55 with 40
    /// makes 73, which alone would be allowed. The floor combines with the extraction too.
    #[test]
    fn extraction_does_not_undo_the_discount_floor() {
        let thresholds = Thresholds {
            warn: 83,
            block: 95,
        };
        let verdict = Verdict {
            score: 55,
            decision: thresholds.decide_softened(55, 75),
            enforced: true,
            thresholds,
            assessment: Assessment {
                score: 55,
                softened_from: 75,
                ..Assessment::default()
            },
            extraction: None,
        };
        let x = ExtractionAssessment {
            score: 40,
            signals: Vec::new(),
            status: ExtractionStatus::Normal,
        };
        let v = verdict.with_extraction(Some(&x));
        assert_eq!(v.score, 73);
        assert_eq!(v.decision, Decision::Warn);
    }
}
