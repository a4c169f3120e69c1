//! Character tables: what is invisible, what looks like an ASCII letter, what is leetspeak.
//!
//! Kept as `match` ranges rather than data files because the compiler turns them into
//! branch tables, and the sets are small and stable (they follow Unicode, not attackers).

/// How the first pass treats one input character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Visible,
    /// Zero-width characters, soft hyphen, variation selectors, fillers.
    Invisible,
    /// Explicit bidi embeddings, overrides and isolates (the "Trojan Source" set).
    Bidi,
    /// U+E0000 tag block; carries the ASCII it shadows, if printable.
    Tag(Option<u8>),
}

pub(crate) fn classify(c: char) -> Class {
    let u = c as u32;
    if u < 0xAD {
        return Class::Visible;
    }
    match u {
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F => {
            Class::Invisible
        }
        0x200B..=0x200F | 0x2060..=0x2064 | 0x206A..=0x206F | 0x3164 | 0xFEFF | 0xFFA0 => {
            Class::Invisible
        }
        0xFE00..=0xFE0F | 0xE0100..=0xE01EF => Class::Invisible,
        0x202A..=0x202E | 0x2066..=0x2069 => Class::Bidi,
        0xE0000..=0xE007F => {
            let ascii = u - 0xE0000;
            if (0x20..0x7F).contains(&ascii) {
                Class::Tag(Some(ascii as u8))
            } else {
                Class::Tag(None)
            }
        }
        _ => Class::Visible,
    }
}

/// Presentation forms that NFKC will rewrite to ASCII: counted as an obfuscation signal
/// before normalisation erases the evidence.
pub(crate) fn is_compat_letter(c: char) -> bool {
    matches!(c as u32,
        0xFF01..=0xFF5E        // fullwidth ASCII
        | 0x1D400..=0x1D7FF    // mathematical alphanumerics
        | 0x24B6..=0x24E9      // circled letters
        | 0x1F130..=0x1F149    // squared letters
    )
}

/// Combining marks left after NFKC composition; on top of ASCII letters they are
/// "zalgo" decoration rather than language.
pub(crate) fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF
        | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
    )
}

/// Non-ASCII characters that read as a lowercase ASCII letter. Input is already
/// lowercased, so only lowercase forms are listed (uppercase Cyrillic В lowercases to в).
pub(crate) fn confusable(c: char) -> Option<char> {
    let a = match c {
        // Cyrillic
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'т' => 't',
        'ԍ' => 'g',
        'ɡ' => 'g',
        'ӏ' => 'l',
        'п' => 'n',
        'г' => 'r',
        // Greek
        'α' => 'a',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'γ' => 'y',
        'ω' => 'w',
        'β' => 'b',
        'η' => 'n',
        // Armenian
        'օ' => 'o',
        'ս' => 'u',
        'հ' => 'h',
        'ո' => 'n',
        'ց' => 'g',
        // Latin letters outside ASCII that pose as ASCII (small capitals, dotless i, ...)
        'ı' => 'i',
        'ɑ' => 'a',
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        _ => {
            let u = c as u32;
            // Negative squared letters and regional indicators have no NFKC mapping.
            return match u {
                0x1F170..=0x1F189 => char::from_u32(u - 0x1F170 + 'a' as u32),
                0x1F1E6..=0x1F1FF => char::from_u32(u - 0x1F1E6 + 'a' as u32),
                _ => None,
            };
        }
    };
    Some(a)
}

/// Leetspeak substitutions. `one` picks the reading of `1`, which is ambiguous (i or l).
pub(crate) fn leet(b: u8, one: u8) -> Option<u8> {
    Some(match b {
        b'0' => b'o',
        b'1' => one,
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' => b't',
        _ => return None,
    })
}
