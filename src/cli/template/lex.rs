//! Splitting a template into text and actions (`{{…}}`, with Go's `{{-`
//! and `-}}` trimming and `{{/* comments */}}`), and an action into
//! tokens. Columns count characters of the whole format from 1.

use serde_json::Number;

/// One token of an action.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// `.` (an empty path) or `.A.B`.
    Field(Vec<String>),
    /// `$` or `$name`, and the field path after it (`$v.A`).
    Variable(String, Vec<String>),
    /// A function name or a keyword (`if`, `range`, `true`, …).
    Ident(String),
    /// A string literal, its escapes read.
    Text(String),
    /// A number literal.
    Number(Number),
    /// `|`.
    Pipe,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// `,`.
    Comma,
}

/// A token and the column it starts at.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned {
    pub token: Token,
    pub column: usize,
}

/// Text between actions, or an action's tokens.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    /// Literal text (`\t` and `\n` written in it already a tab and a newline).
    Text(String),
    /// `{{…}}`: where it starts and its tokens.
    Action { column: usize, tokens: Vec<Spanned> },
}

/// An error and the column it is at.
pub(super) type Located = (usize, String);

/// The items of `source`, whose first character is at column `base + 1`.
pub(super) fn items(source: &str, base: usize) -> Result<Vec<Item>, Located> {
    let chars: Vec<char> = source.chars().collect();
    let mut items = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i] == '{' && chars.get(i + 1) == Some(&'{')) {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        let column = base + i + 1;
        let mut at = i + 2;
        if chars.get(at) == Some(&'-') && chars.get(at + 1).is_some_and(|c| c.is_whitespace()) {
            text.truncate(text.trim_end().len());
            at += 2;
        }
        push_text(&mut items, &mut text);
        let mut lexer = Lexer {
            chars: &chars,
            at,
            base,
        };
        let (tokens, trim) = lexer.action(column)?;
        if let Some(tokens) = tokens {
            items.push(Item::Action { column, tokens });
        }
        i = lexer.at;
        if trim {
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
        }
    }
    push_text(&mut items, &mut text);
    Ok(items)
}

fn push_text(items: &mut Vec<Item>, text: &mut String) {
    if !text.is_empty() {
        items.push(Item::Text(text.replace("\\t", "\t").replace("\\n", "\n")));
        text.clear();
    }
}

struct Lexer<'a> {
    chars: &'a [char],
    at: usize,
    base: usize,
}

impl Lexer<'_> {
    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn column(&self) -> usize {
        self.base + self.at + 1
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, Located> {
        Err((self.column(), reason.into()))
    }

    /// The tokens up to `}}` (`None` for a comment), and whether it was
    /// `-}}` (trim the whitespace after it).
    fn action(&mut self, start: usize) -> Result<(Option<Vec<Spanned>>, bool), Located> {
        let mut tokens = Vec::new();
        let mut comment = false;
        if self.peek(0) == Some('/') && self.peek(1) == Some('*') {
            let Some(end) = (self.at + 2..self.chars.len().saturating_sub(1))
                .find(|&j| self.chars[j] == '*' && self.chars[j + 1] == '/')
            else {
                return self.fail("unclosed comment");
            };
            self.at = end + 2;
            comment = true;
        }
        loop {
            let spaced = self.peek(0).is_some_and(char::is_whitespace);
            while self.peek(0).is_some_and(char::is_whitespace) {
                self.at += 1;
            }
            let Some(c) = self.peek(0) else {
                return Err((start, "unclosed action: {{ without }}".to_owned()));
            };
            if c == '}' && self.peek(1) == Some('}') {
                self.at += 2;
                return Ok(((!comment).then_some(tokens), false));
            }
            if c == '-' && spaced && self.peek(1) == Some('}') && self.peek(2) == Some('}') {
                self.at += 3;
                return Ok(((!comment).then_some(tokens), true));
            }
            if comment {
                return self.fail("a comment must be the whole action");
            }
            let column = self.column();
            let token = self.token(c)?;
            tokens.push(Spanned { token, column });
        }
    }

    fn token(&mut self, c: char) -> Result<Token, Located> {
        let single = match c {
            '|' => Some(Token::Pipe),
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            ',' => Some(Token::Comma),
            '=' => Some(Token::Assign),
            _ => None,
        };
        if let Some(token) = single {
            self.at += 1;
            return Ok(token);
        }
        match c {
            ':' if self.peek(1) == Some('=') => {
                self.at += 2;
                Ok(Token::Declare)
            }
            '"' => self.quoted(),
            '`' => {
                let start = self.column();
                self.at += 1;
                let mut text = String::new();
                loop {
                    match self.peek(0) {
                        Some('`') => break,
                        Some(c) => text.push(c),
                        None => return Err((start, "unterminated raw quoted string".to_owned())),
                    }
                    self.at += 1;
                }
                self.at += 1;
                Ok(Token::Text(text))
            }
            '.' if !self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                Ok(Token::Field(self.path()?))
            }
            '$' => {
                self.at += 1;
                let name = format!("${}", self.word());
                Ok(Token::Variable(name, self.path()?))
            }
            c if c.is_ascii_digit()
                || (matches!(c, '-' | '+' | '.')
                    && self.peek(1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number()
            }
            c if c.is_alphabetic() || c == '_' => Ok(Token::Ident(self.word())),
            other => self.fail(format!("unexpected {other:?} in action")),
        }
    }

    /// Letters, digits and `_`.
    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek(0).filter(|c| c.is_alphanumeric() || *c == '_') {
            word.push(c);
            self.at += 1;
        }
        word
    }

    /// `.A.B…` (empty for a lone `.`).
    fn path(&mut self) -> Result<Vec<String>, Located> {
        let mut path = Vec::new();
        if self.peek(0) == Some('.')
            && !self
                .peek(1)
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.at += 1;
            return Ok(path);
        }
        while self.peek(0) == Some('.') {
            self.at += 1;
            let word = self.word();
            if word.is_empty() {
                return self.fail("bad field path: a field name must follow '.'");
            }
            path.push(word);
        }
        Ok(path)
    }

    fn number(&mut self) -> Result<Token, Located> {
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            let sign_after_exponent =
                matches!(c, '+' | '-') && (text.is_empty() || text.ends_with(['e', 'E']));
            if !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || sign_after_exponent) {
                break;
            }
            text.push(c);
            self.at += 1;
        }
        let plain = text.replace('_', "");
        let (negative, digits) = match plain.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, plain.trim_start_matches('+')),
        };
        let integer = match digits.get(..2) {
            Some("0x" | "0X") => i64::from_str_radix(&digits[2..], 16).ok(),
            Some("0o" | "0O") => i64::from_str_radix(&digits[2..], 8).ok(),
            Some("0b" | "0B") => i64::from_str_radix(&digits[2..], 2).ok(),
            _ => digits.parse::<i64>().ok(),
        };
        let number = match integer {
            Some(n) => Some(Number::from(if negative { -n } else { n })),
            None => plain.parse::<f64>().ok().and_then(Number::from_f64),
        };
        match number {
            Some(number) => Ok(Token::Number(number)),
            None => self.fail(format!("bad number syntax: {text:?}")),
        }
    }

    /// A `"…"` string with Go's escapes.
    fn quoted(&mut self) -> Result<Token, Located> {
        let start = self.column();
        let unterminated = Err((start, "unterminated quoted string".to_owned()));
        self.at += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return unterminated;
            };
            self.at += 1;
            match c {
                '"' => return Ok(Token::Text(text)),
                '\n' => return unterminated,
                '\\' => text.push(self.escape()?),
                c => text.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, Located> {
        let Some(c) = self.peek(0) else {
            return self.fail("unterminated quoted string");
        };
        self.at += 1;
        let hex = |lexer: &mut Self, len: usize| {
            let digits: String = (0..len).filter_map(|i| lexer.peek(i)).collect();
            lexer.at += len;
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == len)
                .and_then(char::from_u32)
                .map_or_else(|| lexer.fail("bad escape in a quoted string"), Ok)
        };
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '\\' | '"' | '\'' => c,
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            other => return self.fail(format!("unknown escape sequence \\{other}")),
        })
    }
}
