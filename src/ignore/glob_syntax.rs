//! Go's `filepath.Match` on Unix: the syntax check Docker applies to
//! every `.dockerignore` pattern when the matcher is built (a malformed
//! `[...]` class or a trailing `\\` is `ErrBadPattern`), and the matching
//! BuildKit uses for `COPY`/`ADD` source wildcards.
//!
//! `.dockerignore` matching itself does not use [`glob_match`] (Docker
//! matches with a regex it derives from the pattern, see `pattern.rs`).

/// Whether `pattern` is well formed for Go's `filepath.Match`.
pub fn is_valid(pattern: &str) -> bool {
    let mut rest = pattern;
    while !rest.is_empty() {
        let (_, chunk, after) = next_chunk(rest);
        if match_chunk(chunk, "").is_err() {
            return false;
        }
        rest = after;
    }
    true
}

/// A malformed pattern, as Go's `filepath.ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `filepath.Match(pattern, name)`: `*` matches any run of
/// non-`/` characters, `?` one non-`/` character, `[...]` a class (`^`
/// negates, `a-z` ranges, `\\` escapes), anything else itself.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern;
    let mut name = name;
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = next_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star matches the rest of the element.
            return Ok(!name.contains('/'));
        }
        let first = match_chunk(chunk, name);
        if let Ok(Some(after)) = first {
            // Without a star the chunk must end the name if it ends the pattern.
            if after.is_empty() || !pattern.is_empty() {
                name = after;
                continue;
            }
        }
        first?;
        if star {
            // Let the star eat one more character at a time, never a `/`.
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                let skipped = name.get(i + c.len_utf8()..).unwrap_or_default();
                if let Some(after) = match_chunk(chunk, skipped)? {
                    if pattern.is_empty() && !after.is_empty() {
                        continue;
                    }
                    name = after;
                    continue 'chunks;
                }
            }
        }
        // No match: still report a syntax error in the rest of the pattern.
        while !pattern.is_empty() {
            let (_, chunk, rest) = next_chunk(pattern);
            match_chunk(chunk, "")?;
            pattern = rest;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading stars and the run up to the next `*` outside a class
/// (Go's `scanChunk`), returning whether there were stars, the chunk
/// without them and the rest.
fn next_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let pattern = trimmed;
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
    let (chunk, rest) = pattern.split_at(i);
    (star, chunk, rest)
}

/// Go's `matchChunk`: matches `chunk` (no unescaped `*` outside a class)
/// against the start of `s` and returns what is left of `s`, `None` when it
/// does not match. The whole chunk is checked for syntax even after a
/// mismatch, so `match_chunk(chunk, "")` is the syntax check.
fn match_chunk<'s>(chunk: &str, s: &'s str) -> Result<Option<&'s str>, BadPattern> {
    let mut chunk = chunk.chars().peekable();
    let mut s = s;
    let mut failed = false;
    while let Some(c) = chunk.next() {
        let mut next_char = || {
            let mut chars = s.chars();
            let c = chars.next();
            s = chars.as_str();
            c
        };
        let current = if failed { None } else { next_char() };
        failed |= current.is_none();
        match c {
            '[' => {
                let negated = chunk.next_if_eq(&'^').is_some();
                let mut matched = false;
                let mut items = 0;
                loop {
                    if items > 0 && chunk.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chunk)?;
                    let hi = match chunk.next_if_eq(&'-') {
                        Some(_) => class_char(&mut chunk)?,
                        None => lo,
                    };
                    matched |= current.is_some_and(|r| lo <= r && r <= hi);
                    items += 1;
                }
                failed |= matched == negated;
            }
            '?' => failed |= current == Some('/'),
            '\\' => {
                let escaped = chunk.next().ok_or(BadPattern)?;
                failed |= current != Some(escaped);
            }
            literal => failed |= current != Some(literal),
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Go's `getEsc`: one class character (possibly `\\`-escaped), which may not
/// be a bare `-` or `]` and must be followed by more of the class.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, BadPattern> {
    let c = match chars.next() {
        None | Some('-' | ']') => return Err(BadPattern),
        Some('\\') => chars.next().ok_or(BadPattern)?,
        Some(c) => c,
    };
    chars.peek().map(|_| c).ok_or(BadPattern)
}

#[cfg(test)]
mod tests {
    use super::{BadPattern, glob_match, is_valid};

    #[test]
    fn matches_like_go() {
        // Cases from Go's path/filepath match tests.
        for (pattern, name, want) in [
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a\u{263a}b", Ok(true)),
            ("a[^a]b", "a\u{263a}b", Ok(true)),
            ("a???b", "a\u{263a}b", Ok(false)),
            ("a[^a][^a][^a]b", "a\u{263a}b", Ok(false)),
            ("[a-\u{3b6}]*", "\u{3b1}", Ok(true)),
            ("*[a-\u{3b6}]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ] {
            assert_eq!(glob_match(pattern, name), want, "{pattern:?} on {name:?}");
        }
    }

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
