//! `--format` templates as docker reads them: a subset of Go's
//! `text/template` over JSON values, for `builder images --format` and
//! `builder inspect --format`.
//!
//! Known: text, `{{.}}`, `{{.Field.Sub}}`, the functions `json`, `index`,
//! `join`, `upper`, `lower`, `println`, string literals, and pipelines
//! (`{{.Config.Env | json}}`). `\t` and `\n` written in the format are a
//! tab and a newline, and a `table` prefix asks for columns with a header
//! row, as docker does. Values print as Go prints them: strings as they
//! are, lists as `[a b]`, maps as `map[k:v]`, a missing key as
//! `<no value>`.

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    /// Whether the format started with `table` (columns and a header row).
    pub table: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

/// One command of a pipeline: a function and its arguments, or a value.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Value(Arg),
    Call(String, Vec<Arg>),
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.` or `.A.B`.
    Field(Vec<String>),
    /// `"text"`.
    Text(String),
}

/// Why a template cannot be read or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

const FUNCTIONS: &[&str] = &["json", "index", "join", "upper", "lower", "println"];

impl Template {
    /// Parses `format` (docker's `table ` prefix and `\t`/`\n` escapes
    /// included).
    pub fn parse(format: &str) -> Result<Template, TemplateError> {
        let fail = |reason: String| TemplateError {
            template: format.to_owned(),
            reason,
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim())
            }
            _ => (false, format),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| fail("unclosed action: {{ without }}".to_owned()))?;
            let action = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
            parts.push(Part::Action(parse_pipeline(action).map_err(fail)?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts, table })
    }

    /// Runs the template on `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action(pipeline) => {
                    let value = run(pipeline, data).map_err(|reason| TemplateError {
                        template: self.source(),
                        reason,
                    })?;
                    out.push_str(&go_text(&value));
                }
            }
        }
        Ok(out)
    }

    fn source(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Action(_) => "{{…}}".to_owned(),
            })
            .collect()
    }
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>, String> {
    if action.is_empty() {
        return Err("empty action {{}}".to_owned());
    }
    split_outside_quotes(action, '|')
        .iter()
        .map(|command| {
            let words = words(command.trim())?;
            let Some((first, args)) = words.split_first() else {
                return Err("empty command in a pipeline".to_owned());
            };
            if first.starts_with('.') || first.starts_with('"') {
                if !args.is_empty() {
                    return Err(format!("{first} is not a function"));
                }
                return Ok(Command::Value(parse_arg(first)?));
            }
            if !FUNCTIONS.contains(&first.as_str()) {
                return Err(format!(
                    "function {first:?} not defined (known: {})",
                    FUNCTIONS.join(", ")
                ));
            }
            let args = args
                .iter()
                .map(|a| parse_arg(a))
                .collect::<Result<_, _>>()?;
            Ok(Command::Call(first.clone(), args))
        })
        .collect()
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == separator && !quoted {
            pieces.push(String::new());
        } else if let Some(last) = pieces.last_mut() {
            last.push(c);
        }
    }
    pieces
}

/// The words of a command: `"quoted strings"` stay whole.
fn words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = command.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::from('"');
            loop {
                match chars.next() {
                    Some('\\') => word.push(chars.next().unwrap_or('\\')),
                    Some('"') => break,
                    Some(c) => word.push(c),
                    None => return Err("unterminated quoted string".to_owned()),
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
            words.push(word);
        }
    }
    Ok(words)
}

fn parse_arg(word: &str) -> Result<Arg, String> {
    if let Some(text) = word.strip_prefix('"') {
        return Ok(Arg::Text(text.to_owned()));
    }
    let Some(path) = word.strip_prefix('.') else {
        return Err(format!("unexpected {word:?} (expected .Field or \"text\")"));
    };
    if path.is_empty() {
        return Ok(Arg::Field(Vec::new()));
    }
    let fields: Vec<String> = path.split('.').map(str::to_owned).collect();
    if fields.iter().any(String::is_empty) {
        return Err(format!("bad field path {word:?}"));
    }
    Ok(Arg::Field(fields))
}

fn run(pipeline: &[Command], data: &Value) -> Result<Value, String> {
    let mut last: Option<Value> = None;
    for command in pipeline {
        last = Some(match command {
            Command::Value(arg) => value_of(arg, data),
            Command::Call(name, args) => {
                let mut values: Vec<Value> = args.iter().map(|a| value_of(a, data)).collect();
                values.extend(last.take());
                call(name, &values)?
            }
        });
    }
    last.ok_or_else(|| "empty pipeline".to_owned())
}

/// A missing key is `null`, printed `<no value>` as Go prints a map's.
fn value_of(arg: &Arg, data: &Value) -> Value {
    match arg {
        Arg::Text(text) => Value::String(text.clone()),
        Arg::Field(path) => path
            .iter()
            .try_fold(data, |value, key| value.get(key))
            .cloned()
            .unwrap_or(Value::Null),
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name} takes {n} argument(s), got {}", args.len()))
        }
    };
    match name {
        "json" => {
            arity(1)?;
            Ok(Value::String(
                serde_json::to_string(&args[0]).unwrap_or_default(),
            ))
        }
        "upper" | "lower" => {
            arity(1)?;
            let text = go_text(&args[0]);
            Ok(Value::String(if name == "upper" {
                text.to_uppercase()
            } else {
                text.to_lowercase()
            }))
        }
        "join" => {
            arity(2)?;
            let items = args[0].as_array().ok_or("join needs a list first")?;
            let separator = go_text(&args[1]);
            let texts: Vec<String> = items.iter().map(go_text).collect();
            Ok(Value::String(texts.join(&separator)))
        }
        "println" => Ok(Value::String(format!(
            "{}\n",
            args.iter().map(go_text).collect::<Vec<_>>().join(" ")
        ))),
        "index" => {
            let (first, keys) = args.split_first().ok_or("index needs a value")?;
            keys.iter()
                .try_fold(first.clone(), |value, key| match (&value, key) {
                    (Value::Object(map), Value::String(k)) => {
                        Ok(map.get(k).cloned().unwrap_or(Value::Null))
                    }
                    (Value::Array(list), Value::String(k)) => k
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| list.get(i).cloned())
                        .ok_or_else(|| format!("index {k} out of range")),
                    _ => Err(format!("cannot index {} with {key}", go_text(&value))),
                })
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// A value as Go's `fmt.Print` shows it.
pub fn go_text(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_owned(),
        Value::String(text) => text.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", texts.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let texts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            format!("map[{}]", texts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(format: &str, data: &Value) -> String {
        Template::parse(format).unwrap().render(data).unwrap()
    }

    #[test]
    fn fields_functions_and_pipelines() {
        let data = json!({
            "Repository": "app", "Tag": "1",
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"v": "2", "a": "x"}},
        });
        assert_eq!(render("{{.Repository}}:{{.Tag}}", &data), "app:1");
        assert_eq!(render("{{ .Config.Env }}", &data), "[A=1 B=2]");
        assert_eq!(render("{{json .Config.Env}}", &data), r#"["A=1","B=2"]"#);
        assert_eq!(render("{{.Config.Env | json}}", &data), r#"["A=1","B=2"]"#);
        assert_eq!(render("{{.Config.Labels}}", &data), "map[a:x v:2]");
        assert_eq!(render(r#"{{index .Config.Labels "v"}}"#, &data), "2");
        assert_eq!(render(r#"{{join .Config.Env ","}}"#, &data), "A=1,B=2");
        assert_eq!(render("{{upper .Repository}}", &data), "APP");
        assert_eq!(render("{{.Missing}}", &data), "<no value>");
        assert_eq!(render(r"{{.Repository}}\t{{.Tag}}", &data), "app\t1");
        let table = Template::parse("table {{.Repository}}").unwrap();
        assert!(table.table);
        assert_eq!(table.render(&data).unwrap(), "app");
    }

    #[test]
    fn bad_templates_say_why() {
        for (format, reason) in [
            ("{{.Repository", "unclosed action"),
            ("{{}}", "empty action"),
            ("{{range .X}}", "function \"range\" not defined"),
            ("{{Repository}}", "not defined"),
            ("{{.a..b}}", "bad field path"),
        ] {
            let error = Template::parse(format).unwrap_err().to_string();
            assert!(error.contains(reason), "{format}: {error}");
        }
        let error = Template::parse("{{join .X}}")
            .unwrap()
            .render(&json!({"X": []}))
            .unwrap_err();
        assert!(error.to_string().contains("join takes 2"), "{error}");
    }
}
