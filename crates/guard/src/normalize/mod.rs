//! Text normalisation: turns what a user typed into the views a pattern scanner should
//! see, and counts every trick that was undone along the way.
//!
//! The base view is NFKC, lowercased, with invisible characters removed. Derived views
//! (look-alikes folded, separators collapsed, leetspeak folded, rot13) are built only when
//! their trick is present. Hidden text (Unicode tags) and encoded payloads (base64, hex,
//! %xx) are handed back as separate texts for the caller to normalise and scan in turn.

mod chars;
mod cipher;
mod decode;
mod reshape;

use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use chars::Class;
pub use decode::Encoding;

/// How often each obfuscation technique was seen in the scored messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObfuscationStats {
    /// Zero-width characters, soft hyphens, variation selectors and fillers removed.
    pub invisible: u32,
    /// Bidi embedding/override/isolate controls removed.
    pub bidi: u32,
    /// Unicode tag characters (U+E0000 block) removed; their ASCII is scanned separately.
    pub tag_chars: u32,
    /// Fullwidth, mathematical, circled or squared letters that NFKC rewrote.
    pub compat_forms: u32,
    /// Look-alike letters (Cyrillic, Greek, small capitals ...) folded to ASCII.
    pub confusables: u32,
    /// Combining marks stacked on ASCII letters ("zalgo") removed.
    pub combining: u32,
    /// Runs of single letters joined by separators (`i-g-n-o-r-e`).
    pub separator_runs: u32,
    /// Words mixing letters with leetspeak digits/symbols (`1gn0r3`).
    pub leet_tokens: u32,
    /// Decoded base64 payloads that turned out to be text.
    pub base64: u32,
    /// Decoded hex payloads that turned out to be text.
    pub hex: u32,
    /// Percent-encoded texts decoded.
    pub url_encoded: u32,
    /// Texts that looked rot13-encoded and were decoded.
    pub rot13: u32,
    /// Binary, Morse, NATO-spelled, A1Z26, Caesar-shifted or reversed texts decoded.
    #[serde(default)]
    pub ciphers: u32,
    /// Catalogue patterns that matched only after one of the above was undone.
    pub hidden_hits: u32,
}

impl ObfuscationStats {
    pub(crate) fn add(&mut self, o: &ObfuscationStats) {
        self.invisible += o.invisible;
        self.bidi += o.bidi;
        self.tag_chars += o.tag_chars;
        self.compat_forms += o.compat_forms;
        self.confusables += o.confusables;
        self.combining += o.combining;
        self.separator_runs += o.separator_runs;
        self.leet_tokens += o.leet_tokens;
        self.base64 += o.base64;
        self.hex += o.hex;
        self.url_encoded += o.url_encoded;
        self.rot13 += o.rot13;
        self.ciphers += o.ciphers;
        self.hidden_hits += o.hidden_hits;
    }
}

/// Which transformation produced a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    Base,
    Confusables,
    Separators,
    Leet,
    Rot13,
}

/// Output buffers of [`Normalizer::run`]; reuse one across calls to avoid reallocating.
#[derive(Debug, Default)]
pub struct Normalized {
    /// NFKC, lowercased, invisible characters removed.
    pub base: String,
    confusable: String,
    separators: String,
    leet_i: String,
    leet_l: String,
    rot13: String,
    /// ASCII recovered from Unicode tag characters, to be scanned as its own text.
    pub hidden: String,
    /// Decoded payloads, to be normalised and scanned as their own texts.
    pub decoded: Vec<(Encoding, String)>,
    pub stats: ObfuscationStats,
    stripped: String,
}

impl Normalized {
    /// The base view first, then every derived view that was built.
    pub fn views(&self) -> impl Iterator<Item = (ViewKind, &str)> {
        [
            (ViewKind::Base, self.base.as_str()),
            (ViewKind::Confusables, self.confusable.as_str()),
            (ViewKind::Separators, self.separators.as_str()),
            (ViewKind::Leet, self.leet_i.as_str()),
            (ViewKind::Leet, self.leet_l.as_str()),
            (ViewKind::Rot13, self.rot13.as_str()),
        ]
        .into_iter()
        .filter(|(k, s)| *k == ViewKind::Base || !s.is_empty())
    }

    /// The base view with look-alike letters folded to ASCII (when any were): what the
    /// learned detector reads.
    pub fn latin_view(&self) -> &str {
        if self.confusable.is_empty() {
            &self.base
        } else {
            &self.confusable
        }
    }
}

/// Compiled once; cheap to share.
#[derive(Debug, Clone)]
pub struct Normalizer {
    keywords: cipher::Keywords,
}

impl Normalizer {
    pub fn new() -> Result<Self, aho_corasick::BuildError> {
        Ok(Normalizer {
            keywords: cipher::Keywords::new()?,
        })
    }

    /// Normalises `text` into `out`. `budget` caps the bytes of decoded payload produced
    /// (shared across a whole request, so nesting cannot multiply work).
    pub fn run(&self, text: &str, decode: bool, budget: &mut usize, out: &mut Normalized) {
        out.stats = ObfuscationStats::default();
        out.hidden.clear();
        out.decoded.clear();
        self.base_view(text, out);

        let mut conf = std::mem::take(&mut out.confusable);
        let (ascii_letters, other_letters, any_conf) = letter_mix(&out.base);
        out.stats.confusables = if any_conf {
            reshape::fold_confusables(&out.base, ascii_letters > other_letters, &mut conf)
        } else {
            conf.clear();
            0
        };
        out.confusable = conf;

        let latin = if out.confusable.is_empty() {
            &out.base
        } else {
            &out.confusable
        };
        out.stats.separator_runs = reshape::collapse_separators(latin, &mut out.separators);
        let src = if out.separators.is_empty() {
            latin
        } else {
            &out.separators
        };
        out.stats.leet_tokens = reshape::fold_leet(src, b'i', &mut out.leet_i);
        if src.contains('1') && out.stats.leet_tokens > 0 {
            reshape::fold_leet(src, b'l', &mut out.leet_l);
        } else {
            out.leet_l.clear();
        }
        // One keyword pass serves ROT13 (a view, like the other spellings) and the other
        // shifts and reversal (decoded payloads, below).
        let hits = self.keywords.hits(src);
        if hits[13] > 0 {
            reshape::rot13_into(src, &mut out.rot13);
            out.stats.rot13 = 1;
        } else {
            out.rot13.clear();
        }

        if decode {
            let (decoded, stats) = (&mut out.decoded, &mut out.stats);
            let mut push = |enc: Encoding, s: &str| {
                match enc {
                    Encoding::Base64 => stats.base64 += 1,
                    Encoding::Hex => stats.hex += 1,
                    Encoding::Url => stats.url_encoded += 1,
                    Encoding::Cipher => stats.ciphers += 1,
                }
                decoded.push((enc, s.to_owned()));
            };
            decode::find_encoded(text, budget, &mut push);
            // Deciphered texts pass the same readability check and budget as decoded ones.
            cipher::find(src, &hits, |s| {
                decode::emit(Encoding::Cipher, s.as_bytes(), budget, &mut push);
            });
        }
    }

    fn base_view(&self, text: &str, out: &mut Normalized) {
        let base = &mut out.base;
        base.clear();
        base.reserve(text.len());
        if text.is_ascii() {
            // ASCII is already NFKC and holds nothing invisible except control bytes.
            base.push_str(text);
            base.make_ascii_lowercase();
            return;
        }
        let stripped = &mut out.stripped;
        stripped.clear();
        stripped.reserve(text.len());
        let st = &mut out.stats;
        for c in text.chars() {
            match chars::classify(c) {
                Class::Visible => {
                    if chars::is_compat_letter(c) {
                        st.compat_forms += 1;
                    }
                    stripped.push(c);
                }
                Class::Invisible => st.invisible += 1,
                Class::Bidi => st.bidi += 1,
                Class::Tag(a) => {
                    st.tag_chars += 1;
                    if let Some(a) = a {
                        out.hidden.push(a as char);
                    }
                }
            }
        }
        let mut prev_ascii_letter = false;
        let mut push = |c: char, st: &mut ObfuscationStats| {
            if chars::is_combining_mark(c) && prev_ascii_letter {
                st.combining += 1;
                return;
            }
            prev_ascii_letter = c.is_ascii_alphabetic();
            // Typographic apostrophes would otherwise split "don’t" from "don't".
            let c = if matches!(c, '\u{2018}' | '\u{2019}' | '\u{02BC}') {
                '\''
            } else {
                c
            };
            if c.is_ascii() {
                base.push(c.to_ascii_lowercase());
            } else {
                base.extend(c.to_lowercase());
            }
        };
        if is_nfkc_quick(stripped.chars()) == IsNormalized::Yes {
            for c in stripped.chars() {
                push(c, st);
            }
        } else {
            for c in stripped.nfkc() {
                push(c, st);
            }
        }
    }
}

/// Counts ASCII vs other letters and whether any look-alike is present.
fn letter_mix(s: &str) -> (usize, usize, bool) {
    if s.is_ascii() {
        return (s.len(), 0, false);
    }
    let (mut ascii, mut other, mut conf) = (0usize, 0usize, false);
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            ascii += 1;
        } else if c.is_alphabetic() {
            other += 1;
            conf |= chars::confusable(c).is_some();
        }
    }
    (ascii, other, conf)
}
