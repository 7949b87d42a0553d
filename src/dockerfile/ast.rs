//! The syntax tree of a Dockerfile, as BuildKit's parser sees it: one node per
//! instruction with its flags and arguments still raw (no variable expansion,
//! no flag validation). Every node keeps where it came from in the source.
//!
//! The typed view with checked flags is [`super::instructions`]; this tree is
//! what `builder debug parse` dumps.

use std::fmt;

/// A point in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    /// Byte offset from the start of the file (a UTF-8 byte-order mark counts).
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// A half-open range of the source text: `start` is the first character,
/// `end` the position just after the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Where the range starts.
    pub start: Position,
    /// Where the range ends (exclusive).
    pub end: Position,
}

impl Span {
    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.end.offset.saturating_sub(self.start.offset)
    }

    /// True when the range covers no text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.start.line, self.start.column)
    }
}

/// The escape character chosen by the `# escape=` directive: it escapes
/// characters in words and, at the end of a line, continues the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EscapeChar {
    /// `\` (the default).
    #[default]
    Backslash,
    /// `` ` `` (common in Windows Dockerfiles).
    Backtick,
}

impl EscapeChar {
    /// The character itself.
    pub fn as_char(self) -> char {
        match self {
            EscapeChar::Backslash => '\\',
            EscapeChar::Backtick => '`',
        }
    }
}

/// One parser directive (`# syntax=…`, `# escape=…`, `# check=…`) from the
/// head of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The value after `=`, trimmed.
    pub value: String,
    /// The whole directive line.
    pub span: Span,
}

/// The parser directives found before the first instruction or comment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directives {
    /// `# syntax=` (the frontend image BuildKit would use; recorded only).
    pub syntax: Option<Directive>,
    /// `# escape=`, already validated to be `\` or `` ` ``.
    pub escape: Option<Directive>,
    /// `# check=` (lint configuration), raw.
    pub check: Option<Directive>,
    /// The escape character in force for the whole file.
    pub escape_char: EscapeChar,
}

/// The instruction keywords of the Dockerfile reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// `ADD`
    Add,
    /// `ARG`
    Arg,
    /// `CMD`
    Cmd,
    /// `COPY`
    Copy,
    /// `ENTRYPOINT`
    Entrypoint,
    /// `ENV`
    Env,
    /// `EXPOSE`
    Expose,
    /// `FROM`
    From,
    /// `HEALTHCHECK`
    Healthcheck,
    /// `LABEL`
    Label,
    /// `MAINTAINER` (deprecated but accepted)
    Maintainer,
    /// `ONBUILD`
    Onbuild,
    /// `RUN`
    Run,
    /// `SHELL`
    Shell,
    /// `STOPSIGNAL`
    StopSignal,
    /// `USER`
    User,
    /// `VOLUME`
    Volume,
    /// `WORKDIR`
    Workdir,
}

impl Keyword {
    /// Every keyword, in the order of the Dockerfile reference's index.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::StopSignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword in upper case, as the reference spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::StopSignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// The keyword `word` names, in any case. Letters fold the way Go's
    /// `strings.ToLower` folds them (one rune to one rune), as BuildKit
    /// compares keywords: the Kelvin sign matches `k` and `İ` matches `i`.
    pub fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| {
            let expected = k.as_str().chars().map(|c| c.to_ascii_lowercase());
            expected.eq(word.chars().map(go_lower))
        })
    }
}

impl Keyword {
    /// The keyword `word` was most likely meant to be (a typo within two
    /// edits, case ignored), for "did you mean" hints.
    pub fn closest(word: &str) -> Option<Keyword> {
        let word: Vec<char> = word.chars().map(|c| c.to_ascii_uppercase()).collect();
        if word.len() < 2 {
            return None;
        }
        Keyword::ALL
            .into_iter()
            .map(|k| (edit_distance(&word, k.as_str()), k))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k)
    }
}

/// Levenshtein distance between `a` and the ASCII keyword `b`.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (prev + cost).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Go's `unicode.ToLower` for one rune (a single rune out, unlike Rust's
/// full case mapping).
fn go_lower(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A piece of text taken from the source, with its span. `value` is the text
/// after the parser's own processing (JSON strings unescaped, flag quotes
/// removed); everywhere else it is the raw source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text.
    pub value: String,
    /// Where it was written.
    pub span: Span,
}

/// A `--name[=value]` flag of an instruction, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag as BuildKit keeps it: `--name=value` with quotes and
    /// backslashes of the source removed.
    pub text: String,
    /// Where the flag was written.
    pub span: Span,
}

impl Flag {
    /// The flag's name, without the leading `--` or any `=value`.
    pub fn name(&self) -> &str {
        let body = self.text.strip_prefix("--").unwrap_or(&self.text);
        body.split_once('=').map_or(body, |(name, _)| name)
    }

    /// The value after the first `=`, if the flag has one.
    pub fn value(&self) -> Option<&str> {
        let body = self.text.strip_prefix("--").unwrap_or(&self.text);
        body.split_once('=').map(|(_, value)| value)
    }
}

/// How a command-like instruction (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK
/// CMD) was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// Exec form: a JSON array of strings, already unescaped.
    Exec(Vec<Word>),
    /// Shell form: the rest of the line, raw.
    Shell(Word),
}

/// Whether an ENV/LABEL pair was written `key=value` or the legacy `KEY value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSyntax {
    /// `key=value` (any number per instruction).
    Equals,
    /// `key value` (one per instruction; the value is the rest of the line).
    Legacy,
}

/// One ENV or LABEL pair, raw (quotes and escapes still in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Word,
    /// The value.
    pub value: Word,
    /// How it was written.
    pub syntax: PairSyntax,
}

/// The arguments of an instruction, in the shape its keyword's grammar rule
/// gives them (grammar §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Nothing after the keyword and flags.
    Empty,
    /// RUN, CMD, ENTRYPOINT, SHELL: exec or shell form.
    Command(CommandForm),
    /// ADD, COPY, VOLUME, FROM, EXPOSE, ARG: a list of words. `json` is true
    /// when ADD/COPY/VOLUME used the JSON array form.
    List {
        /// The words.
        words: Vec<Word>,
        /// Written as a JSON array.
        json: bool,
    },
    /// MAINTAINER, STOPSIGNAL, USER, WORKDIR: the rest of the line.
    Text(Word),
    /// ENV, LABEL.
    Pairs(Vec<KeyValue>),
    /// HEALTHCHECK: its first word (`CMD`, `NONE`, …) and what follows.
    Healthcheck {
        /// The first word, as written.
        kind: Word,
        /// The command after it, if any.
        command: Option<CommandForm>,
    },
    /// ONBUILD: the instruction it holds.
    Onbuild(Box<Node>),
}

/// A here-document attached to a RUN, COPY or ADD instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), if any.
    pub fd: Option<u32>,
    /// False when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body lines (and the
    /// terminator may be indented with tabs).
    pub chomp: bool,
    /// The body, raw, every line with its line ending; tabs are not yet
    /// stripped (see [`Heredoc::body`]).
    pub content: String,
    /// Where the body and its terminator line are.
    pub span: Span,
}

impl Heredoc {
    /// The body as the instruction uses it: with leading tabs removed from
    /// every line when the heredoc was opened with `<<-`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Which instruction.
    pub keyword: Keyword,
    /// The keyword as written (original case).
    pub keyword_word: Word,
    /// The `--flags` between keyword and arguments, unvalidated.
    pub flags: Vec<Flag>,
    /// The arguments.
    pub args: Args,
    /// Here-documents, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuations joined, comment lines dropped.
    pub original: String,
    /// The comment lines directly above the instruction, without `#`.
    pub comments: Vec<String>,
    /// From the keyword to the end of the last line the instruction uses
    /// (continuation lines and heredoc bodies included).
    pub span: Span,
}

/// A non-fatal finding of the parser (BuildKit prints these as warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What was found.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxTree {
    /// The file name given to the parser (used in error reports).
    pub file: String,
    /// The source text (shared with error reports).
    pub source: std::sync::Arc<str>,
    /// The parser directives at the head of the file.
    pub directives: Directives,
    /// The instructions, in order (never empty).
    pub nodes: Vec<Node>,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

impl SyntaxTree {
    /// First line of the first instruction and last line of the last one.
    pub fn line_range(&self) -> (usize, usize) {
        let start = self.nodes.first().map_or(0, |n| n.span.start.line);
        let end = self.nodes.last().map_or(0, |n| n.span.end.line);
        (start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_fold_case_like_go() {
        assert_eq!(Keyword::from_word("rUn"), Some(Keyword::Run));
        assert_eq!(Keyword::from_word("WOR\u{212a}DIR"), Some(Keyword::Workdir));
        assert_eq!(Keyword::from_word("RUNX"), None);
        assert_eq!(Keyword::from_word(""), None);
    }

    #[test]
    fn typos_suggest_the_keyword() {
        assert_eq!(Keyword::closest("FORM"), Some(Keyword::From));
        assert_eq!(Keyword::closest("cpy"), Some(Keyword::Copy));
        assert_eq!(Keyword::closest("workdri"), Some(Keyword::Workdir));
        assert_eq!(Keyword::closest("banana"), None);
        assert_eq!(Keyword::closest("{{"), None);
    }

    #[test]
    fn flag_name_and_value() {
        let flag = Flag {
            text: "--mount=type=cache,target=/x".into(),
            span: Span::default(),
        };
        assert_eq!(flag.name(), "mount");
        assert_eq!(flag.value(), Some("type=cache,target=/x"));
    }

    #[test]
    fn chomped_heredoc_body_loses_leading_tabs() {
        let doc = Heredoc {
            name: "EOF".into(),
            fd: None,
            expand: true,
            chomp: true,
            content: "\t\tone\n\ttwo\n".into(),
            span: Span::default(),
        };
        assert_eq!(doc.body(), "one\ntwo\n");
    }
}
