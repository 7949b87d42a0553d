//! The functions a template may call: Go's built-ins (`and`, `or`, `not`,
//! `len`, `index`, `print`, `printf`, `println`, `eq`, `ne`, `lt`, `le`,
//! `gt`, `ge`) and docker's (`json`, `join`, `split`, `upper`, `lower`,
//! `title`, `pad`, `truncate`), over JSON values.

use super::go_text;
use serde_json::Value;
use std::cmp::Ordering;

/// Every function name a template may use.
pub(super) const FUNCTIONS: &[&str] = &[
    "and", "eq", "ge", "gt", "index", "join", "json", "le", "len", "lower", "lt", "ne", "not",
    "or", "pad", "print", "printf", "println", "split", "title", "truncate", "upper",
];

/// The widest `printf` width or precision, or `pad`: Go's `fmt` allows
/// 10⁶, Rust's formatter 65535.
const MAX_WIDTH: usize = u16::MAX as usize;

/// Go's truth: false, 0, `""`, nil, and empty lists and maps are false.
pub(super) fn truth(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Calls function `name` with `args` (a piped value last).
pub(super) fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let at_least = |n: usize| {
        if args.len() >= n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want at least {n} got {}",
                args.len()
            ))
        }
    };
    let text = |v: &Value| go_text(v);
    Ok(match name {
        "and" | "or" => {
            at_least(1)?;
            let wanted = name == "or";
            let last = args.len() - 1;
            let chosen = args.iter().position(|a| truth(a) == wanted).unwrap_or(last);
            args.into_iter().nth(chosen).unwrap_or(Value::Null)
        }
        "not" => {
            arity(1)?;
            Value::Bool(!truth(&args[0]))
        }
        "len" => {
            arity(1)?;
            Value::from(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                other => return Err(format!("len of {}", go_type(other))),
            })
        }
        "index" => {
            at_least(1)?;
            let mut args = args.into_iter();
            let first = args.next().unwrap_or(Value::Null);
            args.try_fold(first, |value, key| index(&value, &key))?
        }
        "print" => Value::String(sprint(&args)),
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(text).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            at_least(1)?;
            Value::String(printf(&text(&args[0]), &args[1..]))
        }
        "eq" | "ne" => {
            at_least(2)?;
            let mut equal = false;
            for other in &args[1..] {
                equal |= compare(&args[0], other, true)? == Some(Ordering::Equal);
            }
            Value::Bool(equal == (name == "eq"))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            let order = compare(&args[0], &args[1], false)?.ok_or_else(|| {
                format!(
                    "{name}: incompatible types for comparison: {} and {}",
                    go_type(&args[0]),
                    go_type(&args[1])
                )
            })?;
            Value::Bool(match name {
                "lt" => order == Ordering::Less,
                "le" => order != Ordering::Greater,
                "gt" => order == Ordering::Greater,
                _ => order != Ordering::Less,
            })
        }
        "json" => {
            arity(1)?;
            Value::String(serde_json::to_string(&args[0]).map_err(|e| e.to_string())?)
        }
        "join" => {
            arity(2)?;
            let Value::Array(items) = &args[0] else {
                return Err(format!(
                    "join needs a list first, not {}",
                    go_type(&args[0])
                ));
            };
            let texts: Vec<String> = items.iter().map(text).collect();
            Value::String(texts.join(&text(&args[1])))
        }
        "split" => {
            arity(2)?;
            let (whole, separator) = (text(&args[0]), text(&args[1]));
            let pieces: Vec<Value> = if separator.is_empty() {
                whole
                    .chars()
                    .map(|c| Value::String(c.to_string()))
                    .collect()
            } else {
                whole.split(&separator).map(Value::from).collect()
            };
            Value::Array(pieces)
        }
        "upper" => {
            arity(1)?;
            Value::String(text(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(1)?;
            Value::String(text(&args[0]).to_lowercase())
        }
        "title" => {
            arity(1)?;
            Value::String(title(&text(&args[0])))
        }
        "pad" => {
            arity(3)?;
            let (before, after) = (count(&args[1])?, count(&args[2])?);
            Value::String(format!(
                "{}{}{}",
                " ".repeat(before),
                text(&args[0]),
                " ".repeat(after)
            ))
        }
        "truncate" => {
            arity(2)?;
            let length = count(&args[1])?;
            Value::String(text(&args[0]).chars().take(length).collect())
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// A non-negative integer argument, at most [`MAX_WIDTH`].
fn count(value: &Value) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= MAX_WIDTH)
        .ok_or_else(|| {
            format!(
                "expected an integer from 0 to {MAX_WIDTH}, not {}",
                go_text(value)
            )
        })
}

fn index(value: &Value, key: &Value) -> Result<Value, String> {
    match (value, key) {
        (Value::Object(map), Value::String(k)) => Ok(map.get(k).cloned().unwrap_or(Value::Null)),
        (Value::Array(list), Value::Number(_) | Value::String(_)) => {
            let position = match key {
                Value::Number(n) => n.as_i64(),
                other => go_text(other).parse::<i64>().ok(),
            };
            position
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| list.get(i).cloned())
                .ok_or_else(|| format!("index out of range: {}", go_text(key)))
        }
        (Value::Null, _) => Err("index of untyped nil".to_owned()),
        _ => Err(format!(
            "can't index item of type {} with {}",
            go_type(value),
            go_type(key)
        )),
    }
}

/// How `a` and `b` order; `None` when they cannot be ordered (`eq` then
/// tells them unequal; nil equals only nil). Lists and maps are an error,
/// as in Go.
fn compare(a: &Value, b: &Value, equality: bool) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            return Err(format!("can't compare {} and {}", go_type(a), go_type(b)));
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if equality => Some(x.cmp(y)),
        (Value::Null, Value::Null) if equality => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) if equality => None,
        _ => {
            return Err(format!(
                "incompatible types for comparison: {} and {}",
                go_type(a),
                go_type(b)
            ));
        }
    })
}

/// The Go type a JSON value decodes to, as Go's errors name it.
pub(super) fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !arg.is_string() {
            out.push(' ');
        }
        out.push_str(&go_text(arg));
    }
    out
}

/// `strings.Title`: each word's first letter upper case.
fn title(text: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for c in text.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        // Go's `isSeparator`: ASCII other than letters, digits and `_`,
        // and spaces.
        start = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        };
    }
    out
}

/// `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %t %x %f %%`,
/// with `-` and a width (and a precision for `%f` and `%s`).
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        while let Some(flag) = chars.next_if(|c| matches!(c, '-' | '0' | '+' | ' ' | '#')) {
            left |= flag == '-';
            zero |= flag == '0';
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            digits.parse::<usize>().ok()
        };
        // Too wide or too precise: said, and the verb printed without.
        let mut bounded = |limit: Option<usize>, complaint: &str| match limit {
            Some(n) if n > MAX_WIDTH => {
                out.push_str(complaint);
                None
            }
            other => other,
        };
        let width = bounded(number(&mut chars), "%!(BADWIDTH)");
        let precision = chars
            .next_if_eq(&'.')
            .map(|_| number(&mut chars).unwrap_or(0));
        let precision = bounded(precision, "%!(BADPREC)");
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match verb_text(verb, arg, precision) {
            Some(text) => text,
            None => format!("%!{verb}({}={})", go_type(arg), go_text(arg)),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            let fill = if zero && !matches!(verb, 's' | 'q' | 'v') {
                "0"
            } else {
                " "
            };
            out.push_str(&fill.repeat(pad));
            out.push_str(&text);
        }
    }
    let extra: Vec<String> = args
        .map(|a| format!("{}={}", go_type(a), go_text(a)))
        .collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// One value under one verb; `None` when the verb does not fit it.
fn verb_text(verb: char, arg: &Value, precision: Option<usize>) -> Option<String> {
    let integer = || match arg {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    };
    match verb {
        'v' => Some(go_text(arg)),
        's' => {
            let text = go_text(arg);
            Some(match precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            })
        }
        'd' => integer().map(|i| i.to_string()),
        't' => arg.as_bool().map(|b| b.to_string()),
        'f' => arg
            .as_f64()
            .map(|f| format!("{f:.prec$}", prec = precision.unwrap_or(6))),
        'x' => match arg {
            Value::String(s) => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
            _ => integer().map(|i| format!("{i:x}")),
        },
        'q' => match arg {
            Value::String(s) => Some(go_quote(s)),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(go_quote))
                .collect::<Option<Vec<_>>>()
                .map(|quoted| format!("[{}]", quoted.join(" "))),
            _ => None,
        },
        _ => None,
    }
}

/// `strconv.Quote`.
fn go_quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
