//! Shell-word expansion of Dockerfile instruction arguments, with the same
//! results as BuildKit's shell lexer: quotes, the escape character, `$var`,
//! `${var}` and its modifiers (`:-` `-` `:+` `+` `:?` `?` `#` `##` `%` `%%`
//! `/` `//`), and word splitting.
//!
//! This is not a shell: there is no command substitution, arithmetic or
//! globbing of files, only what the Dockerfile reference defines. Where
//! BuildKit has an oddity (for example `${v:#p}` acting like `${v#p}`, or
//! `$0` in a `//` replacement standing for the matched text), we keep it, so a
//! Dockerfile means the same here as there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::LazyLock;

use regex::Regex;

/// Variables visible to an expansion. "Set but empty" (`Some("")`) and
/// "unset" (`None`) are different: `${v-x}` and `${v:-x}` tell them apart.
pub trait Env {
    /// The value of `name`, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// What went wrong while expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", shown_word(word))]
pub struct ExpandError {
    /// The word as written in the Dockerfile.
    pub word: String,
    /// The reason.
    pub kind: ExpandErrorKind,
}

/// The reasons an expansion fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// A `'` was opened and never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` was opened and never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// A `${` was opened and never closed.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// A `${var/pattern` has no `/` before the end.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{…`, `${:…` and the like.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A modifier the Dockerfile reference does not define, such as `${v:=x}`.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The modifier as written (`:=`, `^`, …).
        modifier: String,
    },
    /// `${name?message}` with `name` unset, or `${name:?message}` with it
    /// unset or empty.
    #[error("{name}: {}", cut(message))]
    Required {
        /// The variable.
        name: String,
        /// The message written after `?`, or a default one.
        message: String,
    },
    /// A `#`, `%` or `/` pattern that is not valid (a stray `\`).
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after variable expansion.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `${…}` nested deeper than [`MAX_NESTING`].
    #[error("substitutions nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    /// Substitutions made the word grow by more than [`MAX_GROWTH`].
    #[error(
        "the expanded word would be more than {} MiB longer than written, the most builder allows",
        MAX_GROWTH >> 20
    )]
    TooLong,
}

/// How deeply `${a:-${b:-…}}` may nest. BuildKit has no limit; we keep one so
/// a hostile Dockerfile cannot exhaust the stack.
pub const MAX_NESTING: usize = 128;

/// How many bytes substitutions may add to one word (its expansion is at
/// most this much longer than the word as written). BuildKit has no limit;
/// with one, a file of a few lines that doubles a variable on each cannot
/// make gigabytes. No real Dockerfile comes near: Linux refuses a single
/// environment string over 128 KiB to any RUN step.
pub const MAX_GROWTH: usize = 4 << 20;

/// How much of a long word an error message shows.
const SHOWN_WORD_CHARS: usize = 200;

/// `word` quoted for a message, cut after [`SHOWN_WORD_CHARS`] characters.
fn shown_word(word: &str) -> String {
    match word.char_indices().nth(SHOWN_WORD_CHARS) {
        None => format!("{word:?}"),
        Some((at, _)) => format!("{:?}… ({} bytes)", &word[..at], word.len()),
    }
}

/// `text` cut after [`SHOWN_WORD_CHARS`] characters, for a message.
fn cut(text: &str) -> String {
    match text.char_indices().nth(SHOWN_WORD_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
    }
}

/// The outcome of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The word with quotes processed and variables substituted (BuildKit's
    /// `ProcessWord`): spaces between words are kept.
    pub word: String,
    /// The same text split into words (BuildKit's `ProcessWords`): unquoted
    /// whitespace, including whitespace coming from variable values, splits.
    pub words: Vec<String>,
    /// Names the word referenced that were set in the environment.
    pub matched: BTreeSet<String>,
    /// Names the word referenced that were not set.
    pub unmatched: BTreeSet<String>,
}

/// A configured shell-word lexer. Cheap to copy; holds no state between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset: bool,
}

impl Lexer {
    /// A lexer in normal mode with the Dockerfile's escape character
    /// (`\` by default, `` ` `` with `# escape=``).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset: false,
        }
    }

    /// Keep quote characters in the output instead of removing them.
    pub fn raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (the escaped character is still
    /// taken literally).
    pub fn raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treat quote characters as ordinary characters (heredoc bodies).
    pub fn skip_process_quotes(mut self, on: bool) -> Self {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (`$x`, `${x:-y}`)
    /// instead of substituting them.
    pub fn skip_unset(mut self, on: bool) -> Self {
        self.skip_unset = on;
        self
    }

    /// Expands `word`, returning the joined text, the split words and the
    /// variables referenced.
    pub fn expand(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        let mut run = Run {
            lexer: self,
            env,
            // Go's text/scanner drops a byte-order mark at the very start.
            chars: word
                .strip_prefix('\u{feff}')
                .unwrap_or(word)
                .chars()
                .collect(),
            pos: 0,
            depth: 0,
            limit: word.len().saturating_add(MAX_GROWTH),
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match run.process_until(None, self.raw_escapes) {
            Ok((text, words)) => Ok(Expansion {
                word: text,
                words,
                matched: run.matched,
                unmatched: run.unmatched,
            }),
            Err(kind) => Err(ExpandError {
                word: word.to_owned(),
                kind,
            }),
        }
    }

    /// Expands `word` to one string (BuildKit's `ProcessWord`).
    pub fn expand_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.expand(word, env).map(|e| e.word)
    }

    /// Expands `word` and splits it into words (BuildKit's `ProcessWords`).
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.expand(word, env).map(|e| e.words)
    }
}

/// Collects split words while the text is produced.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    /// A quoted or escaped character: always part of the word.
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

/// One expansion in progress: the input, the cursor and what was referenced.
struct Run<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    /// The most bytes any text produced for this word may have.
    limit: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Kind = ExpandErrorKind;

impl Run<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Refuses `text` once it is longer than the word may grow.
    fn bounded(&self, text: &str) -> Result<(), Kind> {
        if text.len() > self.limit {
            Err(Kind::TooLong)
        } else {
            Ok(())
        }
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_owned());
                Some(v.to_owned())
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    /// Processes input up to `stop` (consumed) or the end when `stop` is
    /// `None`; a missing `stop` is an error.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Kind> {
        let mut text = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((text, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    text.push_str(&value);
                    self.bounded(&text)?;
                    words.add_str(&value);
                }
                '\'' if quotes => {
                    let value = self.single_quoted()?;
                    text.push_str(&value);
                    words.add_raw_str(&value);
                }
                '"' if quotes => {
                    let value = self.double_quoted(raw_escapes)?;
                    text.push_str(&value);
                    self.bounded(&text)?;
                    words.add_raw_str(&value);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            text.push(ch);
                        }
                        // A trailing escape character is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        text.push(escaped);
                    } else {
                        words.add_char(ch);
                        text.push(ch);
                    }
                }
            }
        }
        match stop {
            Some('/') => Err(Kind::MissingSlash),
            Some(_) => Err(Kind::MissingBrace),
            None => Ok((text, words.finish())),
        }
    }

    /// Everything between single quotes is literal; there is no escape.
    fn single_quoted(&mut self) -> Result<String, Kind> {
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(Kind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// Double quotes keep everything but `$` expansions; the escape
    /// character only escapes `"`, `$` and itself.
    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, Kind> {
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(Kind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                    self.bounded(&out)?;
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape right before the end: the missing
                            // quote is reported on the next turn.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lexer.escape => {
                                self.pos += 1;
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A `$` reference, with the cursor on the `$`.
    fn dollar(&mut self) -> Result<String, Kind> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(Kind::MissingBrace),
            Some('{' | '}' | ':') => return Err(Kind::BadSubstitution),
            Some(_) => {}
        }
        if self.depth >= MAX_NESTING {
            return Err(Kind::TooDeep);
        }
        self.depth += 1;
        let result = self.braced();
        self.depth -= 1;
        result
    }

    /// The body of `${…}` after the `{`.
    fn braced(&mut self) -> Result<String, Kind> {
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err(Kind::MissingBrace);
        };
        let mut modifier = op.to_string();
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = op == ':';
                if null_is_unset {
                    // BuildKit takes whatever follows the colon as the
                    // operator, so `${v:#p}` acts as `${v#p}`.
                    let Some(next) = self.next() else {
                        return Err(Kind::MissingBrace);
                    };
                    op = next;
                    modifier.push(op);
                }
                let raw = op == '#' || op == '%';
                let (word, _) = self.process_until(Some('}'), raw).map_err(|e| {
                    if self.peek().is_none() {
                        Kind::MissingBrace
                    } else {
                        e
                    }
                })?;
                let value = self.lookup(&name);
                if self.lexer.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match op {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        Some(v) if !empty => Ok(v),
                        _ => {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_owned()
                            } else {
                                "is not allowed to be empty".to_owned()
                            };
                            Err(Kind::Required { name, message })
                        }
                    },
                    '#' | '%' => {
                        // A doubled operator (after expansion!) asks for the
                        // longest match.
                        let (pattern, longest) = match word.strip_prefix(op) {
                            Some(rest) => (rest.to_owned(), true),
                            None => (word, false),
                        };
                        let value = value.unwrap_or_default();
                        if op == '#' {
                            trim_prefix(&pattern, &value, longest)
                        } else {
                            trim_suffix(&pattern, &value, longest)
                        }
                    }
                    _ => Err(Kind::UnsupportedModifier { modifier }),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, _) = self.process_until(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        Kind::MissingSlash
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self.process_until(Some('}'), true).map_err(|e| {
                    if self.peek().is_none() {
                        Kind::MissingBrace
                    } else {
                        e
                    }
                })?;
                let value = self.lookup(&name);
                if self.lexer.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let re = ShellPattern::parse(&pattern)?.to_regex(false, true, &pattern)?;
                Ok(if all {
                    replace_all(&re, &value, &replacement, self.limit)?
                } else if let Some(m) = re.find(&value) {
                    format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..])
                } else {
                    value
                })
            }
            _ => Err(Kind::UnsupportedModifier { modifier }),
        }
    }

    /// A variable name: a run of digits (positional), one special-parameter
    /// character, or letters, digits and `_`. Empty when none of those.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if is_digit(c) => {
                while let Some(c) = self.peek().filter(|&c| is_digit(c)) {
                    name.push(c);
                    self.pos += 1;
                }
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')) => {
                self.pos += 1;
                name.push(c);
            }
            _ => {
                while let Some(c) = self
                    .peek()
                    .filter(|&c| is_letter(c) || is_digit(c) || c == '_')
                {
                    name.push(c);
                    self.pos += 1;
                }
            }
        }
        name
    }
}

/// Go's `unicode.IsLetter`: general category L.
fn is_letter(c: char) -> bool {
    static LETTER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\p{L}$").expect("a fixed, valid regex"));
    c.is_ascii_alphabetic() || (!c.is_ascii() && LETTER.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Go's `unicode.IsDigit`: general category Nd.
fn is_digit(c: char) -> bool {
    static DIGIT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("a fixed, valid regex"));
    c.is_ascii_digit() || (!c.is_ascii() && DIGIT.is_match(c.encode_utf8(&mut [0; 4])))
}

/// One element of a `#`/`%`/`/` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternToken {
    /// `*`: any run of characters (not crossing a newline, as in BuildKit).
    Star,
    /// `?`: any one character except a newline.
    Any,
    /// A character matched as itself.
    Literal(char),
}

/// A shell pattern as BuildKit understands it: `*`, `?`, and `\` escaping
/// `*`, `?` or `\` (and dropped before `}` and `/`). No bracket expressions.
struct ShellPattern(Vec<PatternToken>);

impl ShellPattern {
    fn parse(pattern: &str) -> Result<Self, Kind> {
        let invalid = |reason: String| Kind::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => PatternToken::Star,
                '?' => PatternToken::Any,
                '\\' => match chars.peek().copied() {
                    // `}` and `/` were escaped only to get past the
                    // `${…}` syntax; the next turn takes them literally.
                    Some('}' | '/') => continue,
                    Some(e @ ('*' | '?' | '\\')) => {
                        chars.next();
                        PatternToken::Literal(e)
                    }
                    Some(e) => return Err(invalid(format!("invalid escape '\\{e}'"))),
                    None => return Err(invalid("trailing '\\'".to_owned())),
                },
                other => PatternToken::Literal(other),
            });
        }
        Ok(ShellPattern(tokens))
    }

    /// The equivalent regex; `anchored` pins it to the start of the value.
    fn to_regex(&self, anchored: bool, greedy: bool, source: &str) -> Result<Regex, Kind> {
        let mut re = String::from(if anchored { "^" } else { "" });
        for token in &self.0 {
            match token {
                PatternToken::Star if greedy => re.push_str(".*"),
                PatternToken::Star => re.push_str(".*?"),
                PatternToken::Any => re.push('.'),
                PatternToken::Literal(c) => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        Regex::new(&re).map_err(|e| Kind::InvalidPattern {
            pattern: source.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// `${v#p}` / `${v##p}`: removes the shortest / longest prefix matching `p`.
fn trim_prefix(pattern: &str, value: &str, longest: bool) -> Result<String, Kind> {
    let re = ShellPattern::parse(pattern)?.to_regex(true, longest, pattern)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${v%p}` / `${v%%p}`: removes the shortest / longest suffix matching `p`,
/// by trimming a prefix of the reversed value with the reversed pattern (an
/// escape stays in front of the character it escapes).
fn trim_suffix(pattern: &str, value: &str, longest: bool) -> Result<String, Kind> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, longest)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern, keeping each `\x` pair in order.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pieces: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        pieces.push(&chars[i..i + len]);
        i += len;
    }
    pieces.iter().rev().flat_map(|p| p.iter()).collect()
}

/// `${v//p/r}`: Go's `Regexp.ReplaceAllString`, including its handling of
/// empty matches and of `$` in the replacement (a template, where `$0` is the
/// match and `$$` a dollar sign). Output beyond `limit` bytes is refused.
fn replace_all(re: &Regex, value: &str, template: &str, limit: usize) -> Result<String, Kind> {
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some(m) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..m.start()]);
        // No replacement for an empty match right after the previous match.
        if m.end() > last_end || m.start() == 0 {
            expand_template(template, m.as_str(), &mut out, limit)?;
        }
        last_end = m.end();
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > m.end() {
            search + width
        } else if search + 1 > m.end() {
            search + 1
        } else {
            m.end()
        };
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern with no groups: `$$` is `$`, `$0` /
/// `${0}` the whole match, any other well-formed reference is empty, and a
/// malformed one is kept as written. Output beyond `limit` bytes is refused.
fn expand_template(
    template: &str,
    whole: &str,
    out: &mut String,
    limit: usize,
) -> Result<(), Kind> {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|&c| is_letter(c) || is_digit(c) || c == '_')
            .map(char::len_utf8)
            .sum();
        let name = &body[..name_len];
        let after = &body[name_len..];
        let after = if braced {
            after.strip_prefix('}')
        } else {
            Some(after)
        };
        match after {
            Some(after) if !name.is_empty() => {
                if name == "0" {
                    out.push_str(whole);
                    if out.len() > limit {
                        return Err(Kind::TooLong);
                    }
                }
                rest = after;
            }
            _ => out.push('$'),
        }
    }
    out.push_str(rest);
    if out.len() > limit {
        return Err(Kind::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        assert_eq!(reverse_pattern(r"a\*c"), r"c\*a");
        assert_eq!(reverse_pattern(r"\\\ab"), r"b\a\\");
        assert_eq!(reverse_pattern(r"ab\"), r"\ba");
        assert_eq!(reverse_pattern(r"\\b"), r"b\\");
    }

    #[test]
    fn template_expansion_follows_go() {
        let mut out = String::new();
        expand_template("<$0|${0}|$$|$1|$x|${x|$>", "M", &mut out, usize::MAX).unwrap();
        assert_eq!(out, "<M|M|$|||${x|$>");
    }

    #[test]
    fn random_inputs_never_panic() {
        let alphabet: Vec<char> = "${}:-+?#%/\\`'\" aZ_9*\n.é@!".chars().collect();
        let env = env(&[("a", "x y"), ("Z", ""), ("é", "*?\\")]);
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.u64(..);
        let mut lengths = 0;
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            lengths += len;
            let word: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for lexer in [
                Lexer::new('\\'),
                Lexer::new('`').raw_quotes(true).skip_unset(true),
                Lexer::new('\\').raw_escapes(true).skip_process_quotes(true),
            ] {
                let _ = lexer.expand(&word, &env);
            }
        }
        assert!(lengths > 100_000, "the generator must vary: {lengths}");
    }

    #[test]
    fn doubling_stops_at_the_growth_limit() {
        let lexer = Lexer::new('\\');
        let mut vars = env(&[("a", "xxxxxxxx")]);
        let mut doublings = 0;
        let err = loop {
            match lexer.expand_word("$a$a", &vars) {
                Ok(v) => {
                    vars.insert("a".to_owned(), v);
                    doublings += 1;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind, ExpandErrorKind::TooLong);
        assert_eq!(doublings, 19, "8 bytes doubled 19 times is 4 MiB");
        // A replacement that grows each match is refused as it grows.
        let big = env(&[("a", &"x".repeat(MAX_GROWTH / 2)), ("b", "yyy")]);
        for word in ["${a//x/$b}", "\"$a$a$a\""] {
            let err = lexer.expand_word(word, &big).unwrap_err();
            assert_eq!(err.kind, ExpandErrorKind::TooLong, "{word}");
        }
        // A long word that substitutes nothing is not refused, whatever its size.
        let literal = "y".repeat(MAX_GROWTH * 2);
        assert_eq!(
            lexer.expand_word(&literal, &big).unwrap().len(),
            literal.len()
        );
    }

    #[test]
    fn long_words_are_cut_in_messages() {
        let word = format!("${{{}", "a".repeat(10_000));
        let err = Lexer::new('\\').expand_word(&word, &env(&[])).unwrap_err();
        let message = err.to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.contains("(10002 bytes)"), "{message}");
        let word = format!("${{x:?{}}}", "m".repeat(10_000));
        let message = Lexer::new('\\')
            .expand_word(&word, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(message.len() < 800, "{message}");
        assert!(message.contains(": x: mmm"), "{message}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let word = "${a:-".repeat(10_000);
        let err = Lexer::new('\\').expand_word(&word, &env(&[])).unwrap_err();
        assert_eq!(err.kind, ExpandErrorKind::TooDeep);
    }
}
