//! Finds encoded payloads (base64, hex, %xx) in the raw text and decodes them, so the
//! scorer can scan what the model would read after "decode this and follow it".
//!
//! Only decodings that come out as mostly printable UTF-8 are kept: images, hashes and
//! random tokens decode to binary noise and are dropped without further cost.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Shortest base64 run worth decoding (12 bytes of payload: "ignore above").
const MIN_B64: usize = 16;
/// Shortest hex run (8 bytes of payload).
const MIN_HEX: usize = 16;
/// Runs longer than this are data blobs (images, archives), not smuggled prose.
const MAX_RUN: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    Hex,
    Url,
    /// A pencil-and-paper cipher (see `cipher.rs`).
    Cipher,
}

const B64_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);
const B64_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Text is "prose" if nearly all of it is printable and it contains some letters.
fn printable(bytes: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut total = 0usize;
    let mut bad = 0usize;
    let mut letters = 0usize;
    for c in s.chars() {
        total += 1;
        if c.is_alphabetic() {
            letters += 1;
        } else if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            bad += 1;
        }
    }
    (total > 0 && bad * 20 <= total && letters * 2 >= total).then_some(s)
}

/// Calls `found` for each decoded segment; stops once `budget` bytes were produced.
pub(crate) fn find_encoded(text: &str, budget: &mut usize, mut found: impl FnMut(Encoding, &str)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut scratch: Vec<u8> = Vec::new();
    let mut i = 0usize;
    while i < n && *budget > 0 {
        if !is_b64(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && is_b64(b[i]) {
            i += 1;
        }
        // Most runs are ordinary words: skip them before looking at their letters.
        if i - start < MIN_B64.min(MIN_HEX) {
            continue;
        }
        let (mut upper, mut lower, mut digit, mut nonhex) = (false, false, false, false);
        for &x in &b[start..i] {
            upper |= x.is_ascii_uppercase();
            lower |= x.is_ascii_lowercase();
            digit |= x.is_ascii_digit();
            nonhex |= !x.is_ascii_hexdigit();
        }
        let run = &b[start..i];
        let len = run.len();
        if !(MIN_B64.min(MIN_HEX)..=MAX_RUN).contains(&len) {
            continue;
        }
        scratch.clear();
        if !nonhex && len >= MIN_HEX && len.is_multiple_of(2) {
            if decode_hex(run, &mut scratch) {
                emit(Encoding::Hex, &scratch, budget, &mut found);
            }
            continue;
        }
        // Real base64 of prose mixes cases; plain words and snake_case identifiers do not.
        if len >= MIN_B64 && upper && lower && (digit || len >= 24) {
            let trimmed = trim_b64(run);
            let ok = B64_STD.decode_vec(trimmed, &mut scratch).is_ok() || {
                scratch.clear();
                B64_URL.decode_vec(trimmed, &mut scratch).is_ok()
            };
            if ok {
                emit(Encoding::Base64, &scratch, budget, &mut found);
            }
        }
    }
    find_hex_escapes(text, budget, &mut found);
    find_percent(text, budget, &mut found);
}

fn trim_b64(run: &[u8]) -> &[u8] {
    // Drop a partial trailing quantum so odd-length runs still decode their prefix.
    let body = run.iter().rposition(|&x| x != b'=').map_or(0, |p| p + 1);
    let keep = body - body % 4;
    let keep = if body % 4 >= 2 { body } else { keep };
    &run[..keep]
}

pub(crate) fn emit(
    enc: Encoding,
    bytes: &[u8],
    budget: &mut usize,
    found: &mut impl FnMut(Encoding, &str),
) {
    let slice = &bytes[..bytes.len().min(*budget)];
    // A cut at the budget edge may split a character; anything else invalid is binary.
    let slice = match std::str::from_utf8(slice) {
        Ok(_) => slice,
        Err(e) if e.error_len().is_none() => &slice[..e.valid_up_to()],
        Err(_) => return,
    };
    if let Some(s) = printable(slice) {
        *budget -= slice.len();
        found(enc, s);
    }
}

fn hex_val(x: u8) -> Option<u8> {
    match x {
        b'0'..=b'9' => Some(x - b'0'),
        b'a'..=b'f' => Some(x - b'a' + 10),
        b'A'..=b'F' => Some(x - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(run: &[u8], out: &mut Vec<u8>) -> bool {
    for pair in run.chunks_exact(2) {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return false,
        }
    }
    true
}

/// `\x69\x67...` and `0x69 0x67 ...` style hex, and space-separated byte pairs.
fn find_hex_escapes(text: &str, budget: &mut usize, found: &mut impl FnMut(Encoding, &str)) {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 3 < b.len() && *budget > 0 {
        let prefixed = (b[i] == b'\\' || b[i] == b'0') && (b[i + 1] == b'x' || b[i + 1] == b'X');
        // Space-separated pairs: look two pairs ahead before committing, since English
        // is full of hex-looking two-letter words ("be", "ad").
        let pair = |k: usize| {
            b.get(k).is_some_and(u8::is_ascii_hexdigit)
                && b.get(k + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(k + 2).is_none_or(|&x| x == b' ')
        };
        let spaced = (i == 0 || b[i - 1] == b' ') && pair(i) && pair(i + 3) && pair(i + 6);
        if !prefixed && !spaced {
            i += 1;
            continue;
        }
        out.clear();
        let mut j = i;
        loop {
            let p = if prefixed { j + 2 } else { j };
            let (Some(&h), Some(&l)) = (b.get(p), b.get(p + 1)) else {
                break;
            };
            let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) else {
                break;
            };
            out.push(h << 4 | l);
            j = p + 2;
            // Allow one separator between escapes (space, comma).
            if b.get(j).is_some_and(|&x| x == b' ' || x == b',') {
                j += 1;
            }
            if prefixed && !(b.get(j) == Some(&b'\\') || b.get(j) == Some(&b'0')) {
                break;
            }
        }
        if out.len() >= 8 {
            emit(Encoding::Hex, &out, budget, found);
        }
        i = j.max(i + 1);
    }
}

/// Percent-decodes the whole text when it carries several `%xx` escapes.
fn find_percent(text: &str, budget: &mut usize, found: &mut impl FnMut(Encoding, &str)) {
    let b = text.as_bytes();
    let escapes = b
        .windows(3)
        .filter(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
        .count();
    if escapes < 4 || *budget == 0 {
        return;
    }
    let mut out = Vec::with_capacity(b.len().min(*budget));
    let mut i = 0usize;
    while i < b.len() && out.len() < *budget {
        let esc = (b[i] == b'%')
            .then(|| Some((hex_val(*b.get(i + 1)?)?, hex_val(*b.get(i + 2)?)?)))
            .flatten();
        match esc {
            Some((h, l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    emit(Encoding::Url, &out, budget, found);
}
