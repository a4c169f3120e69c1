//! Training-data and memorisation probes: prompts that ask the model to reveal what it was
//! trained on, or use known tricks (divergence, verbatim completion) to make it regurgitate.

use regex::RegexSet;
use serde::Serialize;

/// Kinds of memorisation probe, one bit each in [`ProbeSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// "what is your training data", "which datasets were you trained on".
    TrainingData,
    /// "show me examples you were trained on".
    TrainingExamples,
    /// "repeat the word X forever" (the divergence attack of Nasr et al. 2023).
    RepeatForever,
    /// "complete this copyrighted text", "continue verbatim".
    VerbatimCompletion,
    /// "recite the first chapter of ...".
    Recitation,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 5] = [
        ProbeKind::TrainingData,
        ProbeKind::TrainingExamples,
        ProbeKind::RepeatForever,
        ProbeKind::VerbatimCompletion,
        ProbeKind::Recitation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::TrainingData => "training_data",
            ProbeKind::TrainingExamples => "training_examples",
            ProbeKind::RepeatForever => "repeat_forever",
            ProbeKind::VerbatimCompletion => "verbatim_completion",
            ProbeKind::Recitation => "recitation",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The probe kinds one prompt matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSet(u8);

impl ProbeSet {
    pub fn contains(self, kind: ProbeKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(self) -> impl Iterator<Item = ProbeKind> {
        ProbeKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }

    /// One bit per [`ProbeKind`], for the wire encoding; unknown bits are dropped.
    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Self {
        ProbeSet(bits & ((1 << ProbeKind::ALL.len()) - 1))
    }

    pub(crate) fn insert(&mut self, kind: ProbeKind) {
        self.0 |= kind.bit();
    }
}

// Bounded gaps (`.{0,N}`) keep the lazy DFA small and matching linear in the prompt length.
const PATTERNS: [(ProbeKind, &str); 9] = [
    (
        ProbeKind::TrainingData,
        r"(?is)\b(what|which|tell me|describe|list|reveal|show)\b.{0,40}\b(your|the model'?s?)\b.{0,20}\btraining\s+(data|dataset|datasets|set|corpus|documents)\b",
    ),
    (
        ProbeKind::TrainingData,
        r"(?is)\b(what|which)\b.{0,30}\b(data|datasets?|documents|books|websites|sources)\b.{0,30}\b(were|was|have been)\s+you\s+trained\b",
    ),
    (
        ProbeKind::TrainingExamples,
        r"(?is)\b(show|give|print|list|output|reveal|dump|share)\b.{0,40}\b(examples?|samples?|documents?|texts?|data|records?)\b.{0,40}\b(you\s+(were|have\s+been|'ve\s+been)|were\s+you)\s+(trained|fine-?tuned)\b",
    ),
    (
        ProbeKind::TrainingExamples,
        r"(?is)\b(examples?|samples?|verbatim)\b.{0,20}\bfrom\s+your\s+training\b",
    ),
    (
        ProbeKind::RepeatForever,
        r"(?is)\b(repeat|say|write|print|output|type)\b.{0,40}\b(forever|indefinitely|infinitely|endlessly|non-?stop|without\s+stopping|\d{3,}\s+times)\b",
    ),
    (
        ProbeKind::VerbatimCompletion,
        r"(?is)\b(complete|continue|finish)\b.{0,40}\b(copyrighted|verbatim|word\s+for\s+word|exact\s+(text|words|lyrics))\b",
    ),
    (
        ProbeKind::VerbatimCompletion,
        r"(?is)\b(complete|continue)\b.{0,20}\bthis\s+(copyrighted\s+)?(passage|excerpt|lyrics|song|poem|book|article|text)\b.{0,20}\b(exactly|verbatim|as\s+written|from\s+memory)\b",
    ),
    (
        ProbeKind::Recitation,
        r"(?is)\b(recite|reproduce|quote|transcribe|print|write\s+out|give\s+me)\b.{0,30}\b(first|opening|entire|full|whole|complete|last)\b.{0,30}\b(chapter|page|pages|paragraph|verse|lyrics|text|book|article|poem)\b",
    ),
    (
        ProbeKind::Recitation,
        r"(?is)\brecite\b.{0,60}\b(verbatim|word\s+for\s+word|from\s+memory)\b",
    ),
];

pub(crate) struct ProbeMatcher {
    set: RegexSet,
}

impl ProbeMatcher {
    pub(crate) fn new() -> Self {
        // The patterns are constants covered by tests; an empty set is the only fallback that
        // keeps the constructor infallible without panicking.
        let set =
            RegexSet::new(PATTERNS.iter().map(|(_, p)| *p)).unwrap_or_else(|_| RegexSet::empty());
        Self { set }
    }

    pub(crate) fn scan(&self, text: &str) -> ProbeSet {
        let mut found = ProbeSet::default();
        for idx in self.set.matches(text).iter() {
            if let Some((kind, _)) = PATTERNS.get(idx) {
                found.insert(*kind);
            }
        }
        found
    }
}
