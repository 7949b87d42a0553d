//! Text a step printed, made safe to show on a terminal (shared by the
//! progress renderers and the failure report): [`displayed`] is the one
//! cleaning function, [`Tail`] the last few lines so cleaned.

use std::collections::VecDeque;

/// The last `capacity` lines a step printed, each reduced to what a
/// terminal would show of it on one line (see [`displayed`]).
#[derive(Debug, Clone)]
pub struct Tail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Tail {
    /// An empty tail keeping at most `capacity` lines.
    pub fn new(capacity: usize) -> Tail {
        Tail {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a line, dropping the oldest when full.
    pub fn push(&mut self, line: &str) {
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(displayed(line));
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }
}

/// What of `line` stays visible when a terminal prints it, as one line of
/// a fixed layout: [`cleaned`], with tabs as spaces.
pub fn displayed(line: &str) -> String {
    cleaned(line).replace('\t', " ")
}

/// What of `line` stays visible when a terminal prints it: the text after
/// its last carriage return (progress meters redraw with `\r`), without
/// ANSI escape sequences or control characters other than tab, so a
/// step's output can neither drive the terminal (move the cursor, set the
/// title or the clipboard, ring the bell) nor break the line it is on.
pub fn cleaned(line: &str) -> String {
    let visible = line
        .trim_end_matches(['\r', '\n'])
        .rsplit('\r')
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(visible.len());
    let mut chars = visible.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read: CSI
/// (`ESC [ … final`), OSC (`ESC ] … BEL` or `ESC ] … ESC \`), or a
/// two-character sequence.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                    chars.next();
                    break;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_oldest_first() {
        let mut tail = Tail::new(3);
        assert_eq!(tail.lines().len(), 0);
        for n in 1..=5 {
            tail.push(&format!("line {n}"));
        }
        assert_eq!(
            tail.lines().collect::<Vec<_>>(),
            ["line 3", "line 4", "line 5"]
        );
    }

    #[test]
    fn a_zero_capacity_tail_keeps_nothing() {
        let mut tail = Tail::new(0);
        tail.push("x");
        assert_eq!(tail.lines().len(), 0);
    }

    #[test]
    fn lines_lose_what_a_terminal_would_not_show_on_one_line() {
        // Colours, cursor moves and titles go; the text stays.
        assert_eq!(displayed("\u{1b}[1;32mok\u{1b}[0m done"), "ok done");
        assert_eq!(displayed("a\u{1b}[2Ab\u{1b}[Kc"), "abc");
        assert_eq!(displayed("\u{1b}]0;title\u{7}text"), "text");
        assert_eq!(displayed("\u{1b}]0;title\u{1b}\\text"), "text");
        // A progress meter shows its last state.
        assert_eq!(displayed(" 10%\r 50%\r100%"), "100%");
        assert_eq!(displayed("done\r\n"), "done");
        // Tabs become spaces, other control characters vanish.
        assert_eq!(displayed("a\tb\u{7}\u{8}c"), "a bc");
        assert_eq!(cleaned("a\tb\u{7}\u{8}\u{9b}c\u{7f}"), "a\tbc");
        assert_eq!(displayed("naïve ✓"), "naïve ✓");
    }
}
