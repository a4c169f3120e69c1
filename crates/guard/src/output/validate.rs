//! Validation of regex candidates. The regexes are deliberately loose (cheap, bounded, no
//! look-around); these functions decide, so that checksums and structural rules keep benign
//! numbers out of the redaction path.
//!
//! Every look-ahead here stops at the first character outside the detector's character set:
//! the streaming hold-back relies on that (see `detectors.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::{Ipv4Addr, Ipv6Addr};

pub(crate) type Span = (usize, usize);

pub(crate) fn prev_char(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

pub(crate) fn next_char(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Left edge must not continue a word or a dotted/dashed token (versions, paths, ids).
fn left_clear(text: &str, s: usize, extra: &str) -> bool {
    prev_char(text, s).is_none_or(|c| !is_word(c) && !extra.contains(c))
}

/// Right edge must not continue a word, and `.5`/`-5`-style continuations mean the candidate is a
/// fragment of a longer number (decimal, version, date, IP).
fn right_clear(text: &str, e: usize, joiners: &str) -> bool {
    match next_char(text, e) {
        None => true,
        Some(c) if is_word(c) => false,
        Some(c) if joiners.contains(c) => {
            next_char(text, e + c.len_utf8()).is_none_or(|d| !d.is_ascii_digit())
        }
        Some(_) => true,
    }
}

pub(crate) fn token_edges(text: &str, s: usize, e: usize) -> Option<Span> {
    (left_clear(text, s, "-") && right_clear(text, e, "")).then_some((s, e))
}

fn has_digit_and_letter(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Provider tokens with a variable-length random tail: random tails essentially always mix
/// digits and letters, prose and identifiers (`sk-learn-compatible-wrapper`) usually do not.
pub(crate) fn random_token(text: &str, s: usize, e: usize) -> Option<Span> {
    token_edges(text, s, e).filter(|_| has_digit_and_letter(&text[s..e]))
}

pub(crate) fn email(text: &str, s: usize, e: usize) -> Option<Span> {
    const LOCAL: &str = "._%+-";
    let cand = &text[s..e];
    let (local, domain) = cand.split_once('@')?;
    let tld = domain.rsplit('.').next()?;
    let bad_local = local.starts_with('.') || local.ends_with('.') || local.contains("..");
    let bad_domain = domain
        .split('.')
        .any(|l| l.starts_with('-') || l.ends_with('-'));
    // `git@github.com:org/repo` and `icon@2x.png` are addresses of things, not of people.
    let not_person = local == "git"
        || matches!(
            tld.to_ascii_lowercase().as_str(),
            "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "ico"
        );
    let ok = !bad_local
        && !bad_domain
        && !not_person
        && left_clear(text, s, LOCAL)
        && right_clear(text, e, "-");
    ok.then_some((s, e))
}

pub(crate) fn phone(text: &str, s: usize, e: usize) -> Option<Span> {
    let cand = &text[s..e];
    let digits = cand.bytes().filter(u8::is_ascii_digit).count();
    if !left_clear(text, s, ".-+/)$€£:") || !right_clear(text, e, ".-/:,") {
        return None;
    }
    if cand.starts_with('+') {
        return (8..=15).contains(&digits).then_some((s, e));
    }
    // NANP: without parentheses both separators must agree, so `555-123.4567` style
    // fragments of longer identifiers are not taken for numbers.
    let body = cand.strip_prefix('1').map_or(cand, |r| &r[1..]);
    let seps: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_digit()).collect();
    let consistent = body.starts_with('(') || seps.windows(2).all(|w| w[0] == w[1]);
    (consistent && (digits == 10 || digits == 11)).then_some((s, e))
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(*d) * if i % 2 == 1 { 2 } else { 1 };
            if v > 9 { v - 9 } else { v }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn known_iin(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (p2, p3, p4) = (p(2), p(3), p(4));
    match d.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(5) => ((51..=55).contains(&p2) && n == 16) || matches!(p2, 50 | 56..=58),
        Some(2) => (2221..=2720).contains(&p4) && n == 16,
        Some(3) => {
            (matches!(p2, 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p4) && n >= 16)
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && n >= 14)
        }
        Some(6) => {
            (p4 == 6011 || (644..=649).contains(&p3) || matches!(p2, 62 | 63 | 65 | 67)) && n >= 16
        }
        _ => false,
    }
}

/// Cards: 13–19 digits, one separator kind, card-like grouping, Luhn, known issuer prefix. A
/// candidate that overshoots into a following number (`4111 1111 1111 1111 2024`) is retried on
/// whole-group prefixes.
pub(crate) fn card(text: &str, s: usize, e: usize) -> Option<Span> {
    if !left_clear(text, s, ".-+_,") {
        return None;
    }
    let cand = &text[s..e];
    let sep = cand.bytes().find(|b| !b.is_ascii_digit());
    let groups: Vec<&str> = match sep {
        Some(c) if cand.bytes().any(|b| !b.is_ascii_digit() && b != c) => return None,
        Some(c) => cand.split(char::from(c)).collect(),
        None => vec![cand],
    };
    if groups.len() > 1 && groups.first().is_none_or(|g| g.len() != 4) {
        return None;
    }
    for k in (1..=groups.len()).rev() {
        let used = &groups[..k];
        let inner_ok = used
            .iter()
            .skip(1)
            .take(k.saturating_sub(2))
            .all(|g| (4..=6).contains(&g.len()));
        let last_ok = k == 1 || used.last().is_some_and(|g| (3..=6).contains(&g.len()));
        let end = s + used.iter().map(|g| g.len()).sum::<usize>() + (k - 1);
        let digits: Vec<u8> = used
            .iter()
            .flat_map(|g| g.bytes().map(|b| b - b'0'))
            .collect();
        if inner_ok
            && last_ok
            && (13..=19).contains(&digits.len())
            && right_clear(text, end, ".,")
            && luhn(&digits)
            && known_iin(&digits)
        {
            return Some((s, end));
        }
    }
    None
}

/// US SSN `AAA-GG-SSSS`: area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
pub(crate) fn ssn(text: &str, s: usize, e: usize) -> Option<Span> {
    let c = &text.as_bytes()[s..e];
    let num =
        |r: std::ops::Range<usize>| c[r].iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    let (area, group, serial) = (num(0..3), num(4..6), num(7..11));
    let valid = c[3] == c[6] && area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    (valid && left_clear(text, s, ".-/") && right_clear(text, e, ".-/")).then_some((s, e))
}

fn iban_len(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        _ => return None,
    })
}

fn mod97(chars: &[u8]) -> bool {
    // Move country + check digits to the end, letters become 10..35, then the number mod 97.
    let rotated = chars[4..].iter().chain(&chars[..4]);
    let mut rem = 0u32;
    for &b in rotated {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBAN: known country with its fixed length (which also trims an overshooting match), mod-97.
pub(crate) fn iban(text: &str, s: usize, e: usize) -> Option<Span> {
    if !left_clear(text, s, "") {
        return None;
    }
    let want = iban_len(&text[s..s + 2])?;
    let mut chars = Vec::with_capacity(34);
    let mut end = s;
    for (i, b) in text[s..e].bytes().enumerate() {
        if b != b' ' {
            chars.push(b);
            end = s + i + 1;
        }
        if chars.len() == want {
            break;
        }
    }
    (chars.len() == want && right_clear(text, end, "") && mod97(&chars)).then_some((s, end))
}

pub(crate) fn ipv4(text: &str, s: usize, e: usize) -> Option<Span> {
    let ok = text[s..e].parse::<Ipv4Addr>().is_ok()
        && left_clear(text, s, ".-")
        && right_clear(text, e, ".");
    ok.then_some((s, e))
}

/// IPv6 via the std parser; at least five hex digits so that `a::b` paths and `::` are not hits.
pub(crate) fn ipv6(text: &str, s: usize, e: usize) -> Option<Span> {
    let cand = &text[s..e];
    let hex = cand.bytes().filter(u8::is_ascii_hexdigit).count();
    let ok = hex >= 5
        && cand.parse::<Ipv6Addr>().is_ok()
        && left_clear(text, s, ":.")
        && right_clear(text, e, ":");
    ok.then_some((s, e))
}

/// JWT: the header must decode to a JSON object naming an `alg`.
pub(crate) fn jwt(text: &str, s: usize, e: usize) -> Option<Span> {
    let header = text[s..e].split('.').next()?;
    let decoded = URL_SAFE_NO_PAD.decode(header).ok()?;
    let json = std::str::from_utf8(&decoded).ok()?.trim();
    let ok = json.starts_with('{') && json.ends_with('}') && json.contains("\"alg\"");
    (ok && token_edges(text, s, e).is_some()).then_some((s, e))
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
        n += 1;
    }
    let n = f64::from(n.max(1));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Values after `password=`-style keys that look machine-generated. Hex alphabets top out at 4
/// bits/char, so they get a lower bar. Values a provider detector names better are left to it.
pub(crate) fn keyed_secret(value: &str) -> bool {
    const PROVIDER: [&str; 9] = [
        "eyJ",
        "AKIA",
        "ASIA",
        "ghp_",
        "github_pat_",
        "sk-",
        "xox",
        "AIza",
        "sk_live_",
    ];
    let lower = value.to_ascii_lowercase();
    let placeholder = [
        "xxxx",
        "example",
        "your",
        "placeholder",
        "changeme",
        "://",
        "***",
    ]
    .iter()
    .any(|p| lower.contains(p));
    let threshold = if value.bytes().all(|b| b.is_ascii_hexdigit()) {
        3.0
    } else {
        3.5
    };
    has_digit_and_letter(value)
        && !placeholder
        && !PROVIDER.iter().any(|p| value.starts_with(p))
        && entropy(value) > threshold
}
