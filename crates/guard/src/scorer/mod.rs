//! Risk scorer: normalises each scored message, matches the pattern catalogue against
//! every view, and combines the evidence into a 0–100 score with named reasons.
//!
//! Combination is a noisy-OR over distinct pieces of evidence:
//! `score = 100 · (1 − Π (1 − pᵢ/100))`. One strong pattern (85 points) lands in the
//! block band on its own; weak hints (15–30) need company to reach warn; the score can
//! never pass 100, and repeating the same phrase adds nothing (evidence is per pattern
//! id), so long texts are not punished for being long.

mod catalogue;
mod hedged;
mod quoted;
mod types;

use crate::classifier::second::{self, SecondTier};
use crate::classifier::{self, Classifier};
use crate::normalize::{Normalized, Normalizer, ObfuscationStats, ViewKind};
pub use catalogue::{CatalogueError, FACTORS};
pub use types::{Assessment, ChatMessage, Decision, GuardConfig, Reason, Role, Thresholds};

/// The built-in pattern catalogue (its hash is recorded in trained models).
pub const CATALOGUE: &str = include_str!("../../catalogue/patterns.txt");

/// Nested payloads (base64 in base64, tags inside decoded text) are followed this deep.
const MAX_DEPTH: u8 = 2;
/// Total bytes of decoded payload scanned per request.
const DECODE_BUDGET: usize = 64 * 1024;

/// Computed (non-catalogue) evidence and its points.
const HIDDEN_INSTRUCTION: (&str, &str, u8) = ("obfuscation", "obfuscation.hidden_instruction", 35);
const DISGUISED_MATCH: (&str, &str, u8) = ("obfuscation", "obfuscation.disguised_text", 20);
const TAG_SMUGGLING: (&str, &str, u8) = ("obfuscation", "obfuscation.tag_smuggling", 50);
const BIDI_CONTROLS: (&str, &str, u8) = ("obfuscation", "obfuscation.bidi_controls", 10);
const INVISIBLE_FLOOD: (&str, &str, u8) = ("message_anomalies", "anomaly.invisible_flood", 10);
const REPEATED: (&str, &str, u8) = (
    "conversation_patterns",
    "conversation.repeated_attempts",
    15,
);
const INDIRECT: (&str, &str, u8) = (
    "conversation_patterns",
    "conversation.injection_in_tool_result",
    20,
);

/// Tag text shorter than this is an emoji flag sequence (e.g. 🏴 + "gbeng"), not a message.
const MIN_TAG_TEXT: usize = 8;

/// The detection engine. Build once with [`Guard::new`] and share it (`Arc<Guard>`).
#[derive(Debug, Clone)]
pub struct Guard {
    cfg: GuardConfig,
    cat: catalogue::Catalogue,
    norm: Normalizer,
    learned: Option<Learned>,
    second: Option<std::sync::Arc<dyn SecondTier>>,
}

/// The learned detector and how much its points count (1.0 = as calibrated).
#[derive(Debug, Clone)]
struct Learned {
    model: std::sync::Arc<Classifier>,
    weight: f32,
}

/// Per-request scratch state.
struct Scan {
    /// Per pattern: 1 = seen in a plain view, 2 = seen only in a derived/hidden view.
    seen: Vec<u8>,
    stats: ObfuscationStats,
    budget: usize,
    tag_text: usize,
    bufs: Vec<Normalized>,
    matches: Vec<usize>,
    flags: Vec<bool>,
    /// Where a word follows a negation or reporting verb in the current view (`hedged`).
    sites: Vec<usize>,
    /// The learned detector's verdict so far (fed the same normalised text).
    learned: classifier::Running,
}

/// Hedge sites compared one by one with the matched patterns' prefixes; beyond this the
/// patterns are searched again instead (see `scan_text`).
const MAX_SITES: usize = 64;

const PLAIN: u8 = 1;
const HIDDEN: u8 = 2;
/// Seen only as a mention, not a use: a short quotation inside longer text, or right
/// after a negation or a reporting verb (`quoted`, `hedged`).
const MENTIONED: u8 = 3;

impl Guard {
    pub fn new(cfg: GuardConfig) -> Result<Guard, CatalogueError> {
        Self::with_catalogue(cfg, CATALOGUE)
    }

    /// Builds a guard from catalogue text in the same format as the built-in one.
    pub fn with_catalogue(cfg: GuardConfig, src: &str) -> Result<Guard, CatalogueError> {
        let cat = catalogue::parse(src)?;
        let norm = Normalizer::new().map_err(|e| CatalogueError::Normalizer(e.to_string()))?;
        Ok(Guard {
            cfg,
            cat,
            norm,
            learned: None,
            second: None,
        })
    }

    /// Adds the learned detector: its points join the heuristic evidence as the
    /// `classifier` factor. `weight` scales them (0 keeps it measuring but silent, 1 is
    /// as calibrated, at most 2).
    pub fn with_classifier(mut self, model: std::sync::Arc<Classifier>, weight: f32) -> Guard {
        let weight = if weight.is_finite() {
            weight.clamp(0.0, 2.0)
        } else {
            0.0
        };
        self.learned = Some(Learned { model, weight });
        self
    }

    /// Adds the second learned tier (the semantic encoder): asked only for prompts the first
    /// tier finds borderline, its points join as the `semantic` factor (max, like tier 1).
    pub fn with_second_tier(mut self, tier: std::sync::Arc<dyn SecondTier>) -> Guard {
        self.second = Some(tier);
        self
    }

    pub fn has_second_tier(&self) -> bool {
        self.second.is_some()
    }

    pub fn classifier(&self) -> Option<&Classifier> {
        self.learned.as_ref().map(|l| l.model.as_ref())
    }

    /// The compiled catalogue as `(id, factor, lang, points)`, in file order.
    /// Ids of patterns with no literal prefix to pre-filter on (they run on every text).
    pub fn unanchored(&self) -> Vec<&str> {
        self.cat
            .always
            .iter()
            .filter_map(|&i| self.cat.patterns.get(i))
            .map(|p| p.id.as_str())
            .collect()
    }

    pub fn patterns(&self) -> impl Iterator<Item = (&str, &'static str, &str, u8)> {
        self.cat
            .patterns
            .iter()
            .map(|p| (p.id.as_str(), p.factor, p.lang.as_str(), p.points))
    }

    pub fn score_text(&self, text: &str) -> Assessment {
        self.score(&[ChatMessage {
            role: Role::User,
            text,
        }])
    }

    pub fn score(&self, msgs: &[ChatMessage<'_>]) -> Assessment {
        let n = self.cat.patterns.len();
        let mut scan = Scan {
            seen: vec![0; n],
            stats: ObfuscationStats::default(),
            budget: DECODE_BUDGET,
            tag_text: 0,
            bufs: Vec::new(),
            matches: Vec::new(),
            flags: Vec::new(),
            sites: Vec::new(),
            learned: classifier::Running::default(),
        };
        let mut per_msg = vec![0u8; n];
        let mut attempts = 0u32;
        let mut tool_hit = false;
        for m in msgs {
            if !m.role.scored(self.cfg.score_system) {
                continue;
            }
            per_msg.iter_mut().for_each(|s| *s = 0);
            std::mem::swap(&mut scan.seen, &mut per_msg);
            self.scan_text(m.text, 0, false, &mut scan);
            std::mem::swap(&mut scan.seen, &mut per_msg);
            let mut attack_like = false;
            for (i, &s) in per_msg.iter().enumerate() {
                if s == 0 {
                    continue;
                }
                let p = &self.cat.patterns[i];
                attack_like |= p.points >= 50 && s != MENTIONED;
                scan.seen[i] = merge(scan.seen[i], s);
            }
            attempts += u32::from(attack_like);
            tool_hit |= attack_like && m.role == Role::Tool;
        }
        let learned = scan.learned;
        let mut a = self.combine(scan, attempts, tool_hit);
        if let Some(l) = &self.learned {
            let s = l.model.finish(learned, &a, l.weight);
            classifier::apply(&mut a, s);
        }
        if let Some(t) = &self.second
            && second::borderline(&a, Thresholds::default().block)
        {
            let texts = second::texts(msgs, self.cfg.score_system);
            if !texts.is_empty() {
                second::apply(&mut a, t.score(&texts));
            }
        }
        a
    }

    fn scan_text(&self, text: &str, depth: u8, hidden: bool, scan: &mut Scan) {
        let mut norm = scan.bufs.pop().unwrap_or_default();
        self.norm
            .run(text, depth < MAX_DEPTH, &mut scan.budget, &mut norm);
        if let Some(l) = &self.learned {
            // The model reads the message's own text and, as further chunks, every payload
            // decoded or unhidden from it (tag characters, base64, ciphers): an instruction
            // smuggled past the reader should not be judged only by the patterns. The view
            // is the one it was trained on (see `Classifier::normalize`).
            l.model.observe(&mut scan.learned, norm.latin_view());
        }
        for (kind, view) in norm.views() {
            self.candidates(view, scan);
            let seen = &scan.seen;
            // A pattern already seen in a plain view cannot change its verdict.
            scan.matches.retain(|&i| {
                seen.get(i) != Some(&PLAIN)
                    && self.cat.regexes.get(i).is_some_and(|r| r.is_match(view))
            });
            let mark = if hidden || kind != ViewKind::Base {
                HIDDEN
            } else {
                PLAIN
            };
            // The message's own words can hold a mention, also once folded: "20th" read as
            // leetspeak must not turn a hedged phrase into a hidden one. A decoded payload or a
            // ROT13 view cannot. Quote characters and hedges are looked for once per view,
            // and only when an override or extraction pattern matched, so that most prompts,
            // attacks included, never search a pattern twice.
            let citable = |i: usize| self.cat.cited_prefixes.get(i).and_then(Option::as_ref);
            let may_mention = !hidden
                && kind != ViewKind::Rot13
                && scan.matches.iter().any(|&i| citable(i).is_some());
            // Quotations count only as written: folding can make look-alike text into a
            // quoted phrase that was never readable as one.
            let may_quote =
                may_mention && kind == ViewKind::Base && view.contains(quoted::is_quote);
            scan.sites.clear();
            if may_mention {
                hedged::sites(view, &mut scan.sites);
            }
            // Past a few dozen hedges (a text built of "not a not a …"), comparing every site
            // with every pattern's prefixes would cost more than searching the pattern again.
            let many_sites = scan.sites.len() > MAX_SITES;
            for &i in &scan.matches {
                // A folded view can keep a mention the plain text already showed (the same
                // hedged phrase, read again as leetspeak), but cannot create one: an
                // obfuscated quotation is hidden, not cited.
                let plain_verdict = kind == ViewKind::Base || scan.seen.get(i) == Some(&MENTIONED);
                let mentioned =
                    plain_verdict
                        && citable(i).is_some_and(|prefixes| {
                            let hedged_here = |&p: &usize| {
                                let rest = view.as_bytes().get(p..).unwrap_or_default();
                                prefixes.is_empty() || prefixes.iter().any(|l| rest.starts_with(l))
                            };
                            (may_quote || many_sites || scan.sites.iter().any(hedged_here))
                                && self.cat.regexes.get(i).is_some_and(|r| {
                                    quoted::mention(view, r, may_quote) == Some(true)
                                })
                        });
                let m = if mentioned { MENTIONED } else { mark };
                if let Some(s) = scan.seen.get_mut(i) {
                    *s = merge(*s, m);
                }
            }
        }
        scan.stats.add(&norm.stats);
        let hidden_text = std::mem::take(&mut norm.hidden);
        let decoded = std::mem::take(&mut norm.decoded);
        scan.bufs.push(norm);
        if depth < MAX_DEPTH {
            if !hidden_text.is_empty() {
                scan.tag_text += hidden_text.len();
                self.scan_text(&hidden_text, depth + 1, true, scan);
            }
            for (_, d) in &decoded {
                self.scan_text(d, depth + 1, true, scan);
            }
        }
    }

    /// Ids of the patterns whose anchor fires on `text` (lowercased as-is, no other
    /// normalisation): a tuning aid for finding anchors that fire on ordinary prose.
    pub fn prefilter_hits(&self, text: &str) -> Vec<&str> {
        let mut scan = Scan {
            seen: Vec::new(),
            stats: ObfuscationStats::default(),
            budget: 0,
            tag_text: 0,
            bufs: Vec::new(),
            matches: Vec::new(),
            flags: Vec::new(),
            sites: Vec::new(),
            learned: classifier::Running::default(),
        };
        self.candidates(&text.to_lowercase(), &mut scan);
        let ids = scan
            .matches
            .iter()
            .filter_map(|&i| self.cat.patterns.get(i));
        ids.map(|p| p.id.as_str()).collect()
    }

    /// Patterns whose anchor literal occurs in `view` (plus anchor-less ones), deduplicated.
    fn candidates(&self, view: &str, scan: &mut Scan) {
        scan.matches.clear();
        scan.flags.clear();
        scan.flags.resize(self.cat.regexes.len(), false);
        for m in self.cat.anchors.find_overlapping_iter(view) {
            if let Some(&p) = self.cat.anchor_owner.get(m.pattern().as_usize())
                && let Some(f) = scan.flags.get_mut(p)
                && !*f
            {
                *f = true;
                scan.matches.push(p);
            }
        }
        scan.matches.extend(self.cat.always.iter().copied());
    }

    fn combine(&self, scan: Scan, attempts: u32, tool_hit: bool) -> Assessment {
        let mut stats = scan.stats;
        let mut reasons: Vec<Reason> = Vec::new();
        let mut any_hit = false;
        for (i, &s) in scan.seen.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let p = &self.cat.patterns[i];
            if s == HIDDEN {
                stats.hidden_hits += 1;
            }
            // A mention (quoted or hedged) still counts, at a third of its points: enough to add to other
            // evidence, too little to warn on its own.
            let points = if s == MENTIONED {
                p.points / 3
            } else {
                any_hit = true;
                p.points
            };
            reasons.push(Reason {
                factor: p.factor,
                pattern: p.id.clone(),
                points,
            });
        }
        let mut add = |(factor, id, points): (&'static str, &str, u8)| {
            reasons.push(Reason {
                factor,
                pattern: id.to_owned(),
                points,
            });
        };
        if stats.hidden_hits > 0 {
            add(HIDDEN_INSTRUCTION);
        } else if any_hit
            && stats.invisible + stats.confusables + stats.compat_forms + stats.combining >= 3
        {
            add(DISGUISED_MATCH);
        }
        if scan.tag_text >= MIN_TAG_TEXT {
            add(TAG_SMUGGLING);
        }
        if stats.bidi > 0 {
            add(BIDI_CONTROLS);
        }
        if stats.invisible >= 20 {
            add(INVISIBLE_FLOOD);
        }
        if attempts >= 2 {
            add(REPEATED);
        }
        if tool_hit {
            add(INDIRECT);
        }
        reasons.sort_by(|a, b| {
            b.points
                .cmp(&a.points)
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        Assessment {
            score: noisy_or(&reasons),
            reasons,
            obfuscation: stats,
            learned: None,
            semantic: None,
            softened_from: 0,
        }
    }
}

/// How a pattern was seen, over views and messages: a plain sighting wins over a hidden one,
/// and either wins over a mention (quoted or hedged).
fn merge(old: u8, new: u8) -> u8 {
    let rank = |s: u8| match s {
        PLAIN => 3,
        HIDDEN => 2,
        MENTIONED => 1,
        _ => 0,
    };
    if rank(new) > rank(old) { new } else { old }
}

/// `100 · (1 − Π (1 − pᵢ/100))`, rounded, clamped to 0..=100.
fn noisy_or(reasons: &[Reason]) -> u8 {
    let keep: f64 = reasons
        .iter()
        .map(|r| 1.0 - f64::from(r.points.min(100)) / 100.0)
        .product();
    let s = (100.0 * (1.0 - keep)).round();
    s.clamp(0.0, 100.0) as u8
}
