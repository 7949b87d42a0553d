//! `--format` templates as docker reads them: Go's `text/template` over
//! JSON values, for `builder images --format` and `builder inspect
//! --format`.
//!
//! Known: text, fields (`{{.}}`, `{{.Config.Env}}`), variables (`$` the
//! whole value, `{{$x := .A}}`), literals, pipelines (`{{.Env | json}}`),
//! parentheses, `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`, `{{range}}`
//! (with `$i, $e :=` and `{{else}}`), `{{with}}`, `{{- trimming -}}`,
//! comments, and the functions of [`funcs`]. `\t` and `\n` written in the
//! text are a tab and a newline, and a `table` prefix asks for columns
//! with a header row, as docker does. Values print as Go prints them:
//! strings as they are, lists as `[a b]`, maps as `map[k:v]`, a missing
//! key as `<no value>`.

mod exec;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<parse::Node>,
    /// The format as given, for errors.
    source: String,
    /// Whether the format started with `table` (columns and a header row).
    pub table: bool,
}

/// Why a template cannot be read or run: the template, the column
/// (counting characters from 1) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: column {column}: {reason}")]
pub struct TemplateError {
    template: String,
    column: usize,
    reason: String,
}

impl Template {
    /// Parses `format` (docker's `table ` prefix and `\t`/`\n` escapes
    /// included).
    pub fn parse(format: &str) -> Result<Template, TemplateError> {
        let fail = |(column, reason): lex::Located| TemplateError {
            template: format.to_owned(),
            column,
            reason,
        };
        // The body starts after `table` and the blanks after it.
        let start = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                Some(format.len() - rest.trim_start().len())
            }
            _ => None,
        };
        let table = start.is_some();
        let body = match start {
            Some(start) => format[start..].trim_end(),
            None => format,
        };
        let skipped = format[..start.unwrap_or(0)].chars().count();
        let items = lex::items(body, skipped).map_err(fail)?;
        let nodes = parse::tree(items, format.chars().count()).map_err(fail)?;
        Ok(Template {
            nodes,
            source: format.to_owned(),
            table,
        })
    }

    /// Runs the template on `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        exec::run(&self.nodes, data).map_err(|(column, reason)| TemplateError {
            template: self.source.clone(),
            column,
            reason,
        })
    }
}

/// A value as Go's `fmt.Print` shows it.
fn go_text(value: &Value) -> String {
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
    fn range_if_with_and_variables() {
        let data = json!({
            "Tag": "<none>", "ID": "abc", "Zero": 0, "Empty": [], "Size": 12,
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"v": "2", "a": "x"}, "User": ""},
        });
        assert_eq!(
            render("{{range .Config.Env}}{{println .}}{{end}}", &data),
            "A=1\nB=2\n"
        );
        assert_eq!(
            render(
                r#"{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}"#,
                &data
            ),
            "a=x\nv=2\n"
        );
        assert_eq!(
            render(
                "{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}",
                &data
            ),
            "0:A=1 1:B=2 "
        );
        assert_eq!(
            render("{{range $e := .Config.Env}}[{{$e}}|{{$.ID}}]{{end}}", &data),
            "[A=1|abc][B=2|abc]"
        );
        assert_eq!(
            render("{{range .Empty}}x{{else}}none{{end}}", &data),
            "none"
        );
        assert_eq!(
            render("{{range .Missing}}x{{else}}none{{end}}", &data),
            "none"
        );
        assert_eq!(
            render(r#"{{if eq .Tag "<none>"}}{{.ID}}{{end}}"#, &data),
            "abc"
        );
        assert_eq!(
            render(r#"{{if ne .Tag "<none>"}}{{.ID}}{{end}}"#, &data),
            ""
        );
        for (condition, shown) in [
            (".Zero", "no"),
            (".Empty", "no"),
            (".Config.User", "no"),
            (".Missing", "no"),
            (".Size", "yes"),
            (".Config.Labels", "yes"),
            ("and .Size .Zero", "no"),
            ("or .Zero .Size", "yes"),
            ("not .Zero", "yes"),
            ("gt .Size 10", "yes"),
            ("lt .Size 10", "no"),
            (r#"lt "a" "b""#, "yes"),
        ] {
            let format = format!("{{{{if {condition}}}}}yes{{{{else}}}}no{{{{end}}}}");
            assert_eq!(render(&format, &data), shown, "{condition}");
        }
        assert_eq!(
            render(
                "{{if .Zero}}a{{else if .Empty}}b{{else if .Size}}c{{else}}d{{end}}",
                &data
            ),
            "c"
        );
        assert_eq!(
            render("{{with .Config}}{{.Env}}{{end}}", &data),
            "[A=1 B=2]"
        );
        assert_eq!(render("{{with .Missing}}x{{else}}y{{end}}", &data), "y");
        assert_eq!(
            render("{{$x := .ID}}{{$x}}-{{$x = \"z\"}}{{$x}}", &data),
            "abc-z"
        );
        assert_eq!(render("a  {{- .ID -}}  b {{/* note */}}", &data), "aabcb ");
    }

    #[test]
    fn functions_print_as_go_and_docker_do() {
        let data = json!({"Name": "hello world", "N": 42, "L": ["x", "y"], "M": {"k": "v"}});
        for (format, shown) in [
            ("{{title .Name}}", "Hello World"),
            (r#"{{title "don't stop_me-now"}}"#, "Don'T Stop_me-Now"),
            ("{{upper .Name | lower}}", "hello world"),
            (r#"{{split .Name " "}}"#, "[hello world]"),
            (r#"{{index (split .Name " ") 1}}"#, "world"),
            ("{{index .L 1}}", "y"),
            ("{{len .L}} {{len .Name}} {{len .M}}", "2 11 1"),
            (r#"{{printf "%s=%d" .Name .N}}"#, "hello world=42"),
            (r#"{{printf "%q %v" .Name .L}}"#, r#""hello world" [x y]"#),
            (r#"{{printf "%-6s|%4d|" "ab" 7}}"#, "ab    |   7|"),
            (r#"{{printf "%d" .Name}}"#, "%!d(string=hello world)"),
            (r#"{{printf "%s %s" .Name}}"#, "hello world %!s(MISSING)"),
            ("{{println .N .Name}}", "42 hello world\n"),
            ("{{print .N 1 \"a\"}}", "42 1a"),
            ("{{json .M}}", r#"{"k":"v"}"#),
            (r#"{{join .L ", "}}"#, "x, y"),
            (
                r#"{{eq .N 42}} {{eq .Name "a" "hello world"}}"#,
                "true true",
            ),
            ("{{pad .N 1 2}}|{{truncate .Name 5}}", " 42  |hello"),
            (
                r#"{{printf "%2000000s|%.70000f" "a" 1}}"#,
                "%!(BADWIDTH)a|%!(BADPREC)1.000000",
            ),
            ("{{(index .M \"k\") | upper}}", "V"),
        ] {
            assert_eq!(render(format, &data), shown, "{format}");
        }
    }

    #[test]
    fn bad_templates_name_the_column_and_say_why() {
        for (format, column, reason) in [
            ("{{.Repository", 1, "unclosed action"),
            ("ab{{}}", 3, "missing value"),
            ("{{range .X}}", 13, "{{range}} at column 1 has no {{end}}"),
            (
                "{{if .X}}a{{else}}b",
                20,
                "{{if}} at column 1 has no {{end}}",
            ),
            ("x{{end}}", 2, "unexpected {{end}}"),
            ("{{ Repository}}", 4, "function \"Repository\" not defined"),
            ("{{.a..b}}", 6, "bad field path"),
            ("{{ .A \"x\" }}", 4, "non-function"),
            ("{{\"x}}", 3, "unterminated quoted string"),
            ("table {{.A}} {{nope}}", 16, "function \"nope\" not defined"),
            (
                "{{range .X}}{{else if .Y}}{{end}}",
                13,
                "does not go in {{range}}",
            ),
        ] {
            let error = Template::parse(format).unwrap_err();
            assert_eq!(error.column, column, "{format}: {error}");
            let text = error.to_string();
            assert!(
                text.contains(reason) && text.contains(&format!("{format:?}")),
                "{format}: {text}"
            );
        }
        for (format, data, column, reason) in [
            (
                "{{join .X}}",
                json!({"X": []}),
                3,
                "wrong number of args for join",
            ),
            (
                "ab {{.X.Y}}",
                json!({"X": "s"}),
                6,
                "can't evaluate field Y in type string",
            ),
            (
                "{{range .X}}{{end}}",
                json!({"X": "s"}),
                9,
                "range can't iterate over string",
            ),
            ("{{lt .X 1}}", json!({"X": "s"}), 3, "incompatible types"),
            ("{{$y}}", json!({}), 3, "undefined variable: $y"),
        ] {
            let error = Template::parse(format).unwrap().render(&data).unwrap_err();
            assert_eq!(error.column, column, "{format}: {error}");
            assert!(error.to_string().contains(reason), "{format}: {error}");
        }
    }
}
