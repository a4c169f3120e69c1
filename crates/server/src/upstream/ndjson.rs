//! Splits a byte stream into newline-delimited JSON lines (Ollama's streaming format),
//! with a bound on line length.

#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Returns every complete, non-empty line; `None` when a line outgrows `max_line`.
    pub(crate) fn push(&mut self, bytes: &[u8], max_line: usize) -> Option<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            self.buf.extend_from_slice(piece);
            if self.buf.last() == Some(&b'\n') {
                let line = std::mem::take(&mut self.buf);
                let trimmed = line.trim_ascii();
                if !trimmed.is_empty() {
                    lines.push(trimmed.to_vec());
                }
            }
            if self.buf.len() > max_line {
                return None;
            }
        }
        Some(lines)
    }

    /// Whatever remains after the stream ends (a last line without a newline).
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        let trimmed = rest.trim_ascii();
        (!trimmed.is_empty()).then(|| trimmed.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(
            s.push(b"{\"a\":1}\n{\"b\"", 64).unwrap(),
            vec![b"{\"a\":1}".to_vec()]
        );
        assert_eq!(s.push(b":2}\n\n", 64).unwrap(), vec![b"{\"b\":2}".to_vec()]);
        assert!(s.push(b"{\"c\":3}", 64).unwrap().is_empty());
        assert_eq!(s.finish(), Some(b"{\"c\":3}".to_vec()));
        assert!(s.push(&[b'x'; 100], 64).is_none());
    }
}
