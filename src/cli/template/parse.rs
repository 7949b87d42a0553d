//! The tree of a template: text, output actions, and the `if`, `range`
//! and `with` blocks (with `else`, `else if` and `else with`), each
//! pipeline's commands and operands checked as Go's parser checks them.

use super::funcs::FUNCTIONS;
use super::lex::{Item, Located, Spanned, Token};
use serde_json::Value;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Literal text.
    Text(String),
    /// `{{pipeline}}`: printed, unless it declares or assigns a variable.
    Output(Pipeline),
    /// `{{if}}`, `{{range}}` or `{{with}}` … `{{else}}` … `{{end}}`.
    Block(Block),
}

/// Which block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The body when the value is true, else the `else` part.
    If,
    /// The body once per element (dot the element), else (empty) the `else` part.
    Range,
    /// The body with dot the value when it is true, else the `else` part.
    With,
}

/// A block and its parts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Block {
    pub kind: Kind,
    pub pipeline: Pipeline,
    pub body: Vec<Node>,
    /// `{{else}}`'s nodes (an `else if` is an `if` here, as in Go).
    pub otherwise: Vec<Node>,
}

/// Commands joined by `|`, maybe declaring (`$x :=`) or assigning (`$x =`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipeline {
    pub column: usize,
    /// The variables declared or assigned: one, or two in a `range`.
    pub variables: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub commands: Vec<Command>,
}

/// A function and its arguments, or a single value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Command {
    pub column: usize,
    pub operands: Vec<Operand>,
}

/// One word of a command.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    /// `.A.B` of dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Variable(String, Vec<String>),
    /// A function's name.
    Function(String),
    /// A string, number, `true`, `false` or `nil`.
    Literal(Value),
    /// `( pipeline )`.
    Nested(Box<Pipeline>),
}

/// How deep blocks and parentheses may nest (each level is a frame of
/// the parser and of the run: a bound keeps a silly format from
/// overflowing the stack).
const MAX_NESTING: usize = 200;

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf(Pipeline),
    ElseWith(Pipeline),
}

/// The tree of a template's items.
pub(super) fn tree(items: Vec<Item>, length: usize) -> Result<Vec<Node>, Located> {
    let mut parser = Parser {
        items: items.into_iter(),
        length,
        column: 1,
        depth: 0,
    };
    let (nodes, stop) = parser.list()?;
    match stop {
        Stop::Eof => Ok(nodes),
        Stop::End => Err((parser.column, "unexpected {{end}}".to_owned())),
        _ => Err((parser.column, "unexpected {{else}}".to_owned())),
    }
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    /// Characters in the format, for errors at its end.
    length: usize,
    /// Where the last action read starts.
    column: usize,
    /// How many blocks are open.
    depth: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Located> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (column, tokens) = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action { column, tokens } => (column, tokens),
            };
            self.column = column;
            let keyword = match tokens.first().map(|t| &t.token) {
                Some(Token::Ident(word)) => word.as_str(),
                _ => "",
            };
            let rest = tokens.get(1..).unwrap_or_default();
            let stop = match keyword {
                "end" | "else" if rest.is_empty() => {
                    return Ok((
                        nodes,
                        if keyword == "end" {
                            Stop::End
                        } else {
                            Stop::Else
                        },
                    ));
                }
                "end" => return Err((column, "{{end}} takes nothing after it".to_owned())),
                "else" => match rest.first().map(|t| &t.token) {
                    Some(Token::Ident(word)) if word == "if" || word == "with" => {
                        let pipeline = pipeline(&rest[1..], column, false)?;
                        if word == "if" {
                            Stop::ElseIf(pipeline)
                        } else {
                            Stop::ElseWith(pipeline)
                        }
                    }
                    _ => {
                        return Err((
                            column,
                            "{{else}} takes nothing after it but `if` or `with`".to_owned(),
                        ));
                    }
                },
                "if" | "range" | "with" => {
                    let kind = match keyword {
                        "if" => Kind::If,
                        "range" => Kind::Range,
                        _ => Kind::With,
                    };
                    if rest.is_empty() {
                        return Err((column, format!("missing value for {{{{{keyword}}}}}")));
                    }
                    let pipeline = pipeline(rest, column, kind == Kind::Range)?;
                    nodes.push(Node::Block(self.block(kind, pipeline, keyword, column)?));
                    continue;
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err((column, format!("{{{{{keyword}}}}} is not supported")));
                }
                _ => {
                    nodes.push(Node::Output(pipeline(&tokens, column, false)?));
                    continue;
                }
            };
            return Ok((nodes, stop));
        }
        Ok((nodes, Stop::Eof))
    }

    /// The rest of a block after its opening action, to its `{{end}}`.
    fn block(
        &mut self,
        kind: Kind,
        pipeline: Pipeline,
        name: &str,
        opened: usize,
    ) -> Result<Block, Located> {
        let unclosed = |parser: &Parser| {
            Err((
                parser.length + 1,
                format!("{{{{{name}}}}} at column {opened} has no {{{{end}}}}"),
            ))
        };
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err((opened, format!("blocks nested deeper than {MAX_NESTING}")));
        }
        let (body, stop) = self.list()?;
        let otherwise = match stop {
            Stop::End => Vec::new(),
            Stop::Else => match self.list()? {
                (nodes, Stop::End) => nodes,
                (_, Stop::Eof) => return unclosed(self),
                _ => return Err((self.column, "a second {{else}} in one block".to_owned())),
            },
            Stop::ElseIf(next) if kind == Kind::If => {
                vec![Node::Block(self.block(Kind::If, next, name, opened)?)]
            }
            Stop::ElseWith(next) if kind == Kind::With => {
                vec![Node::Block(self.block(Kind::With, next, name, opened)?)]
            }
            Stop::ElseIf(_) | Stop::ElseWith(_) => {
                return Err((
                    self.column,
                    format!("{{{{else if}}}} or {{{{else with}}}} does not go in {{{{{name}}}}}"),
                ));
            }
            Stop::Eof => return unclosed(self),
        };
        self.depth -= 1;
        Ok(Block {
            kind,
            pipeline,
            body,
            otherwise,
        })
    }
}

/// A pipeline, with its declaration (two variables only in a `range`).
fn pipeline(tokens: &[Spanned], column: usize, range: bool) -> Result<Pipeline, Located> {
    let column = tokens.first().map_or(column, |t| t.column);
    let bare = |i: usize| match tokens.get(i).map(|t| &t.token) {
        Some(Token::Variable(name, path)) if path.is_empty() => Some(name.clone()),
        _ => None,
    };
    let token = |i: usize| tokens.get(i).map(|t| &t.token);
    let (variables, assign, rest) =
        if let (true, Some(first), Some(Token::Comma), Some(second), Some(Token::Declare)) =
            (range, bare(0), token(1), bare(2), token(3))
        {
            (vec![first, second], false, &tokens[4..])
        } else if let (Some(first), Some(Token::Declare | Token::Assign)) = (bare(0), token(1)) {
            (vec![first], token(1) == Some(&Token::Assign), &tokens[2..])
        } else {
            (Vec::new(), false, tokens)
        };
    if rest.is_empty() {
        return Err((column, "missing value for command".to_owned()));
    }
    let mut commands = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, spanned) in rest.iter().enumerate() {
        match spanned.token {
            Token::Open => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err((
                        spanned.column,
                        format!("parentheses nested deeper than {MAX_NESTING}"),
                    ));
                }
            }
            Token::Close => {
                depth = depth
                    .checked_sub(1)
                    .ok_or((spanned.column, "unexpected \")\"".to_owned()))?;
            }
            Token::Pipe if depth == 0 => {
                commands.push(command(&rest[start..i], spanned.column)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err((column, "unclosed left paren".to_owned()));
    }
    let end_column = rest.last().map_or(column, |t| t.column);
    commands.push(command(&rest[start..], end_column)?);
    Ok(Pipeline {
        column,
        variables,
        assign,
        commands,
    })
}

fn command(tokens: &[Spanned], column: usize) -> Result<Command, Located> {
    let Some(first) = tokens.first() else {
        return Err((column, "missing command in a pipeline".to_owned()));
    };
    let mut operands = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let spanned = &tokens[i];
        let fail = |reason: String| Err((spanned.column, reason));
        operands.push(match &spanned.token {
            Token::Field(path) => Operand::Field(path.clone()),
            Token::Variable(name, path) => Operand::Variable(name.clone(), path.clone()),
            Token::Text(text) => Operand::Literal(Value::String(text.clone())),
            Token::Number(number) => Operand::Literal(Value::Number(number.clone())),
            Token::Ident(word) => match word.as_str() {
                "true" | "false" => Operand::Literal(Value::Bool(word == "true")),
                "nil" => Operand::Literal(Value::Null),
                word if FUNCTIONS.contains(&word) => Operand::Function(word.to_owned()),
                "if" | "range" | "with" | "else" | "end" => {
                    return fail(format!("unexpected keyword {word:?} in a command"));
                }
                word => {
                    return fail(format!(
                        "function {word:?} not defined (known: {})",
                        FUNCTIONS.join(", ")
                    ));
                }
            },
            Token::Open => {
                let close = matching_close(tokens, i);
                let inner = pipeline(&tokens[i + 1..close], spanned.column, false)?;
                i = close;
                Operand::Nested(Box::new(inner))
            }
            other => return fail(format!("unexpected {} in a command", describe(other))),
        });
        i += 1;
    }
    if operands.len() > 1 && !matches!(operands[0], Operand::Function(_)) {
        return Err((
            first.column,
            "can't give an argument to a non-function".to_owned(),
        ));
    }
    Ok(Command {
        column: first.column,
        operands,
    })
}

/// The index of the `)` closing the `(` at `open` (the pipeline checked
/// that the parentheses balance).
fn matching_close(tokens: &[Spanned], open: usize) -> usize {
    let mut depth = 0;
    for (i, spanned) in tokens.iter().enumerate().skip(open) {
        match spanned.token {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

fn describe(token: &Token) -> &'static str {
    match token {
        Token::Pipe => "\"|\"",
        Token::Close => "\")\"",
        Token::Declare => "\":=\"",
        Token::Assign => "\"=\"",
        Token::Comma => "\",\"",
        _ => "token",
    }
}
