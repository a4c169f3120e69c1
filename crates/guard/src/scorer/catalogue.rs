//! Parses the pattern catalogue (`catalogue/patterns.txt`) into compiled matchers.
//!
//! Line format, one pattern per line, `#` starts a comment line:
//!
//! ```text
//! id | factor | lang | points | regex
//! ```
//!
//! `points` is 1..=100, or `-` for the factor's default weight. The regex runs on the
//! normalised, lowercased text; a literal space in it means "any run of non-alphanumerics,
//! possibly empty", so one pattern also matches `ignore-previous` and `ignoreprevious`.
//! The regex is the rest of the line and may itself contain `|`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use thiserror::Error;

/// Factor names and their default points (the weights from the original design).
pub const FACTORS: &[(&str, u8)] = &[
    ("jailbreak_patterns", 30),
    ("system_prompt_extract", 25),
    ("credential_harvesting", 20),
    ("code_execution", 15),
    ("message_anomalies", 10),
    ("conversation_patterns", 15),
    ("obfuscation", 20),
    ("cross_tenant_probing", 20),
];

#[derive(Debug, Error)]
pub enum CatalogueError {
    #[error("catalogue line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("catalogue: duplicate pattern id `{0}`")]
    Duplicate(String),
    #[error("catalogue regex set failed to compile: {0}")]
    Compile(String),
    #[error("normaliser failed to build: {0}")]
    Normalizer(String),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub id: String,
    pub factor: &'static str,
    pub lang: String,
    pub points: u8,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub patterns: Vec<Pattern>,
    pub regexes: Vec<Regex>,
    /// Literal prefixes every match of a pattern must start with, all patterns in one
    /// automaton: one pass over the text tells which regexes are worth running.
    pub anchors: AhoCorasick,
    /// For each anchor, the pattern it belongs to and its word-edge rule.
    pub anchor_owner: Vec<(usize, Edge)>,
    /// Patterns without a usable literal prefix; they run on every view.
    pub always: Vec<usize>,
}

/// Anchors shorter than this would fire on almost any text.
const MIN_ANCHOR: usize = 2;

/// Where an anchor literal sits in a match, and whether it must sit on a word edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Anchor starts the match and the regex starts with `\b`: the byte before it must
    /// not be a letter or digit.
    Start,
    /// Anchor ends the match and the regex ends with `\b`.
    End,
    Free,
}

/// Literals that every match of `re` must begin (or end) with, whichever side gives the
/// longer shortest literal, or None if neither side can be bounded. Longer anchors fire
/// less often, so fewer regexes run on ordinary text.
fn anchors_for(re: &str, starts_b: bool, ends_b: bool) -> Option<(Vec<Vec<u8>>, Edge)> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(re).ok()?;
    let side = |kind: ExtractKind| -> Option<(Vec<Vec<u8>>, usize)> {
        let seq = Extractor::new().kind(kind).extract(&hir);
        let lits = seq.literals()?;
        let min = lits.iter().map(|l| l.as_bytes().len()).min()?;
        (min >= MIN_ANCHOR).then(|| (lits.iter().map(|l| l.as_bytes().to_vec()).collect(), min))
    };
    match (side(ExtractKind::Prefix), side(ExtractKind::Suffix)) {
        (Some((_, pm)), Some((s, sm))) if sm > pm => {
            Some((s, if ends_b { Edge::End } else { Edge::Free }))
        }
        (Some((p, _)), _) => Some((p, if starts_b { Edge::Start } else { Edge::Free })),
        (None, Some((s, _))) => Some((s, if ends_b { Edge::End } else { Edge::Free })),
        (None, None) => None,
    }
}

/// Space in a catalogue regex: separators of any kind, or none.
const GAP: &str = r"[^\p{L}\p{N}]*";

/// Unicode `\b` makes the lazy DFA give up on non-ASCII input and fall back to a much
/// slower engine; an ASCII boundary keeps every view on the fast path. Non-Latin scripts
/// count as non-word on both sides, which only makes their patterns a little more eager.
const ASCII_BOUNDARY: &str = r"(?-u:\b)";

/// Languages written without Latin letters.
const NON_LATIN: &[&str] = &["ru", "ja", "zh", "uk", "el", "ar", "he", "ko", "hi"];

pub fn factor(name: &str) -> Option<(&'static str, u8)> {
    FACTORS.iter().find(|(n, _)| *n == name).copied()
}

pub fn parse(src: &str) -> Result<Catalogue, CatalogueError> {
    let mut patterns = Vec::new();
    let mut regexes = Vec::new();
    let (mut anchor_lits, mut anchor_owner, mut always) = (Vec::new(), Vec::new(), Vec::new());
    for (no, raw) in src.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: &str| CatalogueError::Line {
            line: no + 1,
            msg: msg.to_owned(),
        };
        let mut parts = line.splitn(5, '|').map(str::trim);
        let (Some(id), Some(fac), Some(lang), Some(pts), Some(re)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(err("expected `id | factor | lang | points | regex`"));
        };
        let (factor, default) = factor(fac).ok_or_else(|| err("unknown factor"))?;
        let points = match pts {
            "-" => default,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| err("points must be 1..=100 or -"))?,
        };
        if id.is_empty() || re.is_empty() {
            return Err(err("empty id or regex"));
        }
        if patterns.iter().any(|p: &Pattern| p.id == id) {
            return Err(CatalogueError::Duplicate(id.to_owned()));
        }
        // Scripts without ASCII letters never sit next to an ASCII boundary, so `\b` is
        // dropped there rather than silently making the pattern unmatchable.
        let boundary = if NON_LATIN.contains(&lang) {
            ""
        } else {
            ASCII_BOUNDARY
        };
        let re = re.replace(' ', GAP).replace(r"\b", boundary);
        let compiled = RegexBuilder::new(&re)
            .size_limit(32 << 20)
            .dfa_size_limit(8 << 20)
            .build()
            .map_err(|e| err(&e.to_string()))?;
        match anchors_for(
            &re,
            re.starts_with(ASCII_BOUNDARY),
            re.ends_with(ASCII_BOUNDARY),
        ) {
            Some((lits, edge)) => {
                for l in lits {
                    anchor_lits.push(l);
                    anchor_owner.push((regexes.len(), edge));
                }
            }
            None => always.push(regexes.len()),
        }
        regexes.push(compiled);
        patterns.push(Pattern {
            id: id.to_owned(),
            factor,
            lang: lang.to_owned(),
            points,
        });
    }
    let anchors = AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .build(&anchor_lits)
        .map_err(|e| CatalogueError::Compile(e.to_string()))?;
    Ok(Catalogue {
        patterns,
        regexes,
        anchors,
        anchor_owner,
        always,
    })
}
