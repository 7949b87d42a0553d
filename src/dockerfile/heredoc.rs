//! Here-document markers (grammar §6): finding `<<EOF`, `<<-EOF`,
//! `<<"EOF"`, `3<<EOF` words on a RUN/COPY/ADD line the way BuildKit's shell
//! lexer splits it, and deciding name, tab stripping and expansion.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::char;
use nom::combinator::{opt, rest, verify};

/// A heredoc marker found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The delimiter, unquoted.
    pub name: String,
    /// The file descriptor written before `<<`, if any.
    pub fd: Option<u32>,
    /// False when any part of the delimiter was quoted.
    pub expand: bool,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
}

/// Splits a line into shell words keeping quotes and escapes in the words
/// (BuildKit's lexer with raw quotes and raw escapes). An unterminated quote
/// makes the lexer fail, and BuildKit then finds no words at all.
fn raw_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                word.push(c);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Vec::new(),
                    }
                }
                word.push('\'');
            }
            '"' => {
                word.push(c);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            word.push('\\');
                            let mut peek = chars.clone();
                            if let Some(n @ ('"' | '$' | '\\')) = peek.next() {
                                word.push(n);
                                chars = peek;
                            }
                        }
                        Some(q) => word.push(q),
                        None => return Vec::new(),
                    }
                }
                word.push('"');
            }
            '\\' => {
                word.push('\\');
                match chars.next() {
                    Some(n) => word.push(n),
                    None => break,
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Removes shell quoting from a delimiter word. Returns the unquoted word
/// and whether any part of it was quoted, or `None` when it is not exactly
/// one non-empty word.
fn unquote(word: &str) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        q => out.push(q),
                    }
                }
            }
            '"' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let mut peek = chars.clone();
                            match peek.next() {
                                Some(n @ ('"' | '$' | '\\')) => {
                                    out.push(n);
                                    chars = peek;
                                }
                                _ => out.push('\\'),
                            }
                        }
                        q => out.push(q),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some((out, quoted))
}

/// §6 `marker = digit* "<<" "-"? delimiter`, where the delimiter holds no `<`.
fn marker_parts(word: &str) -> IResult<&str, (&str, Option<char>, &str)> {
    (
        take_while(|c: char| c.is_ascii_digit()),
        tag("<<"),
        opt(char('-')),
        verify(rest, |r: &str| !r.is_empty() && !r.contains('<')),
    )
        .parse(word)
        .map(|(i, (fd, _, dash, name))| (i, (fd, dash, name)))
}

/// The heredoc a single word opens, if it is a marker.
pub fn parse_marker(word: &str) -> Option<Marker> {
    let (_, (fd, dash, delimiter)) = marker_parts(word).ok()?;
    let (name, quoted) = unquote(delimiter)?;
    Some(Marker {
        name,
        fd: fd.parse().ok(),
        expand: !quoted,
        chomp: dash.is_some(),
    })
}

/// All heredoc markers of an instruction line, in order.
pub(crate) fn markers(line: &str) -> Vec<Marker> {
    raw_words(line)
        .iter()
        .filter_map(|w| parse_marker(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, Option<u32>)> {
        markers(line)
            .into_iter()
            .map(|m| (m.name, m.expand, m.chomp, m.fd))
            .collect()
    }

    #[test]
    fn finds_markers_like_buildkit() {
        assert_eq!(names("RUN <<EOF"), [("EOF".into(), true, false, None)]);
        assert_eq!(
            names("RUN <<-'EOT' 3<<\"X Y\" cat"),
            [
                ("EOT".into(), false, true, None),
                ("X Y".into(), false, false, Some(3))
            ]
        );
        assert_eq!(
            names("COPY <<a <<b /dest"),
            [
                ("a".into(), true, false, None),
                ("b".into(), true, false, None)
            ]
        );
        assert_eq!(names("RUN echo \"<<EOF\""), []);
        assert_eq!(names("RUN echo '<<EOF"), []);
        assert_eq!(
            names("RUN cat <<EOF>file"),
            [("EOF>file".into(), true, false, None)]
        );
        assert_eq!(names("RUN a << b"), []);
        assert_eq!(names("RUN <<E\\OF"), [("EOF".into(), true, false, None)]);
        assert_eq!(names("RUN <<''"), []);
    }
}
