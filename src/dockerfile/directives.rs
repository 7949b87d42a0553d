//! Parser directives (grammar §2): `# syntax=`, `# escape=` and `# check=`
//! lines at the very head of the file. The first line that is not a known
//! directive (an instruction, a blank line, any other comment, an unknown
//! directive) ends the head; later directive-looking lines are comments.

use super::ast::{Directive, Directives, EscapeChar, Span};
use super::error::ErrorKind;
use nom::Parser;
use nom::bytes::complete::take_while;
use nom::character::complete::{char, satisfy};
use nom::combinator::recognize;
use nom::{IResult, sequence::pair};

/// Whitespace as the `\s` of Go's regular expressions.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// §2 `directive = "#" ws* name ws* "=" ws* value ws*`; the name is returned
/// as written.
fn directive(line: &str) -> IResult<&str, (&str, &str)> {
    let (rest, (_, _, name, _, _)) = (
        char('#'),
        take_while(is_re_space),
        recognize(pair(
            satisfy(|c| c.is_ascii_alphabetic()),
            take_while(|c: char| c.is_ascii_alphanumeric()),
        )),
        take_while(is_re_space),
        char('='),
    )
        .parse(line)?;
    // The value is everything after the spaces that follow `=`, up to the
    // trailing spaces. Like BuildKit's `\s*(.+?)\s*$` it is never empty: a
    // run of spaces alone leaves its last character as the value.
    let trimmed = rest.trim_start_matches(is_re_space);
    let value = if trimmed.is_empty() {
        match rest.char_indices().last() {
            Some((i, _)) => &rest[i..],
            None => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    rest,
                    nom::error::ErrorKind::Eof,
                )));
            }
        }
    } else {
        trimmed.trim_end_matches(is_re_space)
    };
    Ok(("", (name, value)))
}

/// Whether a value names a known directive; only these are directives.
fn known(name: &str) -> Option<&'static str> {
    ["syntax", "escape", "check"]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(name))
}

/// The state of directive recognition while the parser walks the head of the
/// file.
#[derive(Debug, Default)]
pub(crate) struct DirectiveScanner {
    done: bool,
    directives: Directives,
}

impl DirectiveScanner {
    /// Looks at one line (line ending removed, leading whitespace already
    /// stripped). Returns an error for a repeated directive or a bad escape.
    pub(crate) fn line(&mut self, line: &str, span: Span) -> Result<(), ErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line).ok().map(|(_, nv)| nv) else {
            self.done = true;
            return Ok(());
        };
        let Some(name) = known(name) else {
            self.done = true;
            return Ok(());
        };
        let slot = match name {
            "syntax" => &mut self.directives.syntax,
            "escape" => &mut self.directives.escape,
            _ => &mut self.directives.check,
        };
        if slot.is_some() {
            return Err(ErrorKind::DuplicateDirective(name.to_owned()));
        }
        if name == "escape" {
            self.directives.escape_char = match value {
                "\\" => EscapeChar::Backslash,
                "`" => EscapeChar::Backtick,
                other => return Err(ErrorKind::InvalidEscape(other.to_owned())),
            };
        }
        *slot = Some(Directive {
            value: value.to_owned(),
            span,
        });
        Ok(())
    }

    /// The escape character in force now.
    pub(crate) fn escape(&self) -> char {
        self.directives.escape_char.as_char()
    }

    /// The directives found.
    pub(crate) fn finish(self) -> Directives {
        self.directives
    }
}

/// The settings of a `# check=` directive (BuildKit's lint configuration):
/// `skip=Rule1,Rule2;error=true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckDirective {
    /// Rules to skip; `all` skips every rule.
    pub skip: Vec<String>,
    /// Whether lint findings fail the build.
    pub error: bool,
}

impl CheckDirective {
    /// Parses the directive's value.
    pub fn parse(value: &str) -> Result<CheckDirective, ErrorKind> {
        let mut check = CheckDirective::default();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| ErrorKind::InvalidCheck(format!("{part:?} is not key=value")))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "skip" => check.skip.extend(
                    val.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                ),
                "error" => {
                    check.error = parse_go_bool(val.trim()).ok_or_else(|| {
                        ErrorKind::InvalidCheck(format!("error={val:?} is not a boolean"))
                    })?
                }
                other => {
                    return Err(ErrorKind::InvalidCheck(format!("unknown option {other:?}")));
                }
            }
        }
        Ok(check)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(line: &str) -> Option<(String, String)> {
        directive(line)
            .ok()
            .map(|(_, (n, v))| (n.to_owned(), v.to_owned()))
    }

    #[test]
    fn directive_lines() {
        assert_eq!(value("# escape=`"), Some(("escape".into(), "`".into())));
        assert_eq!(value("#escape = `  "), Some(("escape".into(), "`".into())));
        assert_eq!(
            value("# syntax = docker/dockerfile:1 x"),
            Some(("syntax".into(), "docker/dockerfile:1 x".into()))
        );
        assert_eq!(value("# escape=  "), Some(("escape".into(), " ".into())));
        assert_eq!(value("# escape="), None);
        assert_eq!(value("# 1x=y"), None);
        assert_eq!(value("# just a comment"), None);
    }

    #[test]
    fn scanner_stops_at_first_other_line() {
        let mut s = DirectiveScanner::default();
        s.line("# escape=`", Span::default()).unwrap();
        assert_eq!(
            s.line("# escape=\\", Span::default()),
            Err(ErrorKind::DuplicateDirective("escape".into()))
        );
        let mut s = DirectiveScanner::default();
        s.line("# hello", Span::default()).unwrap();
        s.line("# escape=`", Span::default()).unwrap();
        assert_eq!(s.escape(), '\\');
        let mut s = DirectiveScanner::default();
        assert_eq!(
            s.line("# escape=x", Span::default()),
            Err(ErrorKind::InvalidEscape("x".into()))
        );
    }

    #[test]
    fn check_directive_options() {
        let c =
            CheckDirective::parse("skip=JSONArgsRecommended,StageNameCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error);
        assert!(CheckDirective::parse("bogus=1").is_err());
        assert!(CheckDirective::parse("error=maybe").is_err());
    }
}
