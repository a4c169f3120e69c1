//! The public vocabulary of the scorer: messages in, assessment and decision out.

use serde::{Deserialize, Serialize};

use crate::normalize::ObfuscationStats;

/// Who wrote a chat message. Only some roles are scored (see [`GuardConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// Whether detection reads messages of this role: what users and tools send always,
    /// the operator's own system/developer text only when asked to.
    pub fn scored(self, score_system: bool) -> bool {
        match self {
            Role::User | Role::Tool => true,
            Role::System | Role::Developer => score_system,
            Role::Assistant => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChatMessage<'a> {
    pub role: Role,
    pub text: &'a str,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct GuardConfig {
    /// Also score the operator's system/developer messages. Off by default: operators
    /// legitimately write "ignore requests about X" in their own prompts.
    pub score_system: bool,
}

/// One piece of evidence. `pattern` is a catalogue id, never text from the prompt, so
/// reasons are safe to log and return to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub factor: &'static str,
    pub pattern: String,
    pub points: u8,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Assessment {
    /// 0..=100.
    pub score: u8,
    /// Strongest first.
    pub reasons: Vec<Reason>,
    pub obfuscation: ObfuscationStats,
    /// The learned detector's verdict, when the guard has one (its points are also in
    /// `reasons` under the `classifier` factor once they matter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<crate::classifier::LearnedScore>,
    /// The second (semantic) tier's verdict, when it was asked (borderline prompts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic: Option<crate::classifier::second::SemanticScore>,
    /// The score before the learned detector's benign discount lowered it (0 when it did
    /// not). Decisions use it so that what the patterns flagged stays flagged under any
    /// thresholds ([`Thresholds::decide_softened`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub softened_from: u8,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

impl Assessment {
    /// Distinct factor names, in order of first appearance.
    pub fn reason_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for r in &self.reasons {
            if !names.contains(&r.factor) {
                names.push(r.factor);
            }
        }
        names
    }
}

/// Ordered by severity: `Allow < Warn < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Warn,
    Block,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Block => "block",
        }
    }
}

/// Score cut-offs: `score >= block` blocks, else `score >= warn` warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub warn: u8,
    pub block: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn: 50,
            block: 80,
        }
    }
}

impl Thresholds {
    pub fn decide(&self, score: u8) -> Decision {
        if score >= self.block {
            Decision::Block
        } else if score >= self.warn {
            Decision::Warn
        } else {
            Decision::Allow
        }
    }

    /// The score these thresholds judge when `softened_from` is the score before the learned
    /// detector's benign discount (0 if there was none): a score that was flagged is raised
    /// back to WARN, so the discount may turn a block into a warning, never a flag into an
    /// allow.
    pub fn softened_score(&self, score: u8, softened_from: u8) -> u8 {
        if softened_from >= self.warn {
            score.max(self.warn)
        } else {
            score
        }
    }

    /// [`Self::decide`] on [`Self::softened_score`].
    pub fn decide_softened(&self, score: u8, softened_from: u8) -> Decision {
        self.decide(self.softened_score(score, softened_from))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.block > 100 || self.warn > 100 {
            return Err(format!(
                "risk thresholds must be within 0..=100 (warn={}, block={})",
                self.warn, self.block
            ));
        }
        if self.warn > self.block {
            return Err(format!(
                "warn threshold ({}) must not exceed block threshold ({})",
                self.warn, self.block
            ));
        }
        Ok(())
    }
}
