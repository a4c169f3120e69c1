//! Per-query features: one linear pass over the prompt produces the MinHash signature and its
//! LSH band keys, the masked template fingerprint, the wrapper fingerprint and probe hits.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use super::config::{ExtractionConfig, LshParams, NUM_HASHES};
use super::hashing::{Fnv, SplitMix64, mix64};
use super::probes::{ProbeMatcher, ProbeSet};

/// Template tokens that make up the wrapper fingerprint (the fixed instruction a distillation
/// script puts around each varying question).
const WRAPPER_TOKENS: usize = 8;
/// Shorter prompts have no wrapper worth tracking: their prefix is the whole prompt.
const WRAPPER_MIN_TOKENS: usize = 12;
const MAX_SHINGLE_WORDS: usize = 8;

// Slot markers in the template stream; word hashes are mixed 64-bit values, so collisions with
// these small constants are negligible.
const SLOT_NUMBER: u64 = 1;
const SLOT_NAME: u64 = 2;
const SLOT_QUOTED: u64 = 3;
const SYMBOL_TAG: u64 = 1 << 40;

/// What one prompt contributes to its tenant's window. Cheap to clone; holds no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFeatures {
    /// One key per LSH band (band index mixed in, so all bands can share one counter map).
    pub band_keys: Vec<u64>,
    /// Low 8 bits of each MinHash value (b-bit minwise hashing), for similarity estimates.
    pub signature: [u8; NUM_HASHES],
    /// Hash of the prompt with numbers, quoted strings and names masked.
    pub template: u64,
    /// Masked slots in the template (numbers, names, quoted strings).
    pub template_slots: u16,
    /// Hash of the first template tokens, for prompts long enough to have a wrapper.
    pub wrapper: Option<u64>,
    /// Words seen (shingle source); short prompts skip the similarity signals.
    pub words: u32,
    pub probes: ProbeSet,
    /// The request carried a single user turn (no earlier conversation).
    pub single_turn: bool,
}

/// Stateless part of the detector: configuration, hash parameters, compiled probe patterns.
/// Shared by all tenants (`Send + Sync`); per-tenant state lives in [`super::TenantWindow`].
pub struct ExtractionDetector {
    pub(crate) cfg: ExtractionConfig,
    pub(crate) lsh: LshParams,
    mul_lo: [u32; NUM_HASHES],
    mul_hi: [u32; NUM_HASHES],
    add: [u64; NUM_HASHES],
    band_seed: u64,
    probes: ProbeMatcher,
}

impl ExtractionDetector {
    pub fn new(cfg: ExtractionConfig) -> Self {
        let lsh = LshParams::for_threshold(cfg.similarity_threshold);
        let mut rng = SplitMix64(cfg.hash_seed);
        let mut mul_lo = [0u32; NUM_HASHES];
        let mut mul_hi = [0u32; NUM_HASHES];
        let mut add = [0u64; NUM_HASHES];
        for ((lo, hi), a) in mul_lo.iter_mut().zip(mul_hi.iter_mut()).zip(add.iter_mut()) {
            // Odd 64-bit multipliers, as multiply-shift hashing requires.
            let m = rng.next_u64() | 1;
            *lo = m as u32;
            *hi = (m >> 32) as u32;
            *a = rng.next_u64();
        }
        let band_seed = rng.next_u64();
        Self {
            cfg,
            lsh,
            mul_lo,
            mul_hi,
            add,
            band_seed,
            probes: ProbeMatcher::new(),
        }
    }

    pub fn config(&self) -> &ExtractionConfig {
        &self.cfg
    }

    pub fn lsh(&self) -> LshParams {
        self.lsh
    }

    /// Extracts the features of one prompt. Linear in its length; allocates only the band key
    /// vector (and whatever the regex engine caches per thread).
    pub fn features(&self, prompt: &str, single_turn: bool) -> QueryFeatures {
        // NFKC is the identity on most prompts (all ASCII ones); skip its cost when the quick
        // check can prove that.
        let st = if is_nfkc_quick(prompt.chars()) == IsNormalized::Yes {
            self.scan(prompt.chars())
        } else {
            self.scan(prompt.chars().nfkc())
        };
        st.finish(self, self.probes.scan(prompt), single_turn)
    }

    fn scan(&self, chars: impl Iterator<Item = char>) -> Scan<'_> {
        let mut st = Scan::new(self, self.cfg.shingle_words.clamp(1, MAX_SHINGLE_WORDS));
        let mut chars = chars.peekable();
        let mut quote_close: Option<char> = None;
        let mut prev: char = ' ';
        while let Some(c) = chars.next() {
            let next_is_digit = chars.peek().is_some_and(|n| n.is_ascii_digit());
            if is_cjk(c) {
                st.end_word(quote_close.is_some());
                st.start_word(c);
                st.end_word(quote_close.is_some());
            } else if c.is_alphanumeric() {
                if !st.in_word {
                    st.start_word(c);
                } else {
                    st.push_char(c);
                }
            } else if st.in_word
                && st.word_digit
                && prev.is_ascii_digit()
                && (c == '.' || c == ',')
                && next_is_digit
            {
                // "3.14" and "1,000" are one number, so one slot.
                st.push_char(c);
            } else {
                st.end_word(quote_close.is_some());
                if let Some(close) = quote_close {
                    if c == close {
                        quote_close = None;
                    }
                } else if let Some(close) = opening_quote(c, prev, chars.peek().copied()) {
                    quote_close = Some(close);
                    st.template_token(SLOT_QUOTED, true);
                } else if !c.is_whitespace() {
                    st.template_token(SYMBOL_TAG | u64::from(u32::from(c)), false);
                    if matches!(c, '.' | '!' | '?' | ':' | ';') {
                        st.sentence_start = true;
                    }
                } else if c == '\n' {
                    st.sentence_start = true;
                }
            }
            prev = c;
        }
        st.end_word(quote_close.is_some());
        st
    }

    #[inline]
    fn minhash_update(&self, mins: &mut [u32; NUM_HASHES], h: u64) {
        // Multiply-add-shift, (a*x + b) mod 2^64 >> 32, for a 32-bit key x (the folded shingle
        // hash) written as two 32x32->64 widening multiplies: those vectorise on baseline
        // x86-64, a full 64-bit multiply does not. The high half of `a` must stay: without it
        // the hash is monotone in x and every function would pick the same minimum.
        let x = u64::from(h as u32 ^ (h >> 32) as u32);
        let lanes = mins
            .iter_mut()
            .zip(self.mul_lo.iter())
            .zip(self.mul_hi.iter())
            .zip(self.add.iter());
        for (((m, lo), hi), b) in lanes {
            let ax = (u64::from(*lo) * x).wrapping_add((u64::from(*hi) * x) << 32);
            let v = (ax.wrapping_add(*b) >> 32) as u32;
            *m = (*m).min(v);
        }
    }
}

/// Scanner state for one prompt; lives on the stack.
struct Scan<'d> {
    det: &'d ExtractionDetector,
    k: usize,
    mins: [u32; NUM_HASHES],
    ring: [u64; MAX_SHINGLE_WORDS],
    words: usize,
    last_shingle: u64,
    in_word: bool,
    word: Fnv,
    word_digit: bool,
    word_upper_first: bool,
    word_chars: usize,
    sentence_start: bool,
    template: Fnv,
    wrapper: Fnv,
    tokens: usize,
    slots: u16,
}

impl<'d> Scan<'d> {
    fn new(det: &'d ExtractionDetector, k: usize) -> Self {
        Self {
            det,
            k,
            mins: [u32::MAX; NUM_HASHES],
            ring: [0; MAX_SHINGLE_WORDS],
            words: 0,
            last_shingle: 0,
            in_word: false,
            word: Fnv::new(),
            word_digit: false,
            word_upper_first: false,
            word_chars: 0,
            sentence_start: true,
            template: Fnv::with_seed(det.cfg.hash_seed),
            wrapper: Fnv::with_seed(det.cfg.hash_seed ^ 0x77),
            tokens: 0,
            slots: 0,
        }
    }

    fn start_word(&mut self, c: char) {
        self.in_word = true;
        self.word = Fnv::new();
        self.word_digit = false;
        self.word_upper_first = c.is_uppercase();
        self.word_chars = 0;
        self.push_char(c);
    }

    #[inline]
    fn push_char(&mut self, c: char) {
        self.word_chars += 1;
        if c.is_ascii() {
            self.word_digit |= c.is_ascii_digit();
            self.word.byte(c.to_ascii_lowercase() as u8);
        } else {
            self.word_digit |= c.is_numeric();
            for l in c.to_lowercase() {
                self.word.char(l);
            }
        }
    }

    fn end_word(&mut self, quoted: bool) {
        if !self.in_word {
            return;
        }
        self.in_word = false;
        let h = self.word.finish();
        self.add_shingle_word(h);
        if quoted {
            // Quoted content is one slot, already emitted at the opening quote.
            self.sentence_start = false;
            return;
        }
        let is_name = self.word_upper_first && !self.sentence_start && self.word_chars > 1;
        let token = if self.word_digit {
            SLOT_NUMBER
        } else if is_name {
            SLOT_NAME
        } else {
            h
        };
        self.template_token(token, self.word_digit || is_name);
        self.sentence_start = false;
    }

    fn add_shingle_word(&mut self, h: u64) {
        let k = self.k;
        self.ring[self.words % k] = h;
        self.words += 1;
        if self.words >= k {
            let shingle = if k == 1 { h } else { self.shingle_of_ring() };
            // Runs of one repeated word add nothing new to a min; skip the 128 updates.
            if shingle != self.last_shingle || self.words == k {
                self.det.minhash_update(&mut self.mins, shingle);
                self.last_shingle = shingle;
            }
        }
    }

    fn shingle_of_ring(&self) -> u64 {
        let k = self.k;
        let mut f = Fnv::new();
        for i in 0..k {
            f.u64(self.ring[(self.words + i) % k]);
        }
        f.finish()
    }

    fn template_token(&mut self, token: u64, slot: bool) {
        self.template.u64(token);
        if self.tokens < WRAPPER_TOKENS {
            self.wrapper.u64(token);
        }
        self.tokens += 1;
        if slot {
            self.slots = self.slots.saturating_add(1);
        }
    }

    fn finish(
        mut self,
        det: &ExtractionDetector,
        probes: ProbeSet,
        single_turn: bool,
    ) -> QueryFeatures {
        if self.words > 0 && self.words < self.k {
            // Fewer words than one shingle: the whole prompt is the single shingle.
            let mut f = Fnv::new();
            for h in &self.ring[..self.words] {
                f.u64(*h);
            }
            let h = f.finish();
            det.minhash_update(&mut self.mins, h);
        }
        let rows = det.lsh.rows;
        let mut band_keys = Vec::with_capacity(det.lsh.bands);
        for (band, chunk) in self.mins.chunks_exact(rows).take(det.lsh.bands).enumerate() {
            let mut f = Fnv::with_seed(det.band_seed ^ mix64(band as u64));
            for v in chunk {
                f.bytes(&v.to_le_bytes());
            }
            band_keys.push(f.finish());
        }
        let mut signature = [0u8; NUM_HASHES];
        for (s, m) in signature.iter_mut().zip(self.mins.iter()) {
            *s = (*m & 0xff) as u8;
        }
        QueryFeatures {
            band_keys,
            signature,
            template: self.template.finish(),
            template_slots: self.slots,
            wrapper: (self.tokens >= WRAPPER_MIN_TOKENS).then(|| self.wrapper.finish()),
            words: u32::try_from(self.words).unwrap_or(u32::MAX),
            probes,
            single_turn,
        }
    }
}

/// Han, kana and hangul are written without spaces; each character is treated as a word so
/// that Jaccard similarity stays meaningful for those scripts.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Returns the closing character if `c` opens a quoted string here. A straight apostrophe only
/// opens a quote at a word boundary, so "don't" stays one word.
fn opening_quote(c: char, prev: char, next: Option<char>) -> Option<char> {
    match c {
        '"' => Some('"'),
        '\u{201C}' => Some('\u{201D}'),
        '\u{00AB}' => Some('\u{00BB}'),
        '`' => Some('`'),
        '\'' if !prev.is_alphanumeric() && next.is_some_and(|n| !n.is_whitespace()) => Some('\''),
        _ => None,
    }
}

/// Estimated Jaccard similarity from two 8-bit MinHash signatures. Two unrelated 8-bit values
/// agree with probability 1/256, which is removed so that unrelated prompts estimate near 0.
pub fn estimate_similarity(a: &[u8; NUM_HASHES], b: &[u8; NUM_HASHES]) -> f64 {
    let equal = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count();
    let raw = equal as f64 / NUM_HASHES as f64;
    let chance = 1.0 / 256.0;
    ((raw - chance) / (1.0 - chance)).clamp(0.0, 1.0)
}
