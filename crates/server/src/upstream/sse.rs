//! A small incremental parser for `text/event-stream`, fed arbitrary byte chunks.
//!
//! Only `data:` fields matter for the OpenAI wire format; events are separated by a blank
//! line, lines may end in `\n`, `\r\n` or `\r`, and `:` starts a comment. A line longer
//! than the limit is an error rather than unbounded buffering.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong,
    NotUtf8,
}

#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    data: String,
    has_data: bool,
    max_line: usize,
    /// A `\r` ended the previous chunk: a `\n` at the start of the next one belongs to it.
    pending_cr: bool,
}

impl SseParser {
    pub fn new(max_line: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            data: String::new(),
            has_data: false,
            max_line,
            pending_cr: false,
        }
    }

    /// Feeds bytes and returns the `data` payload of every event completed by them.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        if self.pending_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.pending_cr = false;
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\n' || b == b'\r' {
                self.buf.extend_from_slice(&bytes[start..i]);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, &mut events)?;
                if b == b'\r' {
                    if i + 1 < bytes.len() {
                        if bytes[i + 1] == b'\n' {
                            i += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
        if self.buf.len() > self.max_line {
            return Err(SseError::LineTooLong);
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        if line.len() > self.max_line {
            return Err(SseError::LineTooLong);
        }
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            let value = std::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?;
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
            if self.data.len() > self.max_line {
                return Err(SseError::LineTooLong);
            }
        }
        Ok(())
    }
}

/// Fuzz target: any bytes, split anywhere, never panic and parse the same as one piece.
pub fn fuzz_sse(data: &[u8]) {
    let split = data
        .first()
        .map(|b| *b as usize)
        .unwrap_or(0)
        .min(data.len());
    let mut whole = SseParser::new(1 << 16);
    let mut parts = SseParser::new(1 << 16);
    let a = whole.push(data);
    let mut b = parts.push(&data[..split]);
    if let Ok(first) = &mut b
        && let Ok(rest) = parts.push(&data[split..])
    {
        first.extend(rest);
    }
    if let (Ok(a), Ok(b)) = (a, b) {
        assert_eq!(a, b, "split parsing differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_events_across_chunk_boundaries() {
        let mut p = SseParser::new(1024);
        assert!(p.push(b"data: {\"a\"").unwrap().is_empty());
        assert_eq!(
            p.push(b":1}\r\n\r\n: comment\n\ndata: [DONE]\n\n").unwrap(),
            vec!["{\"a\":1}", "[DONE]"]
        );
    }

    #[test]
    fn joins_multi_line_data_and_handles_split_crlf() {
        let mut p = SseParser::new(1024);
        assert!(p.push(b"data: a\r").unwrap().is_empty());
        assert!(p.push(b"\ndata: b\r").unwrap().is_empty());
        assert_eq!(p.push(b"\n\r\n").unwrap(), vec!["a\nb"]);
    }

    #[test]
    fn refuses_unbounded_lines() {
        let mut p = SseParser::new(8);
        assert_eq!(p.push(b"data: 0123456789"), Err(SseError::LineTooLong));
    }

    proptest! {
        #[test]
        fn fuzz_sse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_sse(&data);
        }

        #[test]
        fn split_anywhere_equals_whole(events in proptest::collection::vec("[a-z{}:\" ]{0,20}", 0..8), cut in 0usize..400) {
            let mut text = String::new();
            for e in &events { text.push_str("data: "); text.push_str(e); text.push_str("\r\n\r\n"); }
            let bytes = text.as_bytes();
            let cut = cut.min(bytes.len());
            let mut p = SseParser::new(1 << 12);
            let mut got = p.push(&bytes[..cut]).unwrap();
            got.extend(p.push(&bytes[cut..]).unwrap());
            // "data: " drops exactly one space, so each payload comes back unchanged.
            prop_assert_eq!(got, events);
        }
    }
}
