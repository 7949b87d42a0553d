//! The `RUN --mount` value as far as the plan needs it: one CSV record of
//! `key=value` fields (Go's `encoding/csv` rules, as BuildKit reads it), and
//! its `from=` source. Checking the mount types and their options belongs to
//! the executor's mount handling.

/// A `--mount` value split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The fields in order.
    pub fields: Vec<MountField>,
}

/// One field of a mount: `key=value`, or a bare flag such as `readonly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountField {
    /// The key, lower-cased (BuildKit compares keys so).
    pub key: String,
    /// The value after the first `=`, if any.
    pub value: Option<String>,
}

impl MountSpec {
    /// Splits `text` as one CSV record; the error is `encoding/csv`'s reason.
    pub fn parse(text: &str) -> Result<MountSpec, String> {
        let fields = csv_record(text)?
            .into_iter()
            .map(|field| match field.split_once('=') {
                Some((k, v)) => MountField {
                    key: k.to_lowercase(),
                    value: Some(v.to_owned()),
                },
                None => MountField {
                    key: field.to_lowercase(),
                    value: None,
                },
            })
            .collect();
        Ok(MountSpec { fields })
    }

    /// The `from=` value (the last one wins, as BuildKit assigns them in
    /// order).
    pub fn from(&self) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.key == "from")
            .and_then(|f| f.value.as_deref())
    }
}

impl std::fmt::Display for MountSpec {
    /// The fields joined back into one CSV record.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let text = match &field.value {
                Some(v) => format!("{}={v}", field.key),
                None => field.key.clone(),
            };
            if text.contains([',', '"', '\n', '\r']) {
                write!(f, "\"{}\"", text.replace('"', "\"\""))?;
            } else {
                f.write_str(&text)?;
            }
        }
        Ok(())
    }
}

/// The first record of `text` under Go's `encoding/csv` defaults: `,`
/// separates, a field starting with `"` is quoted (`""` is a quote), and a
/// quote anywhere else is an error.
fn csv_record(text: &str) -> Result<Vec<String>, String> {
    // A record ends at the first newline outside quotes; blank lines before
    // it are skipped.
    let text = text.trim_start_matches(['\n', '\r']);
    if text.is_empty() {
        return Err("EOF".to_owned());
    }
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".to_owned()),
                }
            }
            match chars.peek() {
                None | Some(',' | '\n' | '\r') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".to_owned()),
            }
        } else {
            while let Some(&c) = chars.peek() {
                if matches!(c, ',' | '\n' | '\r') {
                    break;
                }
                if c == '"' {
                    return Err("bare \" in non-quoted-field".to_owned());
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_from() {
        let spec = MountSpec::parse("type=bind,FROM=builder,source=/out,ro").unwrap();
        assert_eq!(spec.fields.len(), 4);
        assert_eq!(spec.from(), Some("builder"));
        assert_eq!(
            spec.fields[3],
            MountField {
                key: "ro".into(),
                value: None
            }
        );
        assert_eq!(spec.to_string(), "type=bind,from=builder,source=/out,ro");
    }

    #[test]
    fn quoted_fields_follow_go_csv() {
        let spec = MountSpec::parse(r#""target=/a,b",from=x"#).unwrap();
        assert_eq!(spec.fields[0].value.as_deref(), Some("/a,b"));
        assert_eq!(spec.to_string(), r#""target=/a,b",from=x"#);
        assert!(MountSpec::parse(r#"target=/a"b"#).is_err());
        assert!(MountSpec::parse(r#""target=/a"x"#).is_err());
        assert!(MountSpec::parse("").is_err());
    }
}
