//! The last lines a RUN step printed, kept while it runs (in a bounded
//! ring) so that its failure can show them: the progress stream may have
//! scrolled them away, or a terminal renderer may never have shown them.

use crate::sandbox::Stream;
use crate::terminal_text::{Tail, displayed};
use std::fmt;

/// How many lines a failure shows.
pub const TAIL_LINES: usize = 20;

/// Characters of one line shown; the rest is cut with a note of its size.
const LINE_CHARS: usize = 240;

/// Bytes of one line kept while it is being read (enough for
/// [`LINE_CHARS`] characters of any UTF-8 text).
const LINE_BYTES: usize = LINE_CHARS * 4;

/// The last [`TAIL_LINES`] lines of a step's stdout and stderr, in the
/// order they were printed, each cut to a readable length and decoded
/// lossily (output need not be text). Memory stays bounded whatever the
/// step prints.
#[derive(Debug, Clone)]
pub struct OutputTail {
    /// The last lines, oldest first, as shown.
    lines: Tail,
    /// Lines seen in all.
    total: usize,
    stdout: Partial,
    stderr: Partial,
    /// What builder adds below the lines (why they say what they say).
    hint: Option<String>,
}

/// A line not yet ended by a newline: its first bytes and its full length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Partial {
    head: Vec<u8>,
    len: usize,
}

impl Default for OutputTail {
    fn default() -> Self {
        OutputTail {
            lines: Tail::new(TAIL_LINES),
            total: 0,
            stdout: Partial::default(),
            stderr: Partial::default(),
            hint: None,
        }
    }
}

impl OutputTail {
    /// An empty tail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a piece of output as the sandbox delivers it: a line with its
    /// newline, or a piece of a longer line (continued by the next piece of
    /// the same stream).
    pub fn push(&mut self, stream: Stream, piece: &[u8]) {
        let partial = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let room = LINE_BYTES.saturating_sub(partial.head.len());
        partial
            .head
            .extend_from_slice(piece.get(..room).unwrap_or(piece));
        partial.len += piece.len();
        if piece.ends_with(b"\n") {
            // The size a cut line reports is that of its text.
            partial.len -= 1;
            let line = std::mem::take(partial);
            self.keep(line);
        }
    }

    /// Ends the lines still open (output that did not end with a newline).
    pub fn finish(&mut self) {
        for partial in [
            std::mem::take(&mut self.stdout),
            std::mem::take(&mut self.stderr),
        ] {
            if partial.len > 0 {
                self.keep(partial);
            }
        }
    }

    /// The kept lines as shown, oldest first.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = &str> {
        self.lines.lines()
    }

    /// Whether a kept line holds every one of `words`.
    pub fn has_line_with(&self, words: &[&str]) -> bool {
        self.lines()
            .any(|line| words.iter().all(|word| line.contains(word)))
    }

    /// Adds a hint shown below the lines.
    pub fn set_hint(&mut self, hint: String) {
        self.hint = Some(hint);
    }

    /// How many lines the step printed in all (kept or not).
    pub fn total(&self) -> usize {
        self.total
    }

    fn keep(&mut self, line: Partial) {
        self.total += 1;
        self.lines.push(&shown(&line));
    }
}

/// A line as shown: decoded lossily, as a layout shows it ([`displayed`]:
/// escape sequences and control characters cannot drive the terminal), and
/// cut after [`LINE_CHARS`] characters with the line's size.
fn shown(line: &Partial) -> String {
    let text = displayed(&String::from_utf8_lossy(&line.head));
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(LINE_CHARS).collect();
    if chars.next().is_some() || line.len > line.head.len() {
        out.push_str(&format!("… (line cut, {} bytes in all)", line.len));
    }
    out
}

/// The tail as a report section: a heading that says how much is shown,
/// then the lines.
impl fmt::Display for OutputTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            0 => return f.write_str("the step printed nothing"),
            1 => f.write_str("its output (1 line):")?,
            n if n <= TAIL_LINES => write!(f, "its output ({n} lines):")?,
            n => write!(
                f,
                "last {} lines of its output ({n} in all):",
                self.lines.lines().len()
            )?,
        }
        for line in self.lines() {
            write!(f, "\n  {line}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(pieces: &[(Stream, &[u8])]) -> OutputTail {
        let mut tail = OutputTail::new();
        for (stream, piece) in pieces {
            tail.push(*stream, piece);
        }
        tail.finish();
        tail
    }

    #[test]
    fn keeps_the_last_lines_in_order() {
        let mut tail = OutputTail::new();
        for i in 1..=30 {
            tail.push(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        tail.finish();
        let lines: Vec<&str> = tail.lines().collect();
        let expected: Vec<String> = (11..=30).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, expected);
        assert_eq!(tail.total(), 30);
        let text = tail.to_string();
        assert!(text.starts_with("last 20 lines of its output (30 in all):\n  line 11\n"));
        assert!(text.ends_with("\n  line 30"));
    }

    #[test]
    fn pieces_of_a_line_join_per_stream() {
        let tail = tail_of(&[
            (Stream::Stdout, b"hello "),
            (Stream::Stderr, b"warning\n"),
            (Stream::Stdout, b"world\n"),
            (Stream::Stderr, b"no newline at the end"),
        ]);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines, ["warning", "hello world", "no newline at the end"]);
        assert_eq!(
            tail.to_string(),
            "its output (3 lines):\n  warning\n  hello world\n  no newline at the end"
        );
    }

    #[test]
    fn long_lines_are_cut_with_their_size() {
        let long = "x".repeat(100_000);
        let tail = tail_of(&[
            (Stream::Stdout, &long.as_bytes()[..65_536]),
            (Stream::Stdout, &long.as_bytes()[65_536..]),
            (Stream::Stdout, b"\n"),
        ]);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0],
            format!(
                "{}… (line cut, 100000 bytes in all)",
                "x".repeat(LINE_CHARS)
            )
        );
    }

    #[test]
    fn binary_output_is_shown_lossily() {
        let tail = tail_of(&[(
            Stream::Stdout,
            b"\xff\xfeok\x1b[31mred\x1b]52;c;aGk=\x07\x9b\r\n",
        )]);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines, ["\u{FFFD}\u{FFFD}okred\u{FFFD}"]);
    }

    #[test]
    fn no_output_says_so() {
        let tail = tail_of(&[]);
        assert_eq!(tail.lines().count(), 0);
        assert_eq!(tail.to_string(), "the step printed nothing");
    }
}
