//! The Dockerfile parser: source text → [`SyntaxTree`]. It follows
//! `grammar/dockerfile.md` section by section and reproduces BuildKit's
//! parser (moby/buildkit `frontend/dockerfile/parser`), quirks included,
//! so that a file means here what it means to `docker build`.

use super::ast::{
    Args, CommandForm, Directives, Flag, Heredoc, KeyValue, Keyword, Node, PairSyntax, Span,
    SyntaxTree, Warning, Word,
};
use super::directives::DirectiveScanner;
use super::error::{Error, ErrorKind, Located};
use super::heredoc;
use super::json::{self, JsonArray};
use super::source::{LogicalLine, SourceIndex};
use nom::IResult;
use nom::Parser as _;
use nom::branch::alt;
use nom::bytes::complete::{take_till, take_while1};
use nom::character::complete::{anychar, char, one_of};
use nom::combinator::{consumed, opt, verify};
use nom::multi::{fold_many0, fold_many1};
use nom::sequence::preceded;
use std::sync::Arc;

/// BuildKit reads lines with Go's `bufio.Scanner`, which refuses longer ones.
const MAX_LINE_BYTES: usize = 65_535;
/// The largest Dockerfile builder parses. BuildKit receives the file from
/// the client in one gRPC message of at most 16 MiB; a real Dockerfile is a
/// few kilobytes (with here-documents, rarely a megabyte).
pub const MAX_FILE_BYTES: usize = 16 << 20;
/// ONBUILD may hold one instruction; BuildKit's parser nests further and its
/// second stage rejects it. Deeper nesting than this is refused outright.
const MAX_ONBUILD_DEPTH: usize = 4;

/// Parses Dockerfile `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<SyntaxTree, Error> {
    if text.len() > MAX_FILE_BYTES {
        let index = SourceIndex::new(text);
        return Err(Error::new(
            ErrorKind::FileTooLarge,
            index.span(0, 0),
            file,
            text,
        ));
    }
    let source: Arc<str> = Arc::from(text);
    match Parser::new(text).run() {
        Ok((directives, nodes, warnings)) => Ok(SyntaxTree {
            file: file.to_owned(),
            source,
            directives,
            nodes,
            warnings,
        }),
        Err(e) => Err(Error::new(e.kind, e.span, file, text)),
    }
}

/// Reads a Dockerfile from `reader`, stopping one byte after
/// [`MAX_FILE_BYTES`] (parsing then refuses it): an endless or huge input
/// (`-f /dev/zero`) is not read whole.
pub fn read_bounded(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses a Dockerfile given as bytes; text that is not UTF-8 is an error
/// pointing at the first bad byte.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<SyntaxTree, Error> {
    if bytes.len() > MAX_FILE_BYTES {
        return parse(file, &String::from_utf8_lossy(bytes));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => {
            let text = String::from_utf8_lossy(bytes);
            let at = e.valid_up_to();
            let span = SourceIndex::new(&text).span(at, at + '\u{FFFD}'.len_utf8());
            Err(Error::new(ErrorKind::InvalidUtf8, span, file, &text))
        }
    }
}

/// §1 A physical line: its text with and without the line ending.
#[derive(Debug, Clone, Copy)]
struct Physical<'a> {
    /// Byte offset of the line in the source.
    start: usize,
    /// The line including its `\n`.
    raw: &'a str,
    /// The line without trailing `\r` and `\n` characters.
    content: &'a str,
}

impl Physical<'_> {
    fn content_end(&self) -> usize {
        self.start + self.content.len()
    }
}

/// §3 `line-ws`: the whitespace that separates keyword, flags and list words
/// (Go's `[\t\v\f\r ]`).
fn is_line_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Whether a (line-ending-free) line is a comment line (§1).
fn is_comment(content: &str) -> bool {
    content.trim_start().starts_with('#')
}

/// §3 Removes a trailing line continuation: the escape character followed
/// only by spaces and tabs, unless the escape itself is escaped. Returns the
/// line without it and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

struct Parser<'a> {
    text: &'a str,
    index: SourceIndex<'a>,
    pos: usize,
    line_no: usize,
    directives: DirectiveScanner,
    nodes: Vec<Node>,
    warnings: Vec<Warning>,
    comments: Vec<String>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            index: SourceIndex::new(text),
            pos: 0,
            line_no: 0,
            directives: DirectiveScanner::default(),
            nodes: Vec::new(),
            warnings: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// §1 The next physical line, counting it.
    fn next_line(&mut self) -> Result<Option<Physical<'a>>, Located> {
        let rest = &self.text[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let len = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let raw = &rest[..len];
        let line = Physical {
            start: self.pos,
            raw,
            content: raw.trim_end_matches(['\r', '\n']),
        };
        self.pos += len;
        self.line_no += 1;
        if raw.trim_end_matches('\n').len() > MAX_LINE_BYTES {
            return Err(Located::new(
                ErrorKind::LineTooLong,
                self.index.span(line.start, line.start + MAX_LINE_BYTES),
            ));
        }
        Ok(Some(line))
    }

    fn run(mut self) -> Result<(Directives, Vec<Node>, Vec<Warning>), Located> {
        while let Some(line) = self.next_line()? {
            self.instruction(line)?;
        }
        if self.nodes.is_empty() {
            let end = self.text.len();
            return Err(Located::new(
                ErrorKind::NoInstructions,
                self.index.span(end, end),
            ));
        }
        Ok((self.directives.finish(), self.nodes, self.warnings))
    }

    /// §1–§3 Reads one logical line starting at `first` (skipping it when it
    /// is blank, a comment or a directive) and the lines it continues onto,
    /// then parses the instruction and its heredoc bodies.
    fn instruction(&mut self, first: Physical<'a>) -> Result<(), Located> {
        let mut content = first.content;
        let mut start = first.start;
        if self.line_no == 1 {
            if let Some(rest) = content.strip_prefix('\u{feff}') {
                content = rest;
                start += '\u{feff}'.len_utf8();
            }
        }
        if is_comment(content) {
            let mut chars = content.chars();
            chars.next();
            let comment = chars.as_str().trim();
            if comment.is_empty() {
                self.comments.clear();
            } else {
                self.comments.push(comment.to_owned());
            }
        }
        let body = content.trim_start();
        start += content.len() - body.len();
        let line_span = self.index.span(start, first.content_end());
        self.directives
            .line(body, line_span)
            .map_err(|kind| Located::new(kind, line_span))?;
        let body = if body.starts_with('#') { "" } else { body };

        let escape = self.directives.escape();
        let (piece, mut ended) = trim_continuation(body, escape);
        if ended && piece.is_empty() {
            return Ok(());
        }
        let mut logical = LogicalLine::default();
        logical.push(piece, start);
        let mut end = first.content_end();
        let mut empty_continuation = false;
        while !ended {
            let Some(next) = self.next_line()? else {
                break;
            };
            end = next.content_end();
            if is_comment(next.content) {
                continue;
            }
            if next.content.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, e) = trim_continuation(next.content, escape);
            logical.push(piece, next.start);
            ended = e;
        }
        let whole = self.index.span(start, end);
        if empty_continuation {
            self.warnings.push(Warning {
                message: format!("Empty continuation line found in: {}", logical.text),
                span: whole,
            });
        }

        let ctx = LineCtx {
            line: &logical,
            index: &self.index,
            escape,
        };
        let mut node = ctx.node(&logical.text, 0)?;
        node.comments = std::mem::take(&mut self.comments);
        node.span = whole;

        if can_contain_heredoc(&node) && logical.text.contains("<<") {
            for marker in heredoc::markers(&logical.text) {
                let doc = self.heredoc_body(marker, whole)?;
                end = doc.span.end.offset.max(end);
                node.heredocs.push(doc);
            }
            node.span = self.index.span(start, end);
        }
        self.nodes.push(node);
        Ok(())
    }

    /// §6 Reads a heredoc body up to its terminator line.
    fn heredoc_body(&mut self, marker: heredoc::Marker, at: Span) -> Result<Heredoc, Located> {
        let mut content = String::new();
        let mut body_start = None;
        while let Some(line) = self.next_line()? {
            let from = *body_start.get_or_insert(line.start);
            let mut candidate = line.raw.trim_end_matches(['\r', '\n']);
            if marker.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == marker.name {
                return Ok(Heredoc {
                    name: marker.name,
                    fd: marker.fd,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    content,
                    span: self.index.span(from, line.content_end()),
                });
            }
            content.push_str(line.raw);
        }
        Err(Located::new(
            ErrorKind::UnterminatedHeredoc(marker.name),
            at,
        ))
    }
}

/// §6 Only RUN, COPY and ADD in shell form (also inside ONBUILD) take heredocs.
fn can_contain_heredoc(node: &Node) -> bool {
    let node = match &node.args {
        Args::Onbuild(inner) if node.keyword == Keyword::Onbuild => inner.as_ref(),
        _ => node,
    };
    match (node.keyword, &node.args) {
        (Keyword::Run, Args::Command(CommandForm::Exec(_))) => false,
        (Keyword::Copy | Keyword::Add, Args::List { json: true, .. }) => false,
        (k, _) => matches!(k, Keyword::Run | Keyword::Copy | Keyword::Add),
    }
}

/// §4 `instruction = keyword (line-ws+ rest)?`: splits the keyword off a
/// trimmed line.
fn split_command(line: &str) -> (&str, Option<&str>) {
    let parsed: IResult<&str, &str> = take_till(is_line_ws).parse(line);
    let Ok((rest, cmd)) = parsed else {
        return (line, None);
    };
    let gap: IResult<&str, &str> = take_while1(is_line_ws).parse(rest);
    match gap {
        Ok((rest, _)) => (cmd, Some(rest)),
        Err(_) => (cmd, None),
    }
}

/// §4 One piece of a flag word: quoted text, a backslash escape, or plain
/// characters; returns the text with quotes and backslashes removed.
fn flag_piece(i: &str) -> IResult<&str, String> {
    alt((
        flag_quoted,
        preceded(char('\\'), opt(anychar)).map(|c| c.map(String::from).unwrap_or_default()),
        take_while1(|c: char| !c.is_whitespace() && !matches!(c, '\'' | '"' | '\\'))
            .map(String::from),
    ))
    .parse(i)
}

/// §4 A quoted part of a flag word; an unclosed quote runs to the end.
fn flag_quoted(i: &str) -> IResult<&str, String> {
    let (i, q) = one_of("'\"").parse(i)?;
    let (i, text) = fold_many0(
        alt((
            preceded(char('\\'), opt(anychar)).map(|c| c.map(String::from).unwrap_or_default()),
            take_while1(move |c: char| c != q && c != '\\').map(String::from),
        )),
        String::new,
        |mut acc, piece| {
            acc.push_str(&piece);
            acc
        },
    )
    .parse(i)?;
    let (i, _) = opt(char(q)).parse(i)?;
    Ok((i, text))
}

/// §4 A whole flag word (up to unquoted whitespace), with its source text.
fn flag_word(i: &str) -> IResult<&str, (&str, String)> {
    consumed(fold_many1(flag_piece, String::new, |mut acc, piece| {
        acc.push_str(&piece);
        acc
    }))
    .parse(i)
}

/// §4 `flags = (flag ws+)* ("--" ws+)?`: the `--flag` words at the start of
/// `rest`, and what follows them. A bare `--` ends the flags and is dropped.
fn extract_flags(rest: &str) -> (Vec<(&str, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest;
    loop {
        let word = rest.trim_start();
        if !word.starts_with("--") {
            return (flags, word);
        }
        let Ok((after, (raw, value))) = flag_word(word) else {
            return (flags, word);
        };
        if value == "--" {
            return (flags, after);
        }
        flags.push((raw, value));
        rest = after;
    }
}

/// §5.3 One piece of an ENV/LABEL/ARG word, kept raw: an escape with the
/// character it escapes, a quoted run (escapes work inside double quotes
/// only), or plain characters. A lone escape at the very end is dropped.
fn word_piece(i: &str, escape: char) -> IResult<&str, String> {
    alt((
        preceded(char(escape), opt(anychar)).map(|c| match c {
            Some(c) => format!("{escape}{c}"),
            None => String::new(),
        }),
        |i| word_quoted(i, escape),
        take_while1(|c: char| !c.is_whitespace() && c != '\'' && c != '"' && c != escape)
            .map(String::from),
    ))
    .parse(i)
}

/// §5.3 A quoted run of a word, quotes kept; unclosed runs to the end.
fn word_quoted(i: &str, escape: char) -> IResult<&str, String> {
    let (i, q) = one_of("'\"").parse(i)?;
    let escapes = q != '\'';
    let (i, text) = fold_many0(
        alt((
            preceded(verify(char(escape), move |_| escapes), opt(anychar)).map(|c| match c {
                Some(c) => format!("{escape}{c}"),
                None => String::new(),
            }),
            take_while1(move |c: char| c != q && !(escapes && c == escape)).map(String::from),
        )),
        || String::from(q),
        |mut acc, piece| {
            acc.push_str(&piece);
            acc
        },
    )
    .parse(i)?;
    let (i, close) = opt(char(q)).parse(i)?;
    let mut text = text;
    if let Some(c) = close {
        text.push(c);
    }
    Ok((i, text))
}

/// §5.3 Splits `s` into words at unquoted, unescaped whitespace, keeping
/// quotes and escapes in the words; each with its source text.
fn words(s: &str, escape: char) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let parsed = consumed(fold_many1(
            |i| word_piece(i, escape),
            String::new,
            |mut acc, piece| {
                acc.push_str(&piece);
                acc
            },
        ))
        .parse(rest);
        let Ok((after, (raw, value))) = parsed else {
            return out;
        };
        if !value.is_empty() {
            out.push((raw, value));
        }
        rest = after;
    }
}

/// The context of one logical line while its instruction is parsed.
struct LineCtx<'l, 's> {
    line: &'l LogicalLine,
    index: &'l SourceIndex<'s>,
    escape: char,
}

impl LineCtx<'_, '_> {
    fn span(&self, sub: &str) -> Span {
        self.line.span_of(self.index, sub)
    }

    fn word(&self, raw: &str, value: String) -> Word {
        Word {
            value,
            span: self.span(raw),
        }
    }

    fn raw(&self, raw: &str) -> Word {
        self.word(raw, raw.to_owned())
    }

    fn error(&self, kind: ErrorKind, at: &str) -> Located {
        Located::new(kind, self.span(at))
    }

    /// §4 Parses one instruction from `text` (a slice of the logical line).
    fn node(&self, text: &str, depth: usize) -> Result<Node, Located> {
        let trimmed = text.trim();
        let (cmd, rest) = split_command(trimmed);
        let keyword = Keyword::from_word(cmd).ok_or_else(|| {
            let at = if cmd.is_empty() { text } else { cmd };
            let kind = ErrorKind::UnknownInstruction {
                word: cmd.to_owned(),
                suggestion: Keyword::closest(cmd).map(Keyword::as_str),
            };
            self.error(kind, at)
        })?;
        let (flags, args) = match rest {
            Some(rest) => extract_flags(rest),
            None => (Vec::new(), ""),
        };
        let flags = flags
            .into_iter()
            .map(|(raw, text)| Flag {
                text,
                span: self.span(raw),
            })
            .collect();
        let args = args.trim();
        let args = match keyword {
            Keyword::Run | Keyword::Cmd | Keyword::Entrypoint | Keyword::Shell => {
                self.maybe_json(args)?.map_or(Args::Empty, Args::Command)
            }
            Keyword::Add | Keyword::Copy | Keyword::Volume => self.maybe_json_list(args)?,
            Keyword::Env | Keyword::Label => self.pairs(args, keyword)?,
            Keyword::Arg => self.list(
                words(args, self.escape)
                    .into_iter()
                    .map(|(raw, value)| self.word(raw, value))
                    .collect(),
            ),
            Keyword::Expose | Keyword::From => self.whitespace_list(args),
            Keyword::Healthcheck => self.healthcheck(args)?,
            Keyword::Maintainer | Keyword::StopSignal | Keyword::User | Keyword::Workdir => {
                if args.is_empty() {
                    Args::Empty
                } else {
                    Args::Text(self.raw(args))
                }
            }
            Keyword::Onbuild => {
                if args.is_empty() {
                    Args::Empty
                } else if depth >= MAX_ONBUILD_DEPTH {
                    return Err(self.error(ErrorKind::NestingTooDeep, args));
                } else {
                    Args::Onbuild(Box::new(self.node(args, depth + 1)?))
                }
            }
        };
        Ok(Node {
            keyword,
            keyword_word: self.raw(cmd),
            flags,
            args,
            heredocs: Vec::new(),
            original: text.to_owned(),
            comments: Vec::new(),
            span: self.span(trimmed),
        })
    }

    fn list(&self, words: Vec<Word>) -> Args {
        if words.is_empty() {
            Args::Empty
        } else {
            Args::List { words, json: false }
        }
    }

    /// §5.2 Words separated by line whitespace (FROM, EXPOSE, and ADD/COPY/
    /// VOLUME when not JSON).
    fn whitespace_list(&self, args: &str) -> Args {
        self.list(
            args.split(is_line_ws)
                .filter(|w| !w.is_empty())
                .map(|w| self.raw(w))
                .collect(),
        )
    }

    /// §5.1 Exec form if `args` is a JSON array of strings, shell form if it
    /// is not JSON at all, an error if it is JSON with non-strings.
    fn maybe_json(&self, args: &str) -> Result<Option<CommandForm>, Located> {
        if args.is_empty() {
            return Ok(None);
        }
        match self.json(args)? {
            Some(words) => Ok(Some(CommandForm::Exec(words))),
            None => Ok(Some(CommandForm::Shell(self.raw(args)))),
        }
    }

    /// §5.1 The JSON array `args` holds, if it is one.
    fn json(&self, args: &str) -> Result<Option<Vec<Word>>, Located> {
        if !args.starts_with('[') {
            return Ok(None);
        }
        match json::parse_array(args) {
            JsonArray::Strings(items) => Ok(Some(
                items
                    .into_iter()
                    .map(|(raw, value)| self.word(raw, value))
                    .collect(),
            )),
            JsonArray::NotStrings => Err(self.error(ErrorKind::JsonNotStrings, args)),
            JsonArray::Invalid => Ok(None),
        }
    }

    /// §5.1/§5.2 ADD, COPY, VOLUME: a JSON array or whitespace-separated words.
    fn maybe_json_list(&self, args: &str) -> Result<Args, Located> {
        match self.json(args)? {
            Some(words) => Ok(Args::List { words, json: true }),
            None => Ok(self.whitespace_list(args)),
        }
    }

    /// §5.4 ENV and LABEL: `key=value…` pairs, or legacy `key value`.
    fn pairs(&self, args: &str, keyword: Keyword) -> Result<Args, Located> {
        let words = words(args, self.escape);
        let Some((_, first)) = words.first() else {
            return Ok(Args::Empty);
        };
        if !first.contains('=') {
            let Some(gap) = args.find(is_line_ws) else {
                return Err(self.error(ErrorKind::MissingValue(keyword.as_str()), args));
            };
            let key = &args[..gap];
            let value = args[gap..].trim_start_matches(is_line_ws);
            return Ok(Args::Pairs(vec![KeyValue {
                key: self.raw(key),
                value: self.raw(value),
                syntax: PairSyntax::Legacy,
            }]));
        }
        let mut pairs = Vec::with_capacity(words.len());
        for (raw, value) in &words {
            let Some(eq) = value.find('=') else {
                return Err(self.error(ErrorKind::MissingEquals(value.clone()), raw));
            };
            // The value is a prefix of the raw text (only a lone trailing
            // escape can be missing), so positions carry over.
            let (raw_key, raw_rest) = raw.split_at(eq);
            let raw_value = raw_rest.get(1..value.len() - eq).unwrap_or("");
            pairs.push(KeyValue {
                key: self.word(raw_key, value[..eq].to_owned()),
                value: self.word(raw_value, value[eq + 1..].to_owned()),
                syntax: PairSyntax::Equals,
            });
        }
        Ok(Args::Pairs(pairs))
    }

    /// §5.5 HEALTHCHECK: a type word, then a command like CMD's.
    fn healthcheck(&self, args: &str) -> Result<Args, Located> {
        if args.is_empty() {
            return Ok(Args::Empty);
        }
        let (kind, rest) = match args.find(char::is_whitespace) {
            Some(i) => (&args[..i], args[i..].trim_start()),
            None => (args, ""),
        };
        Ok(Args::Healthcheck {
            kind: self.raw(kind),
            command: self.maybe_json(rest)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_is_the_escape_at_line_end() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\ \t", '\\'), ("a", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }

    #[test]
    fn flags_are_split_off_like_buildkit() {
        let (flags, rest) = extract_flags("--a=1 --b=\"x y\" -- --c foo");
        let values: Vec<_> = flags.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["--a=1", "--b=x y"]);
        assert_eq!(rest.trim(), "--c foo");
        let (flags, rest) = extract_flags("--doit [ \"a\" ]");
        assert_eq!(flags.len(), 1);
        assert_eq!(rest, "[ \"a\" ]");
        let (flags, rest) = extract_flags("-x");
        assert!(flags.is_empty());
        assert_eq!(rest, "-x");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let w: Vec<_> = words(r#"abc="123 456" def a\ b 'x\' \"#, '\\')
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(w, [r#"abc="123 456""#, "def", r"a\ b", r"'x\'"]);
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::dockerfile::dump::dump;

    fn dumped(text: &str) -> String {
        dump(&parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}")))
    }

    fn error(text: &str) -> (ErrorKind, usize, usize) {
        let e = parse("Dockerfile", text).expect_err("must fail");
        (e.kind().clone(), e.line(), e.column())
    }

    #[test]
    fn crlf_bom_and_whitespace_only_lines() {
        let text = "\u{feff}# escape=`\r\nFROM a\r\n   \t\r\nRUN x `\r\n  y\r\n";
        assert_eq!(dumped(text), "(from \"a\")\n(run \"x   y\")\n");
        let tree = parse("Dockerfile", text).unwrap();
        assert_eq!(
            tree.directives.escape_char,
            crate::dockerfile::ast::EscapeChar::Backtick
        );
    }

    #[test]
    fn directives_only_at_the_head() {
        let tree = parse(
            "f",
            "# syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n",
        )
        .unwrap();
        assert_eq!(tree.directives.syntax.unwrap().value, "docker/dockerfile:1");
        assert_eq!(tree.directives.check.unwrap().value, "skip=all");
        let tree = parse("f", "FROM a\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(tree.directives.escape, None);
        assert_eq!(
            error("# escape=`\n# escape=\\\nFROM a\n"),
            (ErrorKind::DuplicateDirective("escape".into()), 2, 1)
        );
        assert_eq!(
            error("#escape=x\nFROM a"),
            (ErrorKind::InvalidEscape("x".into()), 1, 1)
        );
    }

    #[test]
    fn spans_point_into_the_source() {
        let tree = parse(
            "f",
            "FROM a\nRUN --mount=type=cache,target=/x \\\n    make all\n",
        )
        .unwrap();
        let run = &tree.nodes[1];
        assert_eq!((run.span.start.line, run.span.end.line), (2, 3));
        assert_eq!(
            (run.flags[0].span.start.line, run.flags[0].span.start.column),
            (2, 5)
        );
        let Args::Command(CommandForm::Shell(cmd)) = &run.args else {
            panic!("shell form expected");
        };
        assert_eq!(cmd.value, "make all");
        assert_eq!((cmd.span.start.line, cmd.span.start.column), (3, 5));
        assert_eq!((cmd.span.end.line, cmd.span.end.column), (3, 13));
    }

    #[test]
    fn env_and_label_pairs() {
        assert_eq!(
            dumped("ENV a=1 b=\"x y\" c=d\\ e\nLABEL k v w\n"),
            "(env \"a\" \"1\" \"=\" \"b\" \"\\\"x y\\\"\" \"=\" \"c\" \"d\\\\ e\" \"=\")\n(label \"k\" \"v w\" \"\")\n"
        );
        assert_eq!(
            error("FROM a\nENV a=1 b\n"),
            (ErrorKind::MissingEquals("b".into()), 2, 9)
        );
        assert_eq!(error("LABEL x\n"), (ErrorKind::MissingValue("LABEL"), 1, 7));
    }

    #[test]
    fn heredocs_are_read_and_not_dumped() {
        let text = "FROM a\nRUN <<EOF bash\necho $x\nEOF\nCOPY <<-\"A\" <<B /dst/\n\tone\n\tA\ntwo\nB\nRUN [\"<<X\"]\n";
        let tree = parse("f", text).unwrap();
        assert_eq!(
            dump(&tree),
            "(from \"a\")\n(run \"<<EOF bash\")\n(copy \"<<-\\\"A\\\"\" \"<<B\" \"/dst/\")\n(run \"<<X\")\n"
        );
        let run = &tree.nodes[1].heredocs;
        assert_eq!(
            (run[0].name.as_str(), run[0].content.as_str(), run[0].expand),
            ("EOF", "echo $x\n", true)
        );
        let copy = &tree.nodes[2];
        assert_eq!(copy.heredocs.len(), 2);
        assert!(!copy.heredocs[0].expand && copy.heredocs[0].chomp);
        assert_eq!(copy.heredocs[0].body(), "one\n");
        assert_eq!(copy.heredocs[1].content, "two\n");
        assert_eq!((copy.span.start.line, copy.span.end.line), (5, 9));
        assert_eq!(
            error("FROM a\nRUN <<EOF\nno end\n"),
            (ErrorKind::UnterminatedHeredoc("EOF".into()), 2, 1)
        );
    }

    #[test]
    fn onbuild_and_healthcheck_nest() {
        assert_eq!(
            dumped(
                "ONBUILD RUN [\"a\"]\nHEALTHCHECK --interval=5s CMD curl x\nHEALTHCHECK\nHEALTHCHECK NONE\n"
            ),
            "(onbuild (run \"a\"))\n(healthcheck [\"--interval=5s\"] \"CMD\" \"curl x\")\n(healthcheck)\n(healthcheck \"NONE\")\n"
        );
        let deep = format!("{}RUN x\n", "ONBUILD ".repeat(5_000));
        assert_eq!(error(&deep).0, ErrorKind::NestingTooDeep);
    }

    #[test]
    fn errors_for_unknown_instructions_and_empty_files() {
        assert_eq!(
            error("FROM a\n  FORM b\n"),
            (
                ErrorKind::UnknownInstruction {
                    word: "FORM".into(),
                    suggestion: Some("FROM")
                },
                2,
                3
            )
        );
        assert_eq!(error("").0, ErrorKind::NoInstructions);
        assert_eq!(error("# just\n\n  \n").0, ErrorKind::NoInstructions);
        assert_eq!(error("CMD [\"a\", 1]").0, ErrorKind::JsonNotStrings);
        let long = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
        assert_eq!(error(&long), (ErrorKind::LineTooLong, 2, 1));
    }

    #[test]
    fn invalid_utf8_is_an_error_at_the_byte() {
        let e = parse_bytes("f", b"FROM a\nRUN \xff\n").expect_err("not UTF-8");
        assert_eq!(
            (e.kind(), e.line(), e.column()),
            (&ErrorKind::InvalidUtf8, 2, 5)
        );
    }
}
