//! Verbatim overlap between a response and the request's system prompt, in linear time.
//!
//! Words are maximal alphanumeric runs, compared case-insensitively (so re-punctuated or
//! re-cased recitations still count). Every `k`-word shingle of the system prompt is hashed into a
//! set once; the response is scanned with a rolling hash over its last `k` words, one set lookup
//! per word. Consecutive shingle hits extend one run, so a run of `h` hits is `k + h - 1` words.
//! 64-bit hashes make accidental collisions negligible; a collision could only cause a false hit.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are already splitmix-mixed 64-bit hashes; hashing them again (SipHash) was wasted work.
#[derive(Default)]
struct PreMixed(u64);

impl Hasher for PreMixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ShingleSet = HashSet<u64, BuildHasherDefault<PreMixed>>;

/// A verbatim run shared with the system prompt: length in words and byte span in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub words: usize,
    pub start: usize,
    pub end: usize,
}

const BASE: u64 = 0x100_0000_01b3;

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: spreads the polynomial hash before it meets the HashSet.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Incremental word splitter + rolling shingle hash, fed chunk by chunk.
struct Roller {
    k: usize,
    top: u64,
    window: VecDeque<(u64, usize)>,
    roll: u64,
    word: Option<(u64, usize)>,
}

impl Roller {
    fn new(k: usize) -> Self {
        let top = (1..k).fold(1u64, |a, _| a.wrapping_mul(BASE));
        Self {
            k,
            top,
            window: VecDeque::with_capacity(k + 1),
            roll: 0,
            word: None,
        }
    }

    /// Calls `on_shingle(hash, shingle_start, shingle_end)` for every complete shingle.
    fn feed(&mut self, text: &str, base: usize, on_shingle: &mut impl FnMut(u64, usize, usize)) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            // ASCII fast path: model output is mostly ASCII, and char decoding plus Unicode
            // lower-casing per character dominated the cost.
            let (alnum, lower, len) = if b.is_ascii() {
                (b.is_ascii_alphanumeric(), None, 1)
            } else {
                let c = text[i..]
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                (c.is_alphanumeric(), Some(c), c.len_utf8())
            };
            if alnum {
                let (mut h, s) = self.word.unwrap_or((0xcbf2_9ce4_8422_2325, base + i));
                match lower {
                    None => h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(BASE),
                    Some(c) => {
                        for l in c.to_lowercase() {
                            h = (h ^ u64::from(u32::from(l))).wrapping_mul(BASE);
                        }
                    }
                }
                self.word = Some((h, s));
            } else {
                self.end_word(base + i, on_shingle);
            }
            i += len;
        }
    }

    fn end_word(&mut self, at: usize, on_shingle: &mut impl FnMut(u64, usize, usize)) {
        let Some((h, s)) = self.word.take() else {
            return;
        };
        let h = mix(h);
        if self.window.len() == self.k
            && let Some((old, _)) = self.window.pop_front()
        {
            self.roll = self.roll.wrapping_sub(old.wrapping_mul(self.top));
        }
        self.roll = self.roll.wrapping_mul(BASE).wrapping_add(h);
        self.window.push_back((h, s));
        if self.window.len() == self.k {
            let start = self.window.front().map_or(s, |w| w.1);
            on_shingle(mix(self.roll), start, at);
        }
    }
}

/// Per-request tracker of runs of shingle hits against one system prompt.
pub(crate) struct OverlapTracker {
    shingles: ShingleSet,
    roller: Roller,
    run: Option<Overlap>,
    seen: usize,
}

/// Events: `Started` fires when a run first reaches `k` words (block here), `Ended` when a run
/// can grow no further (log the full run).
pub(crate) enum RunEvent {
    Started(Overlap),
    Ended(Overlap),
}

fn step(
    run: &mut Option<Overlap>,
    hit: bool,
    s: usize,
    e: usize,
    k: usize,
    events: &mut Vec<RunEvent>,
) {
    match (hit, run.as_mut()) {
        (true, Some(r)) => {
            r.words += 1;
            r.end = e;
        }
        (true, None) => {
            let r = Overlap {
                words: k,
                start: s,
                end: e,
            };
            events.push(RunEvent::Started(r));
            *run = Some(r);
        }
        (false, _) => {
            if let Some(r) = run.take() {
                events.push(RunEvent::Ended(r));
            }
        }
    }
}

impl OverlapTracker {
    /// `None` when `k == 0` or the prompt has fewer than `k` words (nothing could ever match).
    pub(crate) fn new(system: &str, k: usize) -> Option<Self> {
        if k == 0 {
            return None;
        }
        let mut shingles = ShingleSet::default();
        let mut roller = Roller::new(k);
        let mut add = |h, _, _| {
            shingles.insert(h);
        };
        roller.feed(system, 0, &mut add);
        roller.end_word(system.len(), &mut add);
        if shingles.is_empty() {
            return None;
        }
        Some(Self {
            shingles,
            roller: Roller::new(k),
            run: None,
            seen: 0,
        })
    }

    /// Feeds the next piece of the response; `base` is its offset in the response.
    pub(crate) fn feed(&mut self, text: &str, base: usize, events: &mut Vec<RunEvent>) {
        let Self {
            shingles,
            roller,
            run,
            seen,
        } = self;
        let k = roller.k;
        roller.feed(text, base, &mut |h, s, e| {
            step(run, shingles.contains(&h), s, e, k, events)
        });
        *seen = base + text.len();
    }

    pub(crate) fn finish(&mut self, events: &mut Vec<RunEvent>) {
        let Self {
            shingles,
            roller,
            run,
            seen,
        } = self;
        let k = roller.k;
        roller.end_word(*seen, &mut |h, s, e| {
            step(run, shingles.contains(&h), s, e, k, events)
        });
        if let Some(r) = run.take() {
            events.push(RunEvent::Ended(r));
        }
    }
}

/// Longest verbatim run of at least `min_words` words that `response` shares with `system`.
pub fn system_prompt_overlap(system: &str, response: &str, min_words: usize) -> Option<Overlap> {
    let mut tracker = OverlapTracker::new(system, min_words)?;
    let mut events = Vec::new();
    tracker.feed(response, 0, &mut events);
    tracker.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::Ended(r) => Some(r),
            RunEvent::Started(_) => None,
        })
        .max_by_key(|r| (r.words, std::cmp::Reverse(r.start)))
}
