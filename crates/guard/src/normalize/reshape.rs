//! Derived views of the base text: each undoes one obfuscation trick. They are only
//! built when the trick is present, so clean text pays one cheap scan per view.

use super::chars::{confusable, leet};

/// Separators attackers put between single letters (`i-g-n-o-r-e`).
fn is_sep(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'.' | b'_' | b' ' | b'*' | b'/' | b'|' | b'+' | b'~' | b',' | b':'
    )
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Single ASCII letters joined by one repeated separator, at least this many in a row.
/// Four keeps "e.g." and "a.m." intact.
const MIN_RUN: usize = 4;

/// Joins runs like `i.g.n.o.r.e` into `ignore`. Returns how many runs were collapsed;
/// `out` is left empty when there were none.
pub(crate) fn collapse_separators(text: &str, out: &mut String) -> u32 {
    out.clear();
    let b = text.as_bytes();
    let n = b.len();
    let mut runs = 0u32;
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < n {
        let starts_token = is_alnum(b[i]) && (i == 0 || !is_alnum(b[i - 1]));
        if starts_token && i + 2 < n && is_sep(b[i + 1]) {
            let sep = b[i + 1];
            let mut j = i;
            let mut count = 1usize;
            while j + 2 < n
                && b[j + 1] == sep
                && is_alnum(b[j + 2])
                && (j + 3 >= n || !is_alnum(b[j + 3]))
            {
                j += 2;
                count += 1;
            }
            if count >= MIN_RUN {
                out.push_str(text.get(copied..i).unwrap_or(""));
                let mut k = i;
                while k <= j {
                    out.push(b[k] as char);
                    k += 2;
                }
                runs += 1;
                copied = j + 1;
                i = j + 1;
                continue;
            }
            // Skip the whole short run: its letters cannot start a longer run.
            i = j + 1;
            continue;
        }
        i += 1;
    }
    if runs == 0 {
        out.clear();
    } else {
        out.push_str(text.get(copied..).unwrap_or(""));
    }
    runs
}

const MAX_LEET_TOKEN: usize = 24;

/// Folds leetspeak inside tokens that mix letters with digits/symbols, so `1gn0r3`
/// becomes `ignore` while `2024` and `$5` stay as they are. Returns folded token count;
/// `out` is left empty when nothing changed.
pub(crate) fn fold_leet(text: &str, one: u8, out: &mut String) -> u32 {
    out.clear();
    let b = text.as_bytes();
    let n = b.len();
    let is_tok = |x: u8| is_alnum(x) || x == b'@' || x == b'$';
    let mut folded = 0u32;
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < n {
        if !is_tok(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut letters, mut leets) = (0usize, 0usize);
        while i < n && is_tok(b[i]) {
            if b[i].is_ascii_alphabetic() {
                letters += 1;
            } else if leet(b[i], one).is_some() {
                leets += 1;
            }
            i += 1;
        }
        // Long alphanumeric runs are ids, hashes or base64, not disguised words.
        if letters > 0 && leets > 0 && i - start <= MAX_LEET_TOKEN {
            out.push_str(text.get(copied..start).unwrap_or(""));
            for &x in &b[start..i] {
                out.push(leet(x, one).unwrap_or(x) as char);
            }
            copied = i;
            folded += 1;
        }
    }
    if folded > 0 {
        out.push_str(text.get(copied..).unwrap_or(""));
    }
    folded
}

/// Rewrites look-alike letters to ASCII inside words that already contain ASCII letters
/// (`pаssword` with a Cyrillic а), or everywhere when `everywhere` is set (text that is
/// mostly Latin). Whole words in Cyrillic or Greek are left alone otherwise, so Russian
/// and Greek patterns still see real Russian and Greek. Returns folded char count.
pub(crate) fn fold_confusables(text: &str, everywhere: bool, out: &mut String) -> u32 {
    out.clear();
    let mut folded = 0u32;
    let mut word_start = 0usize;
    let mut has_ascii = false;
    let mut has_conf = false;
    let flush = |word: &str, fold: bool, out: &mut String, folded: &mut u32| {
        if fold {
            for c in word.chars() {
                match confusable(c) {
                    Some(a) => {
                        out.push(a);
                        *folded += 1;
                    }
                    None => out.push(c),
                }
            }
        } else {
            out.push_str(word);
        }
    };
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || confusable(c).is_some() {
            if c.is_ascii_alphabetic() {
                has_ascii = true;
            } else if confusable(c).is_some() {
                has_conf = true;
            }
            continue;
        }
        let word = text.get(word_start..i).unwrap_or("");
        flush(
            word,
            has_conf && (has_ascii || everywhere),
            out,
            &mut folded,
        );
        out.push(c);
        word_start = i + c.len_utf8();
        has_ascii = false;
        has_conf = false;
    }
    let word = text.get(word_start..).unwrap_or("");
    flush(
        word,
        has_conf && (has_ascii || everywhere),
        out,
        &mut folded,
    );
    if folded == 0 {
        out.clear();
    }
    folded
}

pub(crate) fn rot13_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    for c in text.chars() {
        let r = match c {
            'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
            'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
            _ => c,
        };
        out.push(r);
    }
}
