//! One `.dockerignore` pattern, compiled the way Docker compiles it: exact,
//! prefix (`dir/**`) and suffix (`**/name`) patterns are compared as text,
//! everything else becomes an anchored regex where `*` and `?` stay within
//! one path element and `**` spans any number of them.

use regex::Regex;

use super::go_regex;

/// A cleaned pattern and how it matches.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    /// The text before a trailing `**`.
    Prefix(String),
    /// The text after a leading `**`.
    Suffix(String),
    Regex(Regex),
    /// Docker accepts the pattern when the matcher is built but fails every
    /// match with it (for example `[Local-Only]`, a reversed range).
    Invalid,
}

impl Pattern {
    /// Compiles an already cleaned pattern (without its `!`).
    pub(super) fn compile(text: String, exclusion: bool) -> Self {
        let matcher = compile(&text);
        Pattern {
            text,
            exclusion,
            matcher,
        }
    }

    /// The pattern as cleaned, without a leading `!`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a `!` pattern, which re-includes what it matches.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Whether `path` (slash-separated, relative to the context) matches;
    /// `None` when the pattern cannot match anything because it is malformed.
    pub(super) fn matches(&self, path: &str) -> Option<bool> {
        Some(match &self.matcher {
            Matcher::Exact => path == self.text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                // `**/foo` also matches `foo` itself.
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/') == Some(path)
            }
            Matcher::Regex(re) => re.is_match(path),
            Matcher::Invalid => return None,
        })
    }
}

/// Regex metacharacters that mean nothing in a pattern and are escaped.
fn is_regex_only_meta(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Docker's `Pattern.compile`: decides the kind while writing the regex
/// (in Go syntax) that the regex kind needs.
fn compile(pattern: &str) -> Matcher {
    // Go reads the pattern with text/scanner, which skips a leading BOM.
    let body = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = body.chars().peekable();
    let mut index = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is the same as `**`.
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if index == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            c if is_regex_only_meta(c) => {
                re.push('\\');
                re.push(c);
            }
            '\\' => {
                re.push('\\');
                if let Some(escaped) = chars.next() {
                    re.push(escaped);
                    kind = Kind::Regex;
                }
            }
            '[' | ']' => {
                re.push(c);
                kind = Kind::Regex;
            }
            c => re.push(c),
        }
        index += 1;
    }
    match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern.strip_prefix("**").unwrap_or(pattern).to_owned()),
        Kind::Regex => {
            re.push('$');
            go_regex::translate(&re)
                .and_then(|rust| Regex::new(&rust).ok())
                .map_or(Matcher::Invalid, Matcher::Regex)
        }
    }
}
