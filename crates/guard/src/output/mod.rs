//! Output guard: leak canaries, PII and secret detection (see docs/output-guard.md).
//!
//! One [`OutputGuard`] holds the compiled detectors and the policy; it is built once at start-up
//! and shared (`Send + Sync`). Per response, [`OutputGuard::scan`] handles a complete text and
//! [`OutputGuard::stream`] returns a [`StreamScanner`] that redacts SSE deltas with a bounded
//! hold-back. Both run the same engine, so the streamed output equals the scanned output.

mod canary;
mod detectors;
mod engine;
mod overlap;
mod policy;
mod validate;

pub use canary::{canary_instruction, make_canary};
pub use engine::{StreamScanner, StreamStep};
pub use overlap::{Overlap, system_prompt_overlap};
pub use policy::{Action, Category, CategoryGroup, OutputPolicy, ParseError};

use std::borrow::Cow;
use std::fmt;

/// Hold-back for private-key blocks: held from `-----BEGIN` until END or this many bytes.
pub const PEM_HOLD_MAX: usize = detectors::PEM_MAX;

/// Per-request inputs: this request's canary (if one was planted) and its system prompt (if
/// prompt-overlap scanning is on).
#[derive(Clone, Default)]
pub struct RequestContext {
    pub canary: Option<String>,
    pub system_prompt: Option<String>,
}

impl fmt::Debug for RequestContext {
    // The canary and the prompt are exactly what must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("canary", &self.canary.as_ref().map(|_| "<set>"))
            .field(
                "system_prompt_len",
                &self.system_prompt.as_ref().map(String::len),
            )
            .finish()
    }
}

/// One detection. Offsets are byte offsets into the original (unredacted) text; the matched text
/// itself is never stored, so findings are safe to log and to put in audit events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    pub category: Category,
    pub action: Action,
    pub start: usize,
    pub end: usize,
}

/// Result of a non-streaming scan. `text` borrows the input when nothing was redacted; it is
/// empty when `blocked`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanResult<'a> {
    pub text: Cow<'a, str>,
    pub findings: Vec<Finding>,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputGuardError {
    /// A built-in pattern failed to compile (a bug, caught by the tests).
    Pattern(String),
    /// The policy cannot be honoured; the message names the setting.
    InvalidPolicy(&'static str),
}

impl fmt::Display for OutputGuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pattern(e) => write!(f, "output guard pattern failed to compile: {e}"),
            Self::InvalidPolicy(e) => write!(f, "invalid output guard policy: {e}"),
        }
    }
}

impl std::error::Error for OutputGuardError {}

/// Compiled detectors + policy. Build once, share by reference or `Arc`.
pub struct OutputGuard {
    policy: OutputPolicy,
    detectors: Vec<detectors::Detector>,
}

impl fmt::Debug for OutputGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputGuard")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OutputGuard {
    pub fn new(policy: OutputPolicy) -> Result<Self, OutputGuardError> {
        if policy.prompt_overlap_min_words == 0 {
            return Err(OutputGuardError::InvalidPolicy(
                "prompt_overlap_min_words must be at least 1",
            ));
        }
        let detectors = detectors::build()
            .map_err(OutputGuardError::Pattern)?
            .into_iter()
            .filter(|d| policy.action(d.category) != Action::Off)
            .collect();
        Ok(Self { policy, detectors })
    }

    pub fn policy(&self) -> &OutputPolicy {
        &self.policy
    }

    /// Scans a complete response. Findings are in text order; scanning stops at the first
    /// `Block` finding of the redaction pass.
    pub fn scan<'a>(&self, text: &'a str, ctx: &RequestContext) -> ScanResult<'a> {
        let mut eng = engine::Engine::new(self, ctx);
        let mut findings = Vec::new();
        let mut blocked = eng.overlap_feed(text, 0, &mut findings);
        blocked |= eng.overlap_finish(&mut findings);
        let mut cursor = 0;
        blocked |= eng.advance(text, 0, &mut cursor, true, None, &mut findings);
        findings.sort_by_key(|f| (f.start, f.end));
        if blocked {
            return ScanResult {
                text: Cow::Borrowed(""),
                findings,
                blocked,
            };
        }
        let mut redactions = findings
            .iter()
            .filter(|f| f.action == Action::Redact)
            .peekable();
        if redactions.peek().is_none() {
            return ScanResult {
                text: Cow::Borrowed(text),
                findings,
                blocked,
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in redactions {
            out.push_str(&text[at..f.start]);
            out.push_str(f.category.redaction());
            at = f.end;
        }
        out.push_str(&text[at..]);
        ScanResult {
            text: Cow::Owned(out),
            findings,
            blocked,
        }
    }

    /// A scanner for one streamed response.
    pub fn stream(&self, ctx: RequestContext) -> StreamScanner<'_> {
        StreamScanner::new(self, &ctx)
    }
}
