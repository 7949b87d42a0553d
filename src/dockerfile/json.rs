//! The exec form (grammar §5.1): a JSON array of strings, read the way
//! BuildKit's Go decoder reads it: the first JSON value only (trailing text is
//! ignored), any valid JSON inside, but only strings accepted as elements.
//! Anything that is not valid JSON makes the caller fall back to shell form.

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while_m_n};
use nom::character::complete::{char, digit0, digit1, one_of, satisfy};
use nom::combinator::{opt, recognize};

/// Go's encoding/json nesting limit; deeper input is a syntax error there.
const MAX_DEPTH: usize = 10_000;

/// The outcome of reading an exec-form argument.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArray<'a> {
    /// A valid array of strings: each element's source text and its value.
    Strings(Vec<(&'a str, String)>),
    /// Valid JSON, but some element is not a string (a hard error).
    NotStrings,
    /// Not a JSON array at all (the caller falls back to shell form).
    Invalid,
}

/// JSON insignificant whitespace.
fn ws(i: &str) -> IResult<&str, &str> {
    take_while(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))(i)
}

/// Four hex digits of a `\u` escape.
fn hex4(i: &str) -> IResult<&str, u32> {
    let (rest, digits) = take_while_m_n(4, 4, |c: char| c.is_ascii_hexdigit())(i)?;
    let value = u32::from_str_radix(digits, 16).unwrap_or(0xFFFD);
    Ok((rest, value))
}

/// A JSON string: returns its decoded value. Lone surrogates decode to
/// U+FFFD as Go does.
fn string(i: &str) -> IResult<&str, String> {
    let (mut rest, _) = char('"')(i)?;
    let mut out = String::new();
    loop {
        let run_end = rest
            .find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20)
            .unwrap_or(rest.len());
        out.push_str(&rest[..run_end]);
        rest = &rest[run_end..];
        let (after, c) = satisfy(|c| c == '"' || c == '\\')(rest)?;
        if c == '"' {
            return Ok((after, out));
        }
        let (after, e) = one_of("\"\\/bfnrtu")(after)?;
        rest = after;
        match e {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let (after, hi) = hex4(rest)?;
                rest = after;
                let c = if (0xD800..0xE000).contains(&hi) {
                    let pair = (tag("\\u"), hex4)
                        .parse(rest)
                        .ok()
                        .and_then(|(after, (_, lo))| {
                            let valid =
                                (0xD800..0xDC00).contains(&hi) && (0xDC00..0xE000).contains(&lo);
                            valid.then(|| (after, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)))
                        });
                    match pair {
                        Some((after, c)) => {
                            rest = after;
                            char::from_u32(c).unwrap_or('\u{FFFD}')
                        }
                        None => '\u{FFFD}',
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                };
                out.push(c);
            }
            other => out.push(other),
        }
    }
}

/// A JSON number; `Ok(false)` when it is syntactically valid but overflows
/// a float64 (Go's decoder then fails the whole value).
fn number(i: &str) -> IResult<&str, bool> {
    let (rest, text) = recognize((
        opt(char('-')),
        alt((
            tag("0"),
            recognize((satisfy(|c| c.is_ascii_digit() && c != '0'), digit0)),
        )),
        opt((char('.'), digit1)),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(i)?;
    Ok((rest, text.parse::<f64>().is_ok_and(f64::is_finite)))
}

/// A scalar JSON value other than a string; false when it overflows.
fn scalar(i: &str) -> IResult<&str, bool> {
    alt((
        number,
        tag("true").map(|_| true),
        tag("false").map(|_| true),
        tag("null").map(|_| true),
    ))
    .parse(i)
}

/// Skips one JSON value of any kind without recursion (arbitrarily deep
/// input cannot overflow the stack). Returns `None` on a syntax error or an
/// overflowing number, and otherwise the rest of the input.
fn skip_value(i: &str, depth: usize) -> Option<&str> {
    let mut stack: Vec<char> = Vec::new();
    let mut rest = i;
    'value: loop {
        rest = ws(rest).ok()?.0;
        if let Ok((after, _)) = string(rest) {
            rest = after;
        } else if let Ok((after, finite)) = scalar(rest) {
            if !finite {
                return None;
            }
            rest = after;
        } else if let Ok((after, open)) = one_of::<_, _, nom::error::Error<&str>>("[{")(rest) {
            if depth + stack.len() + 1 > MAX_DEPTH {
                return None;
            }
            let after = ws(after).ok()?.0;
            let close = if open == '[' { ']' } else { '}' };
            if let Some(after) = after.strip_prefix(close) {
                rest = after;
            } else {
                stack.push(open);
                rest = if open == '{' {
                    object_key(after)?
                } else {
                    after
                };
                continue 'value;
            }
        } else {
            return None;
        }
        // After a value: close containers or move to the next element.
        loop {
            let Some(&top) = stack.last() else {
                return Some(rest);
            };
            rest = ws(rest).ok()?.0;
            let close = if top == '[' { ']' } else { '}' };
            if let Some(after) = rest.strip_prefix(',') {
                rest = if top == '{' {
                    object_key(after)?
                } else {
                    after
                };
                continue 'value;
            }
            rest = rest.strip_prefix(close)?;
            stack.pop();
        }
    }
}

/// `ws string ws ":"` of an object member.
fn object_key(i: &str) -> Option<&str> {
    let (rest, _) = (ws, string, ws, char(':')).parse(i).ok()?;
    Some(rest)
}

/// Reads `input` (which starts with `[`) as BuildKit's exec form.
pub(crate) fn parse_array(input: &str) -> JsonArray<'_> {
    let Some(mut rest) = input.strip_prefix('[') else {
        return JsonArray::Invalid;
    };
    let mut strings = Vec::new();
    let mut all_strings = true;
    let Ok((after, _)) = ws(rest) else {
        return JsonArray::Invalid;
    };
    if after.starts_with(']') {
        return JsonArray::Strings(strings);
    }
    loop {
        let Ok((start, _)) = ws(rest) else {
            return JsonArray::Invalid;
        };
        if let Ok((after, value)) = string(start) {
            strings.push((&start[..start.len() - after.len()], value));
            rest = after;
        } else {
            all_strings = false;
            match skip_value(start, 1) {
                Some(after) => rest = after,
                None => return JsonArray::Invalid,
            }
        }
        let Ok((after, _)) = ws(rest) else {
            return JsonArray::Invalid;
        };
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else if after.starts_with(']') {
            break;
        } else {
            return JsonArray::Invalid;
        }
    }
    if all_strings {
        JsonArray::Strings(strings)
    } else {
        JsonArray::NotStrings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(input: &str) -> Option<Vec<String>> {
        match parse_array(input) {
            JsonArray::Strings(v) => Some(v.into_iter().map(|(_, s)| s).collect()),
            _ => None,
        }
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(values("[]"), Some(vec![]));
        assert_eq!(
            values("[ \"a\" ,\t\"b\" ] trailing"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            values(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u2665 \ud83d\ude00 \ud800"]"#),
            Some(vec!["\" \\ / \u{8} \u{c} \n \r \t \0 ♥ 😀 \u{FFFD}".into()])
        );
    }

    #[test]
    fn non_strings_and_invalid_json() {
        assert_eq!(
            parse_array(r#"["echo", ["nested"]]"#),
            JsonArray::NotStrings
        );
        assert_eq!(
            parse_array(r#"[1, {"a": [true, null, -0.5e3]}]"#),
            JsonArray::NotStrings
        );
        assert_eq!(parse_array(r#"["a", 1e999]"#), JsonArray::Invalid);
        assert_eq!(parse_array(r#"["a""#), JsonArray::Invalid);
        assert_eq!(parse_array(r#"["a",]"#), JsonArray::Invalid);
        assert_eq!(parse_array(r#"[01]"#), JsonArray::Invalid);
        assert_eq!(parse_array("[\"tab\there\"]"), JsonArray::Invalid);
        let deep = format!("[{}", "[".repeat(20_000));
        assert_eq!(parse_array(&deep), JsonArray::Invalid);
        let ok_deep = format!("[{}{}]", "[".repeat(500), "]".repeat(500));
        assert_eq!(parse_array(&ok_deep), JsonArray::NotStrings);
    }
}
