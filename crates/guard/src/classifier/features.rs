//! Features of the learned detector: hashed word uni/bigrams and character 3–5-grams of the
//! normalised text, cut into overlapping chunks, plus a few dense inputs taken from the
//! heuristic assessment (factor points, obfuscation counts).
//!
//! Everything is a pure function of the text, so training and serving compute exactly the
//! same numbers. Hashing is fixed (no per-process seed): a model file trained on one machine
//! scores the same on another.
//!
//! Each group of sparse features is scaled by `1/sqrt(occurrences)` within its chunk, so a
//! chunk's logit does not grow with its length; chunking keeps an instruction buried in a
//! long document from being diluted by the text around it (the verdict is the worst chunk).

use crate::normalize::ObfuscationStats;
use crate::scorer::{Assessment, FACTORS};

/// Bumped whenever the meaning of a feature changes; a model trained for another version
/// is refused at load time.
pub const FEATURE_VERSION: u32 = 3;

/// Chunk length and overlap, in bytes of normalised text. Most prompts fit one chunk; an
/// instruction up to `CHUNK_OVERLAP` bytes long is always seen whole by some chunk.
pub const CHUNK_BYTES: usize = 512;
pub const CHUNK_OVERLAP: usize = 128;

/// Character n-gram lengths (bytes of UTF-8).
const CHAR_MIN: usize = 4;
const CHAR_MAX: usize = 5;

/// Salts keep the groups apart inside one hash table.
const SALT_WORD: u64 = 0x6a09_e667_f3bc_c908;
const SALT_BIGRAM: u64 = 0xc2b2_ae3d_27d4_eb4f;
const SALT_CHAR: u64 = 0x1656_67b1_9e37_79f9;

/// Names of the dense inputs, in order. Stored in the model file and checked at load time,
/// so a model trained with another factor list cannot be applied silently.
pub fn dense_names() -> Vec<String> {
    let mut v: Vec<String> = FACTORS.iter().map(|(f, _)| format!("factor.{f}")).collect();
    v.push("heuristic.score".to_string());
    for name in OBFUSCATION_NAMES {
        v.push(format!("obfuscation.{name}"));
    }
    v
}

const OBFUSCATION_NAMES: [&str; 13] = [
    "invisible",
    "bidi",
    "tag_chars",
    "compat_forms",
    "confusables",
    "combining",
    "separator_runs",
    "leet_tokens",
    "base64",
    "hex",
    "url_encoded",
    "rot13",
    "hidden_hits",
];

pub fn dense_len() -> usize {
    FACTORS.len() + 1 + OBFUSCATION_NAMES.len()
}

/// The dense inputs for one request, each in `0..=1`.
pub fn dense_features(a: &Assessment, out: &mut Vec<f32>) {
    out.clear();
    out.extend(dense_values(a));
}

/// The dense inputs, in `dense_names` order, without allocating.
pub fn dense_values(a: &Assessment) -> impl Iterator<Item = f32> + '_ {
    let factors = FACTORS.iter().map(|(f, _)| {
        let max = a
            .reasons
            .iter()
            .filter(|r| r.factor == *f)
            .map(|r| r.points)
            .max()
            .unwrap_or(0);
        f32::from(max) / 100.0
    });
    let o: &ObfuscationStats = &a.obfuscation;
    let counts = [
        o.invisible,
        o.bidi,
        o.tag_chars,
        o.compat_forms,
        o.confusables,
        o.combining,
        o.separator_runs,
        o.leet_tokens,
        o.base64,
        o.hex,
        o.url_encoded,
        o.rot13,
        o.hidden_hits,
    ];
    // Counts matter on a log scale: 1 vs 0 says much more than 101 vs 100.
    factors
        .chain(std::iter::once(f32::from(a.score) / 100.0))
        .chain(
            counts
                .into_iter()
                .map(|c| ((1.0 + c as f32).ln() / 4.0).min(1.0)),
        )
}

/// Byte ranges of the chunks of `text`, on char boundaries, overlapping by `CHUNK_OVERLAP`.
/// Empty text yields one empty chunk so every message gets a verdict.
pub fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut end = (start + CHUNK_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = text.get(start..end).unwrap_or("");
        if end >= text.len() {
            done = true;
        } else {
            let mut next = end.saturating_sub(CHUNK_OVERLAP).max(start + 1);
            while !text.is_char_boundary(next) {
                next += 1;
            }
            start = next;
        }
        Some(chunk)
    })
}

/// Multiplicative (Fibonacci) hashing: the top bits of the product depend on every key
/// bit, and one multiply per feature is a third of a full finaliser's cost.
#[inline]
fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline]
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which group a hashed feature belongs to (each group is scaled on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Word,
    Char,
}

/// Calls `f(group, bucket)` for every feature occurrence of `chunk` and returns the
/// occurrence counts `(words, chars)`. `bits` is the log2 of the table size.
#[inline]
pub fn for_each_feature(chunk: &str, bits: u32, mut f: impl FnMut(Group, usize)) -> (u32, u32) {
    let shift = 64 - bits;
    let bucket = |h: u64| (mix(h) >> shift) as usize;
    let bytes = chunk.as_bytes();
    let (mut nw, mut nc) = (0u32, 0u32);

    // Words: maximal runs of alphanumeric characters (any script).
    let mut prev: Option<u64> = None;
    let mut start: Option<usize> = None;
    let end = std::iter::once((bytes.len(), ' '));
    for (i, c) in chunk.char_indices().chain(end) {
        let in_word = c.is_alphanumeric() || c == '\'';
        match (in_word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                start = None;
                let h = fnv1a(bytes.get(s..i).unwrap_or_default());
                f(Group::Word, bucket(h ^ SALT_WORD));
                nw += 1;
                if let Some(p) = prev {
                    f(Group::Word, bucket(p.rotate_left(17) ^ h ^ SALT_BIGRAM));
                    nw += 1;
                }
                prev = Some(h);
            }
            _ => {}
        }
    }

    // Character n-grams over the bytes, with runs of whitespace read as one space.
    let mut reg: u64 = u64::from(b' ');
    let mut filled = 1usize;
    let mut last_space = true;
    for &b in bytes {
        let b = if b.is_ascii_whitespace() { b' ' } else { b };
        if b == b' ' && last_space {
            continue;
        }
        last_space = b == b' ';
        reg = (reg << 8) | u64::from(b);
        filled += 1;
        // Constant bounds let the compiler unroll this with constant masks.
        for n in CHAR_MIN..=CHAR_MAX {
            if n > filled {
                break;
            }
            let key = reg & (u64::MAX >> (64 - 8 * n));
            f(Group::Char, bucket(key ^ SALT_CHAR ^ ((n as u64) << 56)));
            nc += 1;
        }
    }
    (nw, nc)
}

/// One chunk as a sparse vector (bucket, value), merged and sorted: the trainer's view.
pub fn sparse(chunk: &str, bits: u32) -> Vec<(u32, f32)> {
    let mut words = Vec::new();
    let mut chars = Vec::new();
    let (nw, nc) = for_each_feature(chunk, bits, |g, b| match g {
        Group::Word => words.push(b as u32),
        Group::Char => chars.push(b as u32),
    });
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(words.len() + chars.len());
    let sw = if nw > 0 {
        1.0 / (nw as f32).sqrt()
    } else {
        0.0
    };
    let sc = if nc > 0 {
        1.0 / (nc as f32).sqrt()
    } else {
        0.0
    };
    out.extend(words.iter().map(|&b| (b, sw)));
    out.extend(chars.iter().map(|&b| (b, sc)));
    out.sort_by_key(|e| e.0);
    let mut merged: Vec<(u32, f32)> = Vec::with_capacity(out.len());
    for (b, v) in out {
        match merged.last_mut() {
            Some(last) if last.0 == b => last.1 += v,
            _ => merged.push((b, v)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_text_with_overlap() {
        let text = "é".repeat(1500); // 3000 bytes, two-byte chars: several chunks
        let parts: Vec<&str> = chunks(&text).collect();
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| p.len() <= CHUNK_BYTES));
        assert!(text.ends_with(parts[parts.len() - 1]));
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert!(total >= text.len());
        assert_eq!(chunks("").count(), 1);
        assert_eq!(chunks("short").collect::<Vec<_>>(), vec!["short"]);
    }

    #[test]
    fn features_are_counted_and_scaled() {
        let v = sparse("ignore all previous", 16);
        let (nw, nc) = for_each_feature("ignore all previous", 16, |_, _| {});
        assert_eq!(nw, 5); // 3 words + 2 bigrams
        assert!(nc > 30);
        let total: f32 = v.iter().map(|e| e.1).sum();
        let expect = nw as f32 / (nw as f32).sqrt() + nc as f32 / (nc as f32).sqrt();
        assert!((total - expect).abs() < 1e-3);
    }

    #[test]
    fn whitespace_runs_do_not_change_char_features() {
        assert_eq!(sparse("a  b\n\tc", 18), sparse("a b c", 18));
    }
}
