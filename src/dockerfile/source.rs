//! Mapping byte offsets to lines and columns, and text of a joined logical
//! line back to where each piece was written.

use super::ast::{Position, Span};
use std::cell::Cell;

/// Line starts of a source text, to turn byte offsets into positions.
#[derive(Debug)]
pub(crate) struct SourceIndex<'a> {
    text: &'a str,
    ascii: bool,
    line_starts: Vec<usize>,
    /// The last position computed: positions are mostly asked for in
    /// increasing order, so columns are counted on from there, which keeps
    /// a line with many words linear rather than quadratic.
    last: Cell<Position>,
}

impl<'a> SourceIndex<'a> {
    pub(crate) fn new(text: &'a str) -> SourceIndex<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceIndex {
            text,
            ascii: text.is_ascii(),
            line_starts,
            last: Cell::new(Position {
                offset: 0,
                line: 1,
                column: 1,
            }),
        }
    }

    /// The position of byte `offset` (clamped to the text and moved back to
    /// a character boundary).
    pub(crate) fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let last = self.last.get();
        let (from, column) = if self.ascii {
            (offset, offset - start + 1)
        } else if last.line == line && last.offset <= offset {
            (last.offset, last.column)
        } else {
            (start, 1)
        };
        let column = column + self.text.get(from..offset).map_or(0, |s| s.chars().count());
        let position = Position {
            offset,
            line,
            column,
        };
        self.last.set(position);
        position
    }

    /// The span of bytes `start..end`.
    pub(crate) fn span(&self, start: usize, end: usize) -> Span {
        Span {
            start: self.position(start),
            end: self.position(end.max(start)),
        }
    }
}

/// A logical line: physical lines joined after removing continuations, with
/// a map from each byte of the joined text back to the source.
#[derive(Debug, Default)]
pub(crate) struct LogicalLine {
    pub(crate) text: String,
    /// (offset in `text`, offset in the source) of each appended piece.
    pieces: Vec<(usize, usize)>,
}

impl LogicalLine {
    /// Appends `piece`, which was written at byte `source_offset`.
    pub(crate) fn push(&mut self, piece: &str, source_offset: usize) {
        if piece.is_empty() {
            return;
        }
        self.pieces.push((self.text.len(), source_offset));
        self.text.push_str(piece);
    }

    /// Source offset of the character starting at `offset` of the text.
    fn source_start(&self, offset: usize) -> usize {
        let i = self.pieces.partition_point(|&(l, _)| l <= offset);
        match i.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(&(l, s)) => s + (offset - l),
            None => 0,
        }
    }

    /// Source offset just after the character ending at `offset` of the text.
    fn source_end(&self, offset: usize) -> usize {
        let i = self.pieces.partition_point(|&(l, _)| l < offset);
        match i.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(&(l, s)) => s + (offset - l),
            None => self.source_start(offset),
        }
    }

    /// The source span of bytes `start..end` of the text.
    pub(crate) fn span(&self, index: &SourceIndex<'_>, start: usize, end: usize) -> Span {
        let s = self.source_start(start);
        let e = if end > start { self.source_end(end) } else { s };
        index.span(s, e)
    }

    /// The source span of `sub`, which must be a slice of `self.text`
    /// (anything else yields the span of the line's start).
    pub(crate) fn span_of(&self, index: &SourceIndex<'_>, sub: &str) -> Span {
        let base = self.text.as_ptr() as usize;
        let at = (sub.as_ptr() as usize).wrapping_sub(base);
        if at <= self.text.len() && at + sub.len() <= self.text.len() {
            self.span(index, at, at + sub.len())
        } else {
            self.span(index, 0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let index = SourceIndex::new("ab\nçd é\n");
        assert_eq!(index.position(0).line, 1);
        let p = index.position(5);
        assert_eq!((p.line, p.column), (2, 2));
        assert_eq!(index.position(7).column, 4);
        assert_eq!(index.position(6).column, 3);
        assert_eq!(index.position(99).line, 3);
        let ascii = SourceIndex::new("ab\ncd");
        assert_eq!((ascii.position(4).line, ascii.position(4).column), (2, 2));
    }

    #[test]
    fn logical_line_maps_back_across_joins() {
        let src = "RUN a \\\n  b\n";
        let index = SourceIndex::new(src);
        let mut line = LogicalLine::default();
        line.push("RUN a ", 0);
        line.push("  b", 8);
        let b = line.text.find('b').unwrap();
        let span = line.span(&index, b, b + 1);
        assert_eq!((span.start.line, span.start.column), (2, 3));
        let all = line.span(&index, 0, line.text.len());
        assert_eq!((all.start.line, all.end.line, all.end.column), (1, 2, 4));
    }
}
