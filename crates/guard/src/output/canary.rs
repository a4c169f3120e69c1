//! Canary tokens: a per-request marker planted in the system prompt. If it shows up in the
//! output, the model is reciting its instructions.
//!
//! Form matters. The marker is `si-canary-` plus 26 lowercase base32 characters (128 random bits):
//! lowercase letters and digits 2–7 tokenise into a handful of ordinary BPE pieces, so a model can
//! and will reproduce it, but nobody can guess it, and no benign text contains it. Models copy
//! tokens imperfectly — upper-casing, inserting spaces or hyphens between pieces, wrapping in
//! markdown, zero-width characters from an evasive prompt ("spell it with spaces") — so the match
//! is on the 26-character body only, case-insensitive, tolerating up to `MAX_GAP` separator
//! characters between any two body characters. The `si-canary-` prefix is for humans reading logs.

use super::detectors::Probe;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const PREFIX: &str = "si-canary-";
const BODY_LEN: usize = 26;
const MIN_BODY: usize = 12;
/// Separator characters tolerated between two body characters.
pub(crate) const MAX_GAP: usize = 3;

/// A fresh canary from caller-supplied randomness (e.g. `rand::random()`); pure, so testable.
pub fn make_canary(random: [u8; 16]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + BODY_LEN);
    out.push_str(PREFIX);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in random {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The line to append to the request's system prompt. Neutral wording: telling the model to
/// "never reveal" the marker would just teach an extraction prompt what to strip.
pub fn canary_instruction(canary: &str) -> String {
    format!("\n\n[session-id: {canary}]")
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '_' | '.' | ',' | '\'' | '"' | '`' | '*' | '|' | '\u{200B}'
                ..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
        )
}

enum Attempt {
    Match(usize),
    Fail,
    Partial,
}

/// Matches one request's canary body in (possibly mangled) output.
pub(crate) struct CanaryMatcher {
    body: Vec<u8>,
}

impl CanaryMatcher {
    /// `None` when the canary has too few alphanumerics to be distinctive.
    pub(crate) fn new(canary: &str) -> Option<Self> {
        let body = canary.strip_prefix(PREFIX).unwrap_or(canary);
        let body: Vec<u8> = body
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_lowercase())
            .collect();
        (body.len() >= MIN_BODY).then_some(Self { body })
    }

    fn attempt(&self, hay: &str, start: usize) -> Attempt {
        let mut chars = hay[start..].char_indices().peekable();
        for (k, &want) in self.body.iter().enumerate() {
            let mut gaps = 0;
            loop {
                match chars.peek() {
                    None => return Attempt::Partial,
                    Some(&(_, c)) if k > 0 && is_separator(c) => {
                        if gaps == MAX_GAP {
                            return Attempt::Fail;
                        }
                        gaps += 1;
                        chars.next();
                    }
                    Some(&(_, c))
                        if c.is_ascii() && c.to_ascii_lowercase() as u32 == u32::from(want) =>
                    {
                        chars.next();
                        break;
                    }
                    Some(_) => return Attempt::Fail,
                }
            }
        }
        let end = chars.peek().map_or(hay.len(), |&(i, _)| start + i);
        Attempt::Match(end)
    }

    pub(crate) fn probe(&self, buf: &str, from: usize, fin: bool) -> Probe {
        let (lo, hi) = match self.body.first() {
            Some(&b) => (b, b.to_ascii_uppercase()),
            None => return Probe::Done,
        };
        for (i, &b) in buf.as_bytes().iter().enumerate().skip(from) {
            if b != lo && b != hi {
                continue;
            }
            // Cheap reject before the full attempt: an alphanumeric is never a separator, so a
            // wrong one right after the first character already fails.
            let second = buf.as_bytes().get(i + 1).copied();
            if let (Some(n), Some(&want)) = (second, self.body.get(1))
                && n.is_ascii_alphanumeric()
                && n.to_ascii_lowercase() != want
            {
                continue;
            }
            match self.attempt(buf, i) {
                Attempt::Match(end) => {
                    return Probe::Found {
                        pos: i,
                        start: i,
                        end,
                    };
                }
                Attempt::Partial if !fin => return Probe::Pending(i),
                _ => {}
            }
        }
        if fin {
            Probe::Done
        } else {
            Probe::Pending(buf.len())
        }
    }
}
