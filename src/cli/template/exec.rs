//! Running a template's tree on a JSON value: dot, variables (`$` is the
//! whole value), blocks and pipelines, as Go's `text/template` runs them.

use super::funcs::{self, go_type, truth};
use super::go_text;
use super::lex::Located;
use super::parse::{Block, Command, Kind, Node, Operand, Pipeline};
use serde_json::Value;

/// The text `nodes` make of `root`.
pub(super) fn run(nodes: &[Node], root: &Value) -> Result<String, Located> {
    let mut exec = Exec {
        variables: vec![("$".to_owned(), root.clone())],
    };
    let mut out = String::new();
    exec.nodes(nodes, root, &mut out)?;
    Ok(out)
}

struct Exec {
    /// The variables in scope, innermost last.
    variables: Vec<(String, Value)>,
}

impl Exec {
    fn nodes(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), Located> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Output(pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if pipeline.variables.is_empty() {
                        out.push_str(&go_text(&value));
                    } else {
                        self.bind(pipeline, value)?;
                    }
                }
                Node::Block(block) => {
                    let scope = self.variables.len();
                    let result = self.block(block, dot, out);
                    self.variables.truncate(scope);
                    result?;
                }
            }
        }
        Ok(())
    }

    fn block(&mut self, block: &Block, dot: &Value, out: &mut String) -> Result<(), Located> {
        let value = self.pipeline(&block.pipeline, dot)?;
        if block.kind == Kind::Range {
            return self.range(block, value, dot, out);
        }
        if !block.pipeline.variables.is_empty() {
            self.bind(&block.pipeline, value.clone())?;
        }
        match (truth(&value), block.kind) {
            (true, Kind::With) => self.nodes(&block.body, &value, out),
            (true, _) => self.nodes(&block.body, dot, out),
            (false, _) => self.nodes(&block.otherwise, dot, out),
        }
    }

    fn range(
        &mut self,
        block: &Block,
        value: Value,
        dot: &Value,
        out: &mut String,
    ) -> Result<(), Located> {
        let entries: Vec<(Value, Value)> = match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (Value::from(i), item))
                .collect(),
            Value::Object(map) => {
                let mut entries: Vec<(Value, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (Value::String(k), v))
                    .collect();
                entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                entries
            }
            Value::Null => Vec::new(),
            other => {
                return Err((
                    block.pipeline.column,
                    format!("range can't iterate over {}", go_type(&other)),
                ));
            }
        };
        if entries.is_empty() {
            return self.nodes(&block.otherwise, dot, out);
        }
        let scope = self.variables.len();
        for (key, item) in entries {
            match block.pipeline.variables.as_slice() {
                [element] => self.variables.push((element.clone(), item.clone())),
                [index, element] => {
                    self.variables.push((index.clone(), key));
                    self.variables.push((element.clone(), item.clone()));
                }
                _ => {}
            }
            self.nodes(&block.body, &item, out)?;
            self.variables.truncate(scope);
        }
        Ok(())
    }

    /// Declares (`:=`) or sets (`=`) the pipeline's variable.
    fn bind(&mut self, pipeline: &Pipeline, value: Value) -> Result<(), Located> {
        let name = &pipeline.variables[0];
        if !pipeline.assign {
            self.variables.push((name.clone(), value));
            return Ok(());
        }
        match self.variables.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => return Err((pipeline.column, format!("undefined variable: {name}"))),
        }
        Ok(())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value, Located> {
        let mut last = None;
        for command in &pipeline.commands {
            last = Some(self.command(command, dot, last.take())?);
        }
        Ok(last.unwrap_or(Value::Null))
    }

    fn command(
        &mut self,
        command: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, Located> {
        let column = command.column;
        match command.operands.split_first() {
            Some((Operand::Function(name), rest)) => {
                let mut args = rest
                    .iter()
                    .map(|operand| self.operand(operand, dot, column))
                    .collect::<Result<Vec<_>, _>>()?;
                args.extend(piped);
                funcs::call(name, args).map_err(|e| (column, format!("error calling {name}: {e}")))
            }
            Some((operand, [])) if piped.is_none() => self.operand(operand, dot, column),
            _ => Err((
                column,
                "can't give an argument to a non-function".to_owned(),
            )),
        }
    }

    fn operand(&mut self, operand: &Operand, dot: &Value, column: usize) -> Result<Value, Located> {
        match operand {
            Operand::Field(path) => walk(dot, path).map_err(|e| (column, e)),
            Operand::Variable(name, path) => {
                let Some((_, value)) = self.variables.iter().rev().find(|(n, _)| n == name) else {
                    return Err((column, format!("undefined variable: {name}")));
                };
                walk(value, path).map_err(|e| (column, e))
            }
            Operand::Function(name) => funcs::call(name, Vec::new())
                .map_err(|e| (column, format!("error calling {name}: {e}"))),
            Operand::Literal(value) => Ok(value.clone()),
            Operand::Nested(pipeline) => self.pipeline(pipeline, dot),
        }
    }
}

/// `.A.B` of `value`: a missing key (or a field of nil) is nil, which
/// prints `<no value>`; a field of a string, number or list is an error.
fn walk(value: &Value, path: &[String]) -> Result<Value, String> {
    let mut current = value;
    for key in path {
        current = match current {
            Value::Object(map) => match map.get(key) {
                Some(next) => next,
                None => return Ok(Value::Null),
            },
            Value::Null => return Ok(Value::Null),
            other => {
                return Err(format!(
                    "can't evaluate field {key} in type {}",
                    go_type(other)
                ));
            }
        };
    }
    Ok(current.clone())
}
