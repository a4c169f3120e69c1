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

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Hir, HirKind, Literal};
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
    /// For override and extraction patterns (the ones whose phrases are cited, see
    /// `quoted::citable`), `Some` literals one of which begins every match (empty when the
    /// regex has no finite set of them). The scorer checks whether a match can begin right
    /// after a negation before it looks for every match.
    pub cited_prefixes: Vec<Option<Prefixes>>,
    /// Literal prefixes every match of a pattern must start with, all patterns in one
    /// automaton: one pass over the text tells which regexes are worth running.
    pub anchors: AhoCorasick,
    /// For each anchor, the pattern it belongs to.
    pub anchor_owner: Vec<usize>,
    /// Patterns without a usable literal prefix; they run on every view.
    pub always: Vec<usize>,
}

/// Literals that begin every match of a pattern; empty when there is no finite set.
pub type Prefixes = Vec<Vec<u8>>;

/// Literals one of which every match of `hir` starts with (empty when they are unbounded).
fn prefixes_for(hir: &Hir) -> Prefixes {
    let seq = regex_syntax::hir::literal::Extractor::new().extract(hir);
    match seq.literals() {
        Some(lits) if !lits.iter().any(|l| l.as_bytes().is_empty()) => {
            lits.iter().map(|l| l.as_bytes().to_vec()).collect()
        }
        _ => Vec::new(),
    }
}

/// Anchors shorter than this would fire on almost any text.
const MIN_ANCHOR: usize = 3;

/// Literals one of which every match of `re` must contain, chosen to be as long as
/// possible: the scorer runs a pattern's regex only when one of its anchors occurs, so
/// long, specific anchors keep ordinary prose from waking up most of the catalogue.
fn anchors_for(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let lits = required(hir, 0)?;
    let min = lits.iter().map(Vec::len).min()?;
    (min >= MIN_ANCHOR).then_some(lits)
}

/// Alternatives beyond this make the anchor automaton large for little gain.
const MAX_ANCHORS_PER_PATTERN: usize = 400;

/// Words so frequent in prose that anchoring on them would run the regex on almost
/// every text.
const COMMON: &[&str] = &[
    "the", "and", "you", "your", "that", "with", "who", "which", "what", "this", "not", "never",
    "from", "all", "any", "are", "was", "were", "can", "will", "for", "have", "say", "use", "tell",
    "give", "show", "text", "data", "file", "input", "other", "more",
];

/// How selective a literal is as an anchor: its length, capped, and 1 for common words.
fn rarity(lit: &[u8]) -> usize {
    let trimmed = lit.trim_ascii();
    if COMMON.iter().any(|w| w.as_bytes() == trimmed) {
        1
    } else {
        lit.len().min(8)
    }
}

/// A set of literals such that every match of `hir` contains at least one of them.
fn required(hir: &Hir, depth: usize) -> Option<Vec<Vec<u8>>> {
    if depth > 64 {
        return None;
    }
    match hir.kind() {
        HirKind::Literal(Literal(bytes)) => Some(vec![bytes.to_vec()]),
        HirKind::Capture(c) => required(&c.sub, depth + 1),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub, depth + 1),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(required(b, depth + 1)?);
                if all.len() > MAX_ANCHORS_PER_PATTERN {
                    return None;
                }
            }
            Some(all)
        }
        HirKind::Concat(parts) => parts
            .iter()
            .filter_map(|p| required(p, depth + 1))
            .max_by_key(|lits| {
                let min = lits.iter().map(|l| rarity(l)).min().unwrap_or(0);
                (min, std::cmp::Reverse(lits.len()))
            }),
        _ => None,
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
    let mut cited_prefixes = Vec::new();
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
        // Parsed once more for the literals; the regex crate keeps its own parse private.
        let hir = regex_syntax::ParserBuilder::new().build().parse(&re).ok();
        let cited = super::quoted::citable(id);
        cited_prefixes.push(cited.then(|| hir.as_ref().map(prefixes_for).unwrap_or_default()));
        match hir.as_ref().and_then(anchors_for) {
            Some(lits) => {
                for l in lits {
                    anchor_lits.push(l);
                    anchor_owner.push(regexes.len());
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
        // Overlapping search cannot use the literal prefilter, so a full DFA (a few MB,
        // built once) is the fastest way to walk every byte.
        .kind(Some(AhoCorasickKind::DFA))
        .build(&anchor_lits)
        .map_err(|e| CatalogueError::Compile(e.to_string()))?;
    Ok(Catalogue {
        patterns,
        regexes,
        cited_prefixes,
        anchors,
        anchor_owner,
        always,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// A pattern without an anchor would run its regex on every view of every text.
    #[test]
    fn every_builtin_pattern_has_an_anchor() {
        let cat = super::parse(include_str!("../../catalogue/patterns.txt")).unwrap();
        let unanchored: Vec<&str> = cat
            .always
            .iter()
            .map(|&i| cat.patterns[i].id.as_str())
            .collect();
        assert!(unanchored.is_empty(), "{unanchored:?}");
    }

    /// The hedge check compares a few bytes at each hedge with these literals; a cited
    /// pattern without them would make every hedged message search the pattern again.
    #[test]
    fn every_cited_pattern_has_prefix_literals() {
        let cat = super::parse(include_str!("../../catalogue/patterns.txt")).unwrap();
        let cited: Vec<_> = cat
            .patterns
            .iter()
            .zip(&cat.cited_prefixes)
            .filter_map(|(p, pre)| pre.as_ref().map(|pre| (p.id.as_str(), pre)))
            .collect();
        assert!(cited.len() >= 30, "{}", cited.len());
        for (id, pre) in cited {
            assert!(!pre.is_empty(), "{id} has no prefix literals");
        }
        let ignore = cat
            .patterns
            .iter()
            .position(|p| p.id == "override.ignore_previous");
        let pre = ignore.and_then(|i| cat.cited_prefixes[i].as_ref()).unwrap();
        assert!(pre.iter().any(|l| l.as_slice() == b"ignore"), "{pre:?}");
        assert!(pre.iter().any(|l| l.as_slice() == b"drop"), "{pre:?}");
    }
}
