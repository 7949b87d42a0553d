//! Reads the regular expressions Docker derives from ignore patterns, which
//! are written for Go's RE2 syntax, and rewrites them for the `regex` crate.
//!
//! The two syntaxes agree on the operators Docker emits (`^`, `$`, `.`, `*`,
//! `?`, groups) but not inside brackets: Go takes `[` in a class literally
//! while the `regex` crate nests classes and has `&&`, `--` and `~~`
//! operators. So every class is parsed with Go's rules and written back
//! with each member spelled as `\x{…}`, and escapes are resolved the way Go
//! resolves them (its `\d`, `\s`, `\w` and `\b` are ASCII-only).

/// The `regex`-crate spelling of the Go expression `go`, or `None` where Go
/// would reject it (the caller then reports a bad pattern, as Docker does).
pub fn translate(go: &str) -> Option<String> {
    let mut t = Translator {
        chars: go.chars().collect(),
        pos: 0,
        out: String::with_capacity(go.len() * 2),
    };
    t.outside()?;
    Some(t.out)
}

/// The POSIX classes Go knows, spelled the same in both syntaxes.
const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

struct Translator {
    chars: Vec<char>,
    pos: usize,
    out: String,
}

impl Translator {
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek_at(0);
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn literal(&mut self, c: char) {
        self.out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
    }

    fn outside(&mut self) -> Option<()> {
        while let Some(c) = self.next() {
            match c {
                '\\' => self.escape_outside()?,
                '[' => self.class()?,
                '(' | ')' | '*' | '?' | '.' | '^' | '$' | '|' | '+' => self.out.push(c),
                other => self.literal(other),
            }
        }
        Some(())
    }

    /// After a `\` outside a class.
    fn escape_outside(&mut self) -> Option<()> {
        match self.peek_at(0)? {
            'A' | 'z' => {
                let c = self.next()?;
                self.out.push('\\');
                self.out.push(c);
            }
            'b' | 'B' => {
                let c = self.next()?;
                self.out.push_str(&format!("(?-u:\\{c})"));
            }
            'Q' => {
                self.pos += 1;
                while let Some(c) = self.next() {
                    if c == '\\' && self.peek_at(0) == Some('E') {
                        self.pos += 1;
                        break;
                    }
                    self.literal(c);
                }
            }
            'p' | 'P' => self.unicode_class()?,
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => self.perl_class()?,
            _ => {
                let c = self.escaped_char()?;
                self.literal(c);
            }
        }
        Some(())
    }

    /// Go's `parseEscape`, after the `\`: the character it stands for.
    fn escaped_char(&mut self) -> Option<char> {
        let c = self.next()?;
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Some(c),
            '0'..='7' => {
                // A single non-zero digit would be a back-reference.
                if c != '0' && !self.peek_at(0).is_some_and(|d| ('0'..='7').contains(&d)) {
                    return None;
                }
                let mut value = c.to_digit(8)?;
                for _ in 0..2 {
                    match self.peek_at(0).and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(value)
            }
            'x' => {
                let mut value: u32 = 0;
                if self.peek_at(0) == Some('{') {
                    self.pos += 1;
                    let mut digits = 0;
                    loop {
                        let d = self.next()?;
                        if d == '}' && digits > 0 {
                            break;
                        }
                        value = value.checked_mul(16)?.checked_add(d.to_digit(16)?)?;
                        if value > 0x10FFFF {
                            return None;
                        }
                        digits += 1;
                    }
                } else {
                    for _ in 0..2 {
                        value = value * 16 + self.next()?.to_digit(16)?;
                    }
                }
                char::from_u32(value)
            }
            'a' => Some('\u{7}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            _ => None,
        }
    }

    /// `\d \D \s \S \w \W` with Go's ASCII meaning, after the `\`.
    fn perl_class(&mut self) -> Option<()> {
        let c = self.next()?;
        let members = match c.to_ascii_lowercase() {
            'd' => r"0-9",
            's' => r"\t\n\x0C\r\x20",
            'w' => r"0-9A-Z_a-z",
            _ => return None,
        };
        let negate = if c.is_ascii_uppercase() { "^" } else { "" };
        self.out.push_str(&format!("[{negate}{members}]"));
        Some(())
    }

    /// `\pN`, `\p{Name}`, `\P{Name}`, `\p{^Name}`, after the `\`.
    fn unicode_class(&mut self) -> Option<()> {
        let mut negate = self.next()? == 'P';
        let name: String = if self.peek_at(0) == Some('{') {
            self.pos += 1;
            let mut name = String::new();
            loop {
                match self.next()? {
                    '}' => break name,
                    c => name.push(c),
                }
            }
        } else {
            self.next()?.to_string()
        };
        let name = match name.strip_prefix('^') {
            Some(n) => {
                negate = !negate;
                n.to_owned()
            }
            None => name,
        };
        // Go knows "Any", categories and scripts, all spelled with a capital
        // and letters or underscores; the regex crate checks the rest.
        let plausible = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plausible {
            return None;
        }
        let p = if negate { 'P' } else { 'p' };
        self.out.push_str(&format!("\\{p}{{{name}}}"));
        Some(())
    }

    /// A class, after its `[`, with Go's rules: `]` or `-` first is literal,
    /// `[` is literal unless it starts a `[:name:]`, ranges must not be
    /// reversed.
    fn class(&mut self) -> Option<()> {
        self.out.push('[');
        if self.peek_at(0) == Some('^') {
            self.pos += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            match self.peek_at(0)? {
                ']' if !first => {
                    self.pos += 1;
                    break;
                }
                '[' if self.peek_at(1) == Some(':') => {
                    if let Some(len) = self.posix_class_len() {
                        let name: String = self.chars[self.pos..self.pos + len].iter().collect();
                        let bare = name[2..name.len() - 2].trim_start_matches('^');
                        if !POSIX_CLASSES.contains(&bare) {
                            return None;
                        }
                        self.out.push_str(&name);
                        self.pos += len;
                        first = false;
                        continue;
                    }
                }
                '\\' if matches!(self.peek_at(1), Some('p' | 'P')) => {
                    self.pos += 1;
                    self.unicode_class()?;
                    first = false;
                    continue;
                }
                '\\' if matches!(self.peek_at(1), Some('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    self.pos += 1;
                    self.perl_class()?;
                    first = false;
                    continue;
                }
                _ => {}
            }
            first = false;
            let lo = self.class_char()?;
            if self.peek_at(0) == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                let hi = self.class_char()?;
                if hi < lo {
                    return None;
                }
                self.literal(lo);
                self.out.push('-');
                self.literal(hi);
            } else {
                self.literal(lo);
            }
        }
        self.out.push(']');
        Some(())
    }

    /// The length of a `[:…:]` starting here (Go looks for the first `:]`
    /// anywhere after it), or `None` when there is no `:]`.
    fn posix_class_len(&self) -> Option<usize> {
        let rest = &self.chars[self.pos + 2..];
        rest.windows(2).position(|w| w == [':', ']']).map(|i| i + 4)
    }

    /// One character of a class, `\`-escapes resolved.
    fn class_char(&mut self) -> Option<char> {
        match self.next()? {
            '\\' => self.escaped_char(),
            c => Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::translate;
    use regex::Regex;

    fn matches(go: &str, text: &str) -> bool {
        let rust = translate(go).unwrap_or_else(|| panic!("{go:?} should translate"));
        Regex::new(&rust)
            .unwrap_or_else(|e| panic!("{go:?} → {rust:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn classes_follow_go() {
        // `[` inside a class is literal in Go.
        assert!(matches("^[[^/]*]$", "[^]"));
        assert!(!matches("^[[^/]*]$", "x]"));
        assert!(matches("^[]a]$", "]"));
        assert!(matches("^[a&&b]$", "&"));
        assert!(matches(r"^[\d]$", "7"));
        assert!(!matches(r"^\d$", "٣"), "Go's \\d is ASCII");
        assert!(matches("^[[:alpha:]]$", "q"));
        assert!(matches(r"^[\]a]$", "]"));
        assert!(matches(r"^\x41\101\Qa.b\E$", "AAa.b"));
        assert!(matches(r"^\pL\p{Greek}$", "aλ"));
    }

    #[test]
    fn go_errors_are_errors() {
        for bad in [
            "^[Local-Only]$",
            "^[z-a]$",
            r"^\y$",
            r"^\1$",
            "^[a",
            r"^\",
            "^[[:nope:]]$",
            r"^\C$",
            r"^[\b]$",
        ] {
            assert!(translate(bad).is_none(), "{bad:?} should be rejected");
        }
    }
}
