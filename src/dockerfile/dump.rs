//! BuildKit's parse-tree dump (`Node.Dump()` in moby/buildkit's parser): one
//! `(keyword ["flags"] "args"…)` line per instruction, strings quoted the way
//! Go's `strconv.Quote` quotes them. This is what `builder debug parse`
//! prints and what BuildKit's parser test files expect.

use super::ast::{Args, CommandForm, Node, PairSyntax, SyntaxTree, Word};

/// The dump of a whole file: one line per instruction, each ending in `\n`.
pub fn dump(tree: &SyntaxTree) -> String {
    let mut out = String::new();
    for node in &tree.nodes {
        out.push('(');
        dump_node(node, &mut out);
        out.push_str(")\n");
    }
    out
}

/// The dump of one instruction, without the surrounding parentheses.
pub fn dump_node(node: &Node, out: &mut String) {
    out.push_str(&node.keyword.as_str().to_ascii_lowercase());
    if !node.flags.is_empty() {
        out.push_str(" [");
        for (i, flag) in node.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            go_quote(&flag.text, out);
        }
        out.push(']');
    }
    let arg = |w: &Word, out: &mut String| {
        out.push(' ');
        go_quote(&w.value, out);
    };
    let command = |form: &CommandForm, out: &mut String| match form {
        CommandForm::Exec(words) => words.iter().for_each(|w| arg(w, out)),
        CommandForm::Shell(w) => arg(w, out),
    };
    match &node.args {
        Args::Empty => {}
        Args::Command(form) => command(form, out),
        Args::List { words, .. } => words.iter().for_each(|w| arg(w, out)),
        Args::Text(w) => arg(w, out),
        Args::Pairs(pairs) => {
            for pair in pairs {
                arg(&pair.key, out);
                arg(&pair.value, out);
                out.push_str(match pair.syntax {
                    PairSyntax::Equals => " \"=\"",
                    PairSyntax::Legacy => " \"\"",
                });
            }
        }
        Args::Healthcheck { kind, command: cmd } => {
            arg(kind, out);
            if let Some(form) = cmd {
                command(form, out);
            }
        }
        Args::Onbuild(inner) => {
            out.push_str(" (");
            dump_node(inner, out);
            out.push(')');
        }
    }
}

/// Appends `s` quoted as Go's `strconv.Quote` does.
pub fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space. Without Unicode tables at hand this rejects controls,
/// non-ASCII spaces, format characters, private use and noncharacters, which
/// covers what occurs in Dockerfiles; unassigned code points pass.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        go_quote(s, &mut out);
        out
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            quoted("\u{0}\u{8}\u{c}\n\r\t\u{b}\u{7}\u{1b}\u{7f}"),
            r#""\x00\b\f\n\r\t\v\a\x1b\x7f""#
        );
        assert_eq!(quoted("♥☃é"), "\"♥☃é\"");
        assert_eq!(
            quoted("\u{a0}\u{85}\u{200b}\u{feff}"),
            r#""\u00a0\u0085\u200b\ufeff""#
        );
        assert_eq!(quoted("\u{f0000}"), r#""\U000f0000""#);
    }
}
