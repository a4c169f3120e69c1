//! Output divergence: a response that repeats one word for a long run and then drifts into
//! unrelated text. This is how the "repeat X forever" attack makes aligned models emit
//! memorised training data (Nasr et al. 2023).

use serde::Serialize;

/// Repeats of one word that count as a run.
pub const MIN_RUN: usize = 50;
/// Words after the run needed to call it a change of subject rather than a truncated loop.
pub const MIN_TAIL_WORDS: usize = 20;
const MIN_TAIL_DISTINCT: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DivergenceFinding {
    /// The repeated word, lower-cased (at most 64 bytes kept).
    pub word: String,
    pub repeats: usize,
    /// Byte offset in the response where the repetition stops.
    pub diverges_at: usize,
    pub tail_words: usize,
}

/// Finds the longest alphabetic word run of at least [`MIN_RUN`] followed by at least
/// [`MIN_TAIL_WORDS`] words of varied text. Numbers and symbols never form a run, so zero-filled
/// arrays and repeated code lines are not reported. Linear time, no allocation unless found.
pub fn output_divergence(text: &str) -> Option<DivergenceFinding> {
    let mut best: Option<(usize, usize, usize)> = None; // (start, len, end_offset)
    let mut run_word: Option<&str> = None;
    let mut run_len = 0usize;
    let mut run_start = 0usize;
    let mut last_end = 0usize;
    for (offset, word) in words(text) {
        let alpha = word.chars().all(char::is_alphabetic);
        if alpha && run_word.is_some_and(|w| same_word(w, word)) {
            run_len += 1;
        } else {
            if run_len >= MIN_RUN && best.is_none_or(|(_, l, _)| run_len > l) {
                best = Some((run_start, run_len, last_end));
            }
            run_word = alpha.then_some(word);
            run_len = usize::from(alpha);
            run_start = offset;
        }
        last_end = offset + word.len();
    }
    let (start, repeats, end) = best?;
    let tail = text.get(end..)?;
    let mut tail_words = 0usize;
    let mut distinct: Vec<&str> = Vec::with_capacity(MIN_TAIL_DISTINCT);
    for (_, w) in words(tail) {
        tail_words += 1;
        if distinct.len() < MIN_TAIL_DISTINCT && !distinct.iter().any(|d| same_word(d, w)) {
            distinct.push(w);
        }
    }
    if tail_words < MIN_TAIL_WORDS || distinct.len() < MIN_TAIL_DISTINCT {
        return None;
    }
    let first = words(text.get(start..)?).next().map(|(_, w)| w)?;
    let mut word: String = first.to_lowercase();
    if word.len() > 64 {
        let cut = (0..=64)
            .rev()
            .find(|i| word.is_char_boundary(*i))
            .unwrap_or(0);
        word.truncate(cut);
    }
    Some(DivergenceFinding {
        word,
        repeats,
        diverges_at: end,
        tail_words,
    })
}

fn same_word(a: &str, b: &str) -> bool {
    a == b
        || (a.len() == b.len() && a.eq_ignore_ascii_case(b))
        || (!a.is_ascii()
            && a.chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase)))
}

fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let base = text.as_ptr() as usize;
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - base, w))
}

/// Bytes of a word kept for comparison (longer words compare on this prefix).
const MAX_WORD_BYTES: usize = 64;

/// [`output_divergence`] for streamed text: feed the pieces as they arrive and it reports the
/// first run of [`MIN_RUN`] repeats whose tail reaches [`MIN_TAIL_WORDS`] words with varied
/// text. Constant memory (one word, the run word and ten distinct tail words), linear time, so
/// a relay can stop a stream as soon as the model drifts off a repetition. Words split across
/// pieces are joined; call [`DivergenceScanner::finish`] at the end for the last word.
#[derive(Debug, Clone, Default)]
pub struct DivergenceScanner {
    consumed: usize,
    word: String,
    in_word: bool,
    word_alpha: bool,
    word_end: usize,
    run_word: String,
    run_len: usize,
    run_end: usize,
    tail: Option<Tail>,
    found: Option<DivergenceFinding>,
}

#[derive(Debug, Clone)]
struct Tail {
    word: String,
    repeats: usize,
    diverges_at: usize,
    words: usize,
    distinct: Vec<String>,
}

impl DivergenceScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece; returns the finding once there is one (and keeps returning it).
    pub fn push(&mut self, piece: &str) -> Option<&DivergenceFinding> {
        if self.found.is_none() {
            for (i, c) in piece.char_indices() {
                if c.is_alphanumeric() {
                    if !self.in_word {
                        self.in_word = true;
                        self.word_alpha = true;
                    }
                    self.word_alpha &= c.is_alphabetic();
                    for l in c.to_lowercase() {
                        if self.word.len() + l.len_utf8() <= MAX_WORD_BYTES {
                            self.word.push(l);
                        }
                    }
                    self.word_end = self.consumed + i + c.len_utf8();
                } else if self.in_word {
                    self.end_word();
                    if self.found.is_some() {
                        break;
                    }
                }
            }
        }
        self.consumed += piece.len();
        self.found.as_ref()
    }

    /// Ends the text: the last word counts even without a separator after it.
    pub fn finish(&mut self) -> Option<&DivergenceFinding> {
        if self.found.is_none() && self.in_word {
            self.end_word();
        }
        self.found.as_ref()
    }

    pub fn finding(&self) -> Option<&DivergenceFinding> {
        self.found.as_ref()
    }

    fn end_word(&mut self) {
        self.in_word = false;
        let word = std::mem::take(&mut self.word);
        if let Some(t) = self.tail.as_mut() {
            t.count(&word);
        }
        let continues = self.word_alpha && self.run_len > 0 && word == self.run_word;
        if continues {
            self.run_len += 1;
            self.run_end = self.word_end;
        } else {
            if self.tail.is_none() && self.run_len >= MIN_RUN {
                let mut t = Tail {
                    word: self.run_word.clone(),
                    repeats: self.run_len,
                    diverges_at: self.run_end,
                    words: 0,
                    distinct: Vec::with_capacity(MIN_TAIL_DISTINCT),
                };
                t.count(&word);
                self.tail = Some(t);
            }
            if self.word_alpha {
                self.run_word = word;
                self.run_len = 1;
                self.run_end = self.word_end;
            } else {
                self.run_word.clear();
                self.run_len = 0;
            }
        }
        if let Some(t) = &self.tail
            && t.words >= MIN_TAIL_WORDS
            && t.distinct.len() >= MIN_TAIL_DISTINCT
        {
            self.found = Some(DivergenceFinding {
                word: t.word.clone(),
                repeats: t.repeats,
                diverges_at: t.diverges_at,
                tail_words: t.words,
            });
        }
    }
}

impl Tail {
    fn count(&mut self, word: &str) {
        self.words += 1;
        if self.distinct.len() < MIN_TAIL_DISTINCT && !self.distinct.iter().any(|d| d == word) {
            self.distinct.push(word.to_owned());
        }
    }
}
