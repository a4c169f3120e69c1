//! The compiled detectors and their streaming-aware probe.
//!
//! A probe answers "what is the first valid match starting at or after `from`?" on a buffer that
//! may be a prefix of the final text. It only reports a match when it is certain the full text has
//! the same match there; otherwise it returns `Pending(p)`: nothing starts before `p`, decide later.
//!
//! Certainty rests on two facts about every pattern: a bounded length (`max_len`) and a character
//! set that every character of a match belongs to. A match starting before the buffer's trailing
//! run of set characters must end before that run (it cannot cross the non-set character), so it
//! is fully visible; so is any match starting more than `max_len + MARGIN` bytes before the end.
//! In prose the trailing run is the last partial word, so hold-back is usually a few bytes.
//! Validators look past a match only through set characters (a `.` before a digit, say), so each
//! set also holds the joiners its validator inspects: `,` and `/` for phones, `.` for SSNs.

use super::Category;
use super::validate::{self as v, Span};
use aho_corasick::AhoCorasick;
use regex::Regex;

/// Bytes of look-ahead a validator may need past a match (two chars).
pub(crate) const MARGIN: usize = 8;
/// A private-key block is held from `-----BEGIN` until its END marker or this many bytes.
pub(crate) const PEM_MAX: usize = 16 * 1024;
const PEM_MARKER_MAX: usize = 96;

pub(crate) enum Probe {
    Found {
        pos: usize,
        start: usize,
        end: usize,
    },
    Pending(usize),
    Done,
}

type Validator = fn(&str, usize, usize) -> Option<Span>;

enum Kind {
    Plain {
        re: Regex,
        validate: Validator,
        charset: fn(char) -> bool,
        needle: fn(u8) -> bool,
    },
    Keyed {
        re: Regex,
        viable: Regex,
        keywords: AhoCorasick,
    },
    Pem {
        begin: Regex,
        end: Regex,
    },
}

pub(crate) struct Detector {
    pub(crate) category: Category,
    pub(crate) max_len: usize,
    kind: Kind,
}

fn tokenish(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

const KEYWORDS: &str = r"password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|private[_-]?key|credentials?";
const KEY_SEP: &str = r#"[A-Za-z0-9_.-]{0,24}["']?\s{0,3}(?:=>|:=|=|:)\s{0,3}["']?"#;
const VALUE: &str = r#"[^\s"'`,;<>(){}\[\]]"#;

/// A byte every match of the category contains. On a streaming push, checking the short unsettled
/// tail for it spares most regex calls (~100 ns each). One-shot scans skip the check: over a long
/// text the regex's own literal prefilter is faster than a byte loop per detector.
fn needle(category: Category) -> fn(u8) -> bool {
    match category {
        Category::AwsAccessKey => |b| b == b'A',
        Category::GitHubToken | Category::StripeKey => |b| b == b'_',
        Category::OpenAiKey | Category::SlackToken => |b| b == b'-',
        Category::GoogleApiKey => |b| b == b'z',
        Category::Jwt | Category::IpAddress => |b| b == b'.' || b == b':',
        Category::Email => |b| b == b'@',
        _ => |b: u8| b.is_ascii_digit(),
    }
}

fn plain(
    category: Category,
    pattern: &str,
    max_len: usize,
    validate: Validator,
    charset: fn(char) -> bool,
) -> Result<Detector, regex::Error> {
    let re = Regex::new(pattern)?;
    let needle = needle(category);
    Ok(Detector {
        category,
        max_len,
        kind: Kind::Plain {
            re,
            validate,
            charset,
            needle,
        },
    })
}

/// In priority order: when two detectors match at the same position the longer match wins, and on
/// equal length the earlier entry (more specific) names the finding.
pub(crate) fn build() -> Result<Vec<Detector>, String> {
    use Category as C;
    let err = |e: regex::Error| e.to_string();
    let pem_marker =
        |kw: &str| format!(r"-----{kw} (?:[A-Z0-9]{{1,16}} ){{0,3}}PRIVATE KEY(?: BLOCK)?-----");
    let keyed =
        format!(r"(?:(?i-u:{KEYWORDS}){KEY_SEP}|(?i-u:bearer)\s{{1,3}})({VALUE}{{16,512}})");
    let viable = format!(
        r"\A(?:(?i-u:{KEYWORDS})[A-Za-z0-9_.-]{{0,24}}[\x22']?\s{{0,3}}(?:(?:=>?|:=?)\s{{0,3}}[\x22']?{VALUE}{{0,512}})?|(?i-u:bearer)\s{{0,3}}{VALUE}{{0,512}})\z"
    );
    let keywords = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "secret",
            "token",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
            "auth_key",
            "auth-key",
            "authkey",
            "private_key",
            "private-key",
            "privatekey",
            "credential",
            "bearer",
        ])
        .map_err(|e| e.to_string())?;
    let base64url = |c: char| tokenish(c) || c == '.';
    Ok(vec![
        Detector {
            category: C::PrivateKey,
            max_len: PEM_MAX + PEM_MARKER_MAX,
            kind: Kind::Pem {
                begin: Regex::new(&pem_marker("BEGIN")).map_err(err)?,
                end: Regex::new(&pem_marker("END")).map_err(err)?,
            },
        },
        plain(C::AwsAccessKey, r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", 20, v::token_edges, tokenish).map_err(err)?,
        plain(C::GitHubToken, r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,255}", 266, v::token_edges, tokenish).map_err(err)?,
        plain(C::StripeKey, r"[sr]k_(?:live|test)_[0-9A-Za-z]{16,247}", 256, v::random_token, tokenish).map_err(err)?,
        plain(C::OpenAiKey, r"sk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,256}", 268, v::random_token, tokenish).map_err(err)?,
        plain(C::SlackToken, r"xox[abposr]-[A-Za-z0-9-]{10,250}", 256, v::random_token, tokenish).map_err(err)?,
        plain(C::GoogleApiKey, r"AIza[0-9A-Za-z_-]{35}", 39, v::token_edges, tokenish).map_err(err)?,
        plain(C::Jwt, r"eyJ[A-Za-z0-9_-]{2,1024}\.[A-Za-z0-9_-]{2,3072}\.[A-Za-z0-9_-]{0,1024}", 5124, v::jwt, base64url).map_err(err)?,
        Detector {
            category: C::GenericSecret,
            max_len: 600,
            kind: Kind::Keyed {
                re: Regex::new(&keyed).map_err(err)?,
                viable: Regex::new(&viable).map_err(err)?,
                keywords,
            },
        },
        plain(
            C::Email,
            r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,4}\.[A-Za-z]{2,24}",
            410,
            v::email,
            |c| c.is_ascii_alphanumeric() || "._%+-@".contains(c),
        )
        .map_err(err)?,
        plain(
            C::PaymentCard,
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}",
            37,
            v::card,
            |c| c.is_ascii_digit() || " -.,".contains(c),
        )
        .map_err(err)?,
        plain(
            C::Ssn,
            r"(?-u:\b)[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}",
            11,
            v::ssn,
            |c| c.is_ascii_digit() || " -./".contains(c),
        )
        .map_err(err)?,
        plain(
            C::Iban,
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
            42,
            v::iban,
            |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ',
        )
        .map_err(err)?,
        plain(
            C::Phone,
            r"\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}|(?:1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}",
            48,
            v::phone,
            |c| c.is_ascii_digit() || " .-()+/:,".contains(c),
        )
        .map_err(err)?,
        plain(
            C::IpAddress,
            r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
            15,
            v::ipv4,
            |c| c.is_ascii_digit() || c == '.',
        )
        .map_err(err)?,
        plain(
            C::IpAddress,
            r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
            39,
            v::ipv6,
            |c| c.is_ascii_hexdigit() || c == ':',
        )
        .map_err(err)?,
    ])
}

pub(crate) fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub(crate) fn next_boundary(s: &str, i: usize) -> usize {
    s.get(i..)
        .and_then(|r| r.chars().next())
        .map_or(s.len(), |c| i + c.len_utf8())
}

/// Start of the trailing run of `set` characters, never earlier than `floor`.
fn trailing_run(buf: &str, floor: usize, set: impl Fn(char) -> bool) -> usize {
    let mut start = buf.len();
    for (i, c) in buf[floor..].char_indices().rev() {
        if !set(c) {
            break;
        }
        start = floor + i;
    }
    start
}

impl Detector {
    /// Earliest position from which a match could still be unsettled by future text.
    fn limit(&self, buf: &str, from: usize) -> usize {
        let cap = floor_boundary(buf, buf.len().saturating_sub(self.max_len + MARGIN)).max(from);
        match &self.kind {
            Kind::Plain { charset, .. } => trailing_run(buf, cap, charset),
            Kind::Pem { .. } => {
                let floor = floor_boundary(buf, buf.len().saturating_sub(PEM_MARKER_MAX)).max(from);
                trailing_run(buf, floor, |c| {
                    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == ' '
                })
            }
            Kind::Keyed {
                viable, keywords, ..
            } => {
                let run =
                    trailing_run(buf, cap, |c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                let first_viable = keywords
                    .find_overlapping_iter(&buf[cap..])
                    .map(|m| cap + m.start())
                    .find(|&k| viable.is_match(&buf[k..]));
                first_viable.map_or(run, |k| k.min(run))
            }
        }
    }

    /// `eager`: the caller blocks on this category, so a private-key block counts as found as
    /// soon as its BEGIN marker is settled (no need to buffer the body to learn where it ends).
    pub(crate) fn probe(&self, buf: &str, mut from: usize, fin: bool, eager: bool) -> Probe {
        let limit = if fin {
            buf.len()
        } else {
            self.limit(buf, from)
        };
        let pending = || {
            if fin {
                Probe::Done
            } else {
                Probe::Pending(limit)
            }
        };
        loop {
            let (pos, span) = match &self.kind {
                Kind::Plain {
                    re,
                    validate,
                    needle,
                    ..
                } => {
                    if !fin && !buf.as_bytes()[from..].iter().any(|&b| needle(b)) {
                        return pending();
                    }
                    let Some(m) = re.find_at(buf, from) else {
                        return pending();
                    };
                    if m.start() >= limit {
                        return pending();
                    }
                    (m.start(), validate(buf, m.start(), m.end()))
                }
                Kind::Keyed { re, keywords, .. } => {
                    if !fin && !keywords.is_match(&buf[from..]) {
                        return pending();
                    }
                    let Some(c) = re.captures_at(buf, from) else {
                        return pending();
                    };
                    let (Some(m), Some(val)) = (c.get(0), c.get(1)) else {
                        return pending();
                    };
                    if m.start() >= limit {
                        return pending();
                    }
                    let ok = v::keyed_secret(val.as_str())
                        && v::prev_char(buf, m.start()).is_none_or(|p| !p.is_ascii_alphabetic());
                    (m.start(), ok.then_some((val.start(), val.end())))
                }
                Kind::Pem { begin, end } => {
                    let Some(m) = begin.find_at(buf, from) else {
                        return pending();
                    };
                    if m.start() >= limit {
                        return pending();
                    }
                    let bound = m.start() + PEM_MAX;
                    let region = floor_boundary(buf, bound + PEM_MARKER_MAX);
                    let stop = end
                        .find_at(&buf[..region], m.end())
                        .filter(|e| e.start() <= bound);
                    let span_end = match stop {
                        Some(e) => e.end(),
                        None if fin || buf.len() >= bound + PEM_MARKER_MAX => {
                            floor_boundary(buf, bound)
                        }
                        None if eager => buf.len(),
                        None => return Probe::Pending(m.start()),
                    };
                    return Probe::Found {
                        pos: m.start(),
                        start: m.start(),
                        end: span_end,
                    };
                }
            };
            match span {
                Some((start, end)) if end > start => return Probe::Found { pos, start, end },
                _ => from = next_boundary(buf, pos),
            }
        }
    }
}
