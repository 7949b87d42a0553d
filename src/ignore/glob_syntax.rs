//! The syntax check Docker applies to every pattern when the matcher is
//! built: Go's `filepath.Match(pattern, ".")` on Unix, which reports
//! `ErrBadPattern` for a malformed `[...]` class or a trailing `\`.
//!
//! Matching itself does not use these rules (Docker matches with a regex it
//! derives from the pattern, see `pattern.rs`), only this error check does.

/// Whether `pattern` is well formed for Go's `filepath.Match`.
pub fn is_valid(pattern: &str) -> bool {
    let mut rest = pattern;
    while !rest.is_empty() {
        let (chunk, after) = next_chunk(rest);
        if !chunk_is_valid(chunk) {
            return false;
        }
        rest = after;
    }
    true
}

/// Splits off leading stars and the run up to the next `*` outside a class
/// (Go's `scanChunk`), returning the chunk without its stars and the rest.
fn next_chunk(pattern: &str) -> (&str, &str) {
    let pattern = pattern.trim_start_matches('*');
    let bytes = pattern.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    // `i` stops at an ASCII byte or the end, so it is a char boundary.
    pattern.split_at(i)
}

/// Go's `matchChunk` syntax rules: `\` must escape something, and a class
/// needs at least one item, items that are not a bare `-` or `]`, and a
/// closing `]`.
fn chunk_is_valid(chunk: &str) -> bool {
    let mut chars = chunk.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // The guard consumes the escaped character, which is literal.
            '\\' if chars.next().is_none() => return false,
            '[' => {
                chars.next_if_eq(&'^');
                let mut items = 0;
                loop {
                    if items > 0 && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    if !class_char(&mut chars) {
                        return false;
                    }
                    if chars.next_if_eq(&'-').is_some() && !class_char(&mut chars) {
                        return false;
                    }
                    items += 1;
                }
            }
            _ => {}
        }
    }
    true
}

/// Go's `getEsc`: one class character (possibly `\`-escaped), which may not
/// be a bare `-` or `]` and must be followed by more of the class.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    match chars.next() {
        None | Some('-' | ']') => false,
        Some('\\') => chars.next().is_some() && chars.peek().is_some(),
        Some(_) => chars.peek().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn classes_and_escapes() {
        for good in [
            "abc",
            "*",
            "a*b",
            "[a-c]",
            "[^a]",
            r"[\]a]",
            r"[\-]",
            "[x*]",
            "]",
            "a]",
            "[Local-Only]",
            r"\*",
            "***",
        ] {
            assert!(is_valid(good), "{good:?} should be valid");
        }
        for bad in [
            "[]a]", "[-]", "[x-]", "[-x]", r"\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[a", r"a\",
            "*[", r"[a\",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be invalid");
        }
    }
}
