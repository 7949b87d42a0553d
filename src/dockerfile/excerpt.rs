//! Short excerpts of a Dockerfile for error reports: the lines around a
//! marked part, each cut to a readable width, so that a report about a
//! 50 MB line or a 10 000-line here-document stays a few lines long.

use miette::{MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Lines longer than this many characters are cut around the marked part.
const WIDTH: usize = 160;
/// Characters kept before the marked part when its line is cut.
const LEAD: usize = 40;
/// The least width a line is cut to, however narrow the terminal.
const MIN_WIDTH: usize = 12;
/// Columns a report needs right of the middle of a marked part for its
/// label (`╰── this step failed`).
const LABEL: usize = 21;

/// The columns of the terminal reports are shown on; 0 when they are not
/// shown on one (a log keeps lines up to [`WIDTH`]).
static COLUMNS: AtomicUsize = AtomicUsize::new(0);

/// Reports are shown on a terminal `columns` wide: excerpts made from now
/// on cut their lines so that a report's snippet, with its line numbers
/// and the marker under the marked part, fits without wrapping.
pub fn fit_to_terminal(columns: usize) {
    COLUMNS.store(columns, Ordering::Relaxed);
}

/// How many characters of a line an excerpt keeps, and how many of them
/// before the marked part, on a terminal `columns` wide (0: none) when the
/// snippet's last line is `last_line`.
fn widths(columns: usize, last_line: usize) -> (usize, usize) {
    if columns == 0 {
        return (WIDTH, LEAD);
    }
    // miette's gutter: ` 12 │ `; then the line and a `…` at either end.
    let gutter = last_line.to_string().len() + 4;
    let line = columns.saturating_sub(gutter + 2 * CUT.chars().count() + 1);
    // The label starts at the middle of the marked part.
    let label = 2 * columns.saturating_sub(gutter + 1 + LABEL);
    let width = line.min(label).clamp(MIN_WIDTH, WIDTH);
    (width, width / 4)
}
/// A marked part over more lines than this is marked on its first line only.
const MARKED_LINES: usize = 12;
/// What stands for the characters a cut left out.
const CUT: &str = "…";

/// The lines of a file around a marked part, as a [`SourceCode`] whose
/// line and column numbers are those of the whole file.
#[derive(Debug, Clone)]
pub struct Excerpt {
    name: String,
    text: String,
    /// 0-based line of the file where `text` starts.
    first_line: usize,
    /// Per line of `text`: the file's byte column of its first character
    /// less the excerpt's (non-zero where the start of a line was cut).
    column_shift: Vec<usize>,
}

/// One piece of the file copied into the excerpt: file bytes
/// `from..to` are excerpt bytes from `at`.
struct Piece {
    from: usize,
    to: usize,
    at: usize,
}

impl Excerpt {
    /// An excerpt of `name` with nothing in it, for errors about the file
    /// as a whole.
    pub fn empty(name: &str) -> Excerpt {
        Excerpt {
            name: name.to_owned(),
            text: String::new(),
            first_line: 0,
            column_shift: Vec::new(),
        }
    }

    /// The lines of `source` (named `name`) around bytes `start..end`, with
    /// one line of context on either side, and where those bytes are in the
    /// excerpt. A part over many lines is marked on its first.
    /// Lines are cut to fit the terminal [`fit_to_terminal`] names.
    pub fn new(name: &str, source: &str, start: usize, end: usize) -> (Excerpt, SourceSpan) {
        let columns = COLUMNS.load(Ordering::Relaxed);
        Excerpt::within(name, source, start, end, columns)
    }

    /// [`Excerpt::new`] for a report on a terminal `columns` wide (0: not
    /// on a terminal).
    fn within(
        name: &str,
        source: &str,
        start: usize,
        end: usize,
        columns: usize,
    ) -> (Excerpt, SourceSpan) {
        let start = floor_boundary(source, start);
        let mut end = floor_boundary(source, end.max(start));
        let start_line_at = line_start(source, start);
        let line_end = |at: usize| source[at..].find('\n').map_or(source.len(), |i| at + i);
        if source[start..end].matches('\n').count() >= MARKED_LINES {
            end = line_end(start);
        }
        let context_start = match start_line_at.checked_sub(1) {
            Some(newline) => line_start(source, newline),
            None => 0,
        };
        let last_line_end = line_end(end);
        let context_end = if last_line_end < source.len() {
            line_end(last_line_end + 1)
        } else {
            last_line_end
        };
        let first_line = source[..context_start].matches('\n').count();
        let last_line = first_line + 1 + source[context_start..context_end].matches('\n').count();
        let (width, lead) = widths(columns, last_line);

        let mut text = String::new();
        let mut pieces = Vec::new();
        let mut column_shift = Vec::new();
        let mut at = context_start;
        loop {
            let to = line_end(at);
            let shift = if to - at > width && source[at..to].chars().nth(width).is_some() {
                let from = if (at..=to).contains(&start) {
                    // Cutting a few characters off the start saves nothing.
                    Some(back_chars(source, at, start, lead)).filter(|&from| from - at > lead)
                } else {
                    None
                }
                .unwrap_or(at);
                let upto = forward_chars(source, from, to, width);
                // miette counts columns in bytes.
                let mut shift = from - at;
                if from > at {
                    text.push_str(CUT);
                    shift -= CUT.len();
                }
                pieces.push(Piece {
                    from,
                    to: upto,
                    at: text.len(),
                });
                text.push_str(&source[from..upto]);
                if upto < to {
                    text.push_str(CUT);
                }
                shift
            } else {
                pieces.push(Piece {
                    from: at,
                    to,
                    at: text.len(),
                });
                text.push_str(&source[at..to]);
                0
            };
            column_shift.push(shift);
            if to >= context_end {
                break;
            }
            text.push('\n');
            at = to + 1;
        }
        let new_start = map(&pieces, start);
        let new_end = map(&pieces, end).max(new_start);
        (
            Excerpt {
                name: name.to_owned(),
                text,
                first_line,
                column_shift,
            },
            SourceSpan::new(new_start.into(), new_end - new_start),
        )
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let shift = self.column_shift.get(inner.line()).copied().unwrap_or(0);
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            inner.column() + shift,
            inner.line_count(),
        )))
    }
}

/// Where file byte `offset` is in the excerpt made of `pieces`: in the
/// piece holding it, else at the end of the piece before it.
fn map(pieces: &[Piece], offset: usize) -> usize {
    let i = pieces.partition_point(|p| p.from <= offset);
    match i.checked_sub(1).and_then(|i| pieces.get(i)) {
        Some(p) => p.at + offset.min(p.to) - p.from,
        None => 0,
    }
}

/// The largest character boundary of `s` at or before `offset`.
fn floor_boundary(s: &str, offset: usize) -> usize {
    let mut offset = offset.min(s.len());
    while !s.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The start of the line holding byte `offset`.
fn line_start(s: &str, offset: usize) -> usize {
    s[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// `n` characters back from `offset`, not before `floor`.
fn back_chars(s: &str, floor: usize, offset: usize, n: usize) -> usize {
    s[floor..offset]
        .char_indices()
        .rev()
        .take(n)
        .last()
        .map_or(offset, |(i, _)| floor + i)
}

/// `n` characters on from `offset`, not beyond `ceiling`.
fn forward_chars(s: &str, offset: usize, ceiling: usize, n: usize) -> usize {
    s[offset..ceiling]
        .char_indices()
        .nth(n)
        .map_or(ceiling, |(i, _)| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, start: usize, end: usize) -> (String, String) {
        let (excerpt, span) = Excerpt::new("Dockerfile", source, start, end);
        let marked = excerpt.text[span.offset()..span.offset() + span.len()].to_owned();
        let contents = excerpt.read_span(&span, 0, 0).unwrap();
        let at = format!("{}:{}", contents.line() + 1, contents.column() + 1);
        (marked, at)
    }

    #[test]
    fn short_lines_are_kept_whole() {
        let source = "FROM a\nRUN b\nRUN c\nRUN d\n";
        let (excerpt, span) = Excerpt::new("Dockerfile", source, 13, 18);
        assert_eq!(excerpt.text, "RUN b\nRUN c\nRUN d");
        assert_eq!(&excerpt.text[span.offset()..][..span.len()], "RUN c");
        assert_eq!(render(source, 13, 18).1, "3:1");
    }

    #[test]
    fn a_long_line_is_cut_around_the_mark() {
        let source = format!(
            "FROM a\nRUN {}BAD{}\nRUN c\n",
            "x".repeat(5000),
            "y".repeat(5000)
        );
        let start = source.find("BAD").unwrap();
        let (excerpt, _) = Excerpt::new("Dockerfile", &source, start, start + 3);
        assert!(excerpt.text.len() < 3 * WIDTH, "{}", excerpt.text.len());
        let (marked, at) = render(&source, start, start + 3);
        assert_eq!(marked, "BAD");
        assert_eq!(at, format!("2:{}", 5 + 5000));
    }

    #[test]
    fn a_mark_near_the_start_of_a_long_line_keeps_the_start() {
        for at in 0..100 {
            let source = format!("FROM a\n{}BAD{}\n", "x".repeat(at), "y".repeat(5000));
            let start = source.find("BAD").unwrap();
            let (marked, position) = render(&source, start, start + 3);
            assert_eq!(marked, "BAD");
            assert_eq!(position, format!("2:{}", at + 1));
        }
    }

    #[test]
    fn any_span_of_any_text_makes_an_excerpt() {
        let pieces = ["a", "é", "\n", "y".repeat(300).leak(), "\r\n", " ", "€€€"];
        let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.u64(..);
        for _ in 0..2_000 {
            let source: String = (0..next() % 40)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let len = source.len() as u64 + 2;
            let (a, b) = ((next() % len) as usize, (next() % len) as usize);
            let (excerpt, span) = Excerpt::new("Dockerfile", &source, a.min(b), a.max(b));
            assert!(span.offset() + span.len() <= excerpt.text.len());
            excerpt.read_span(&span, 1, 1).unwrap();
        }
    }

    #[test]
    fn a_long_mark_is_cut_too() {
        let source = format!("RUN {}\n", "é".repeat(100_000));
        let (excerpt, span) = Excerpt::new("Dockerfile", &source, 0, source.len() - 1);
        assert!(excerpt.text.lines().all(|l| l.chars().count() <= WIDTH + 1));
        assert!(span.len() <= excerpt.text.len());
    }

    #[test]
    fn on_a_narrow_terminal_lines_are_cut_to_fit_and_the_mark_kept() {
        let source = format!(
            "FROM a\nRUN echo {} && BAD {}\n",
            "x".repeat(60),
            "y".repeat(60)
        );
        let start = source.find("BAD").unwrap();
        let (excerpt, span) = Excerpt::within("Dockerfile", &source, start, start + 3, 40);
        let (width, lead) = widths(40, 2);
        assert!((MIN_WIDTH..=34).contains(&width), "{width}");
        for line in excerpt.text.lines() {
            // The gutter ` 2 │ ` and the line fit in 40 columns.
            assert!(5 + line.chars().count() <= 40, "{line:?}");
        }
        assert_eq!(&excerpt.text[span.offset()..][..span.len()], "BAD");
        let cut = excerpt.text.lines().nth(1).unwrap();
        assert!(cut.starts_with(CUT) && cut.ends_with(CUT), "{cut:?}");
        assert_eq!(cut[CUT.len()..].find("BAD"), Some(lead));
        // The column miette names is the file's.
        let contents = excerpt.read_span(&span, 0, 0).unwrap();
        assert_eq!(contents.column() + 1, start - "FROM a\n".len() + 1);
    }

    #[test]
    fn a_mark_over_many_lines_is_marked_on_its_first() {
        let source = format!("FROM a\nRUN <<EOF\n{}EOF\n", "line\n".repeat(10_000));
        let (excerpt, span) = Excerpt::new("Dockerfile", &source, 7, source.len() - 1);
        assert_eq!(excerpt.text, "FROM a\nRUN <<EOF\nline");
        assert_eq!(&excerpt.text[span.offset()..][..span.len()], "RUN <<EOF");
    }
}
