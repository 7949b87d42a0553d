//! Typed instructions (grammar §7): the syntax tree lowered into one type per
//! instruction, with flags checked against each instruction's flag set and
//! arguments checked the way BuildKit's `instructions` package checks them.
//!
//! Words stay raw: nothing is expanded here. The plan module expands them
//! with `dockerfile::expand`, following the Dockerfile reference on which
//! instructions expand variables.

use super::ast::{
    Args, CommandForm, Directives, Flag, Heredoc, KeyValue, Keyword, Node, Span, SyntaxTree, Word,
};
use super::directives::CheckDirective;
use super::error::{Error, ErrorKind, Located};
use super::heredoc::parse_marker;
use std::time::Duration;

/// A lowered Dockerfile: ARGs before the first FROM, then the stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives.
    pub directives: Directives,
    /// The `# check=` directive, parsed.
    pub check: Option<CheckDirective>,
    /// ARG instructions before the first FROM (usable in FROM lines).
    pub meta_args: Vec<ArgInstruction>,
    /// The build stages, in order (at least one).
    pub stages: Vec<Stage>,
}

/// An ARG instruction with its span (used for the meta args).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgInstruction {
    /// The declarations.
    pub args: Vec<ArgDecl>,
    /// Where the instruction is.
    pub span: Span,
}

/// One build stage: its FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The FROM line.
    pub from: From,
    /// Where the FROM line is.
    pub span: Span,
    /// The instructions of the stage, in order.
    pub instructions: Vec<Instruction>,
}

/// `FROM [--platform=…] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base image (or stage name, or `scratch`), raw.
    pub image: Word,
    /// The stage name, lower-cased (BuildKit compares names so).
    pub name: Option<Word>,
    /// `--platform`, raw.
    pub platform: Option<Word>,
    /// Comment lines above the FROM (stage description).
    pub comments: Vec<String>,
}

/// One instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What it does.
    pub kind: InstructionKind,
    /// Where it is (all its lines, heredoc bodies included).
    pub span: Span,
    /// Its logical line as written (continuations joined), for progress
    /// output and ONBUILD triggers.
    pub original: String,
}

/// The instructions that may appear in a stage (FROM starts a [`Stage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`
    Run(Run),
    /// `CMD` (exec form, shell form, or nothing at all)
    Cmd(Option<Command>),
    /// `ENTRYPOINT` (`ENTRYPOINT []` gives an empty exec form)
    Entrypoint(Option<Command>),
    /// `LABEL k=v …` (raw pairs)
    Label(Vec<Pair>),
    /// `MAINTAINER name`
    Maintainer(Word),
    /// `EXPOSE port[/proto] …`
    Expose(Vec<Word>),
    /// `ENV k=v …` (raw pairs)
    Env(Vec<Pair>),
    /// `ADD`
    Add(Add),
    /// `COPY`
    Copy(Copy),
    /// `VOLUME path …`
    Volume(Vec<Word>),
    /// `USER user[:group]`
    User(Word),
    /// `WORKDIR path`
    Workdir(Word),
    /// `ARG name[=default] …`
    Arg(Vec<ArgDecl>),
    /// `ONBUILD instruction` (never FROM, MAINTAINER or ONBUILD)
    Onbuild(Box<Instruction>),
    /// `STOPSIGNAL signal`
    StopSignal(Word),
    /// `HEALTHCHECK`
    Healthcheck(Healthcheck),
    /// `SHELL ["executable", "params"…]` (always JSON, never empty)
    Shell(Vec<Word>),
}

/// A command line: exec form runs the words directly, shell form runs the
/// string with the stage's SHELL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["executable", "arg"…]`, JSON-decoded.
    Exec(Vec<Word>),
    /// `command string`, raw.
    Shell(Word),
}

/// `RUN [--mount=…] [--network=…] [--security=…] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// What to run.
    pub command: Command,
    /// Each `--mount` value, raw (`type=cache,target=/root/.cache`).
    pub mounts: Vec<Word>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
    /// Heredocs of the command (shell form only).
    pub heredocs: Vec<Heredoc>,
}

/// `RUN --network=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The build's default network.
    Default,
    /// No network (loopback only).
    None,
    /// The host's network.
    Host,
}

/// `RUN --security=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// The default sandbox.
    Sandbox,
    /// All capabilities (needs an entitlement).
    Insecure,
}

/// A source of COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path (or URL for ADD), raw.
    Path(Word),
    /// An inline file from a heredoc; its `name` is the file name.
    Heredoc(Heredoc),
}

/// `COPY [flags] src… dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The sources (at least one).
    pub sources: Vec<Source>,
    /// The destination, raw.
    pub dest: Word,
    /// `--from`: a stage name, index or image.
    pub from: Option<Word>,
    /// `--chown`.
    pub chown: Option<Word>,
    /// `--chmod`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// Each `--exclude` pattern.
    pub exclude: Vec<Word>,
}

/// `ADD [flags] src… dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// The sources (at least one).
    pub sources: Vec<Source>,
    /// The destination, raw.
    pub dest: Word,
    /// `--chown`.
    pub chown: Option<Word>,
    /// `--chmod`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--checksum` of a remote source.
    pub checksum: Option<Word>,
    /// `--keep-git-dir` for Git sources.
    pub keep_git_dir: bool,
    /// Each `--exclude` pattern.
    pub exclude: Vec<Word>,
    /// `--unpack`: `None` unpacks local archives only (the default).
    pub unpack: Option<bool>,
}

/// One ENV or LABEL pair, raw (quotes still in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key (never empty).
    pub key: Word,
    /// The value.
    pub value: Word,
}

/// One ARG declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name (never empty), raw.
    pub name: Word,
    /// The default after `=`, raw, if any.
    pub default: Option<Word>,
    /// The description from a `# name description` comment above.
    pub comment: Option<String>,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// Disable any inherited health check.
    None,
    /// Check with a command.
    Check(HealthCheck),
}

/// The settings of `HEALTHCHECK … CMD`. Durations of zero mean "default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The command (exec form → `CMD`, shell form → `CMD-SHELL`).
    pub command: Command,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// Lowers a syntax tree into typed instructions.
pub fn lower(tree: &SyntaxTree) -> Result<Dockerfile, Error> {
    lower_tree(tree).map_err(|e| Error::new(e.kind, e.span, &tree.file, &tree.source))
}

/// Parses and lowers a Dockerfile given as bytes.
pub fn load(file: &str, bytes: &[u8]) -> Result<Dockerfile, Error> {
    lower(&super::parse_bytes(file, bytes)?)
}

fn lower_tree(tree: &SyntaxTree) -> Result<Dockerfile, Located> {
    let check = match &tree.directives.check {
        Some(d) => Some(CheckDirective::parse(&d.value).map_err(|k| Located::new(k, d.span))?),
        None => None,
    };
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &tree.nodes {
        if node.keyword == Keyword::From {
            stages.push(Stage {
                from: from(node)?,
                span: node.span,
                instructions: Vec::new(),
            });
            continue;
        }
        let instruction = instruction(node)?;
        match (stages.last_mut(), instruction.kind) {
            (Some(stage), kind) => stage.instructions.push(Instruction {
                kind,
                ..instruction
            }),
            (None, InstructionKind::Arg(args)) => meta_args.push(ArgInstruction {
                args,
                span: instruction.span,
            }),
            (None, _) => return Err(Located::new(ErrorKind::NoStage, node.keyword_word.span)),
        }
    }
    if stages.is_empty() {
        let at = tree.nodes.last().map_or(Span::default(), |n| n.span);
        return Err(Located::new(ErrorKind::NoStage, at));
    }
    Ok(Dockerfile {
        directives: tree.directives.clone(),
        check,
        meta_args,
        stages,
    })
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// `--flag=value`, once.
    String,
    /// `--flag=value`, any number of times.
    Strings,
}

/// The flags each instruction accepts (BuildKit's flag sets).
fn flag_set(keyword: Keyword) -> &'static [(&'static str, FlagKind)] {
    use FlagKind::*;
    match keyword {
        Keyword::From => &[("platform", String)],
        Keyword::Run => &[
            ("mount", Strings),
            ("network", String),
            ("security", String),
        ],
        Keyword::Copy => &[
            ("from", String),
            ("chown", String),
            ("chmod", String),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Strings),
        ],
        Keyword::Add => &[
            ("chown", String),
            ("chmod", String),
            ("link", Bool),
            ("checksum", String),
            ("keep-git-dir", Bool),
            ("exclude", Strings),
            ("unpack", Bool),
        ],
        Keyword::Healthcheck => &[
            ("interval", String),
            ("timeout", String),
            ("start-period", String),
            ("start-interval", String),
            ("retries", String),
        ],
        _ => &[],
    }
}

/// A checked flag value.
#[derive(Debug)]
enum FlagValue {
    Bool(bool),
    String(Word),
    Strings(Vec<Word>),
}

/// The checked flags of one instruction.
#[derive(Debug, Default)]
struct Flags {
    values: Vec<(&'static str, FlagValue)>,
}

impl Flags {
    /// Checks `flags` against the flag set of `keyword`.
    fn parse(keyword: Keyword, flags: &[Flag]) -> Result<Flags, Located> {
        let set = flag_set(keyword);
        let mut parsed = Flags::default();
        for flag in flags {
            let error = |kind| Located::new(kind, flag.span);
            let name = flag.name();
            let Some(&(name, kind)) = set.iter().find(|(n, _)| *n == name) else {
                return Err(error(ErrorKind::UnknownFlag {
                    instruction: keyword.as_str(),
                    flag: name.to_owned(),
                }));
            };
            let value = flag.value();
            let word = |v: &str| Word {
                value: v.to_owned(),
                span: flag.span,
            };
            let existing = parsed.values.iter_mut().find(|(n, _)| *n == name);
            match (kind, existing) {
                (FlagKind::Strings, Some((_, FlagValue::Strings(list)))) => {
                    let v = value.ok_or_else(|| error(ErrorKind::FlagMissingValue(name.into())))?;
                    list.push(word(v));
                    continue;
                }
                (_, Some(_)) => return Err(error(ErrorKind::DuplicateFlag(name.into()))),
                (_, None) => {}
            }
            let checked = match (kind, value) {
                (FlagKind::Bool, None) => FlagValue::Bool(true),
                (FlagKind::Bool, Some("")) => {
                    return Err(error(ErrorKind::FlagMissingValue(name.into())));
                }
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => FlagValue::Bool(true),
                    "false" => FlagValue::Bool(false),
                    _ => {
                        return Err(error(ErrorKind::FlagNotBool {
                            flag: name.into(),
                            value: v.into(),
                        }));
                    }
                },
                (_, None) => return Err(error(ErrorKind::FlagMissingValue(name.into()))),
                (FlagKind::String, Some(v)) => FlagValue::String(word(v)),
                (FlagKind::Strings, Some(v)) => FlagValue::Strings(vec![word(v)]),
            };
            parsed.values.push((name, checked));
        }
        Ok(parsed)
    }

    fn get(&self, name: &str) -> Option<&FlagValue> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn string(&self, name: &str) -> Option<Word> {
        match self.get(name) {
            Some(FlagValue::String(w)) => Some(w.clone()),
            _ => None,
        }
    }

    fn strings(&self, name: &str) -> Vec<Word> {
        match self.get(name) {
            Some(FlagValue::Strings(list)) => list.clone(),
            _ => Vec::new(),
        }
    }

    fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FlagValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// The plain argument words of a node (BuildKit's `nodeArgs`).
fn arg_words(node: &Node) -> Vec<&Word> {
    match &node.args {
        Args::Empty | Args::Onbuild(_) | Args::Pairs(_) | Args::Healthcheck { .. } => Vec::new(),
        Args::Command(CommandForm::Exec(words)) | Args::List { words, .. } => {
            words.iter().collect()
        }
        Args::Command(CommandForm::Shell(w)) | Args::Text(w) => vec![w],
    }
}

fn at_keyword(node: &Node, kind: ErrorKind) -> Located {
    Located::new(kind, node.keyword_word.span)
}

/// `FROM` (grammar §7): one word, or three with `AS` in the middle.
fn from(node: &Node) -> Result<From, Located> {
    let words = arg_words(node);
    let (image, name) = match words.as_slice() {
        [image] => (*image, None),
        [image, as_, name] if as_.value.eq_ignore_ascii_case("as") => {
            let lower = name.value.to_lowercase();
            let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(Located::new(
                    ErrorKind::InvalidStageName(name.value.clone()),
                    name.span,
                ));
            }
            (
                *image,
                Some(Word {
                    value: lower,
                    span: name.span,
                }),
            )
        }
        _ => return Err(at_keyword(node, ErrorKind::FromArguments)),
    };
    let flags = Flags::parse(Keyword::From, &node.flags)?;
    Ok(From {
        image: image.clone(),
        name,
        platform: flags.string("platform"),
        comments: node.comments.clone(),
    })
}

/// Lowers any node but FROM.
fn instruction(node: &Node) -> Result<Instruction, Located> {
    let flags = Flags::parse(node.keyword, &node.flags)?;
    let words = arg_words(node);
    let one = |name: &'static str| match words.as_slice() {
        [w] => Ok((*w).clone()),
        _ => Err(at_keyword(node, ErrorKind::ExactlyOneArgument(name))),
    };
    let at_least_one = |name: &'static str| {
        if words.is_empty() {
            Err(at_keyword(node, ErrorKind::AtLeastOneArgument(name)))
        } else {
            Ok(words.iter().map(|w| (*w).clone()).collect::<Vec<_>>())
        }
    };
    let kind = match node.keyword {
        Keyword::From => return Err(at_keyword(node, ErrorKind::OnbuildTrigger("FROM"))),
        Keyword::Run => InstructionKind::Run(Run {
            command: command(node)
                .ok_or_else(|| at_keyword(node, ErrorKind::AtLeastOneArgument("RUN")))?,
            mounts: flags.strings("mount"),
            network: flags.string("network").map(network).transpose()?,
            security: flags.string("security").map(security).transpose()?,
            heredocs: node.heredocs.clone(),
        }),
        Keyword::Cmd => InstructionKind::Cmd(command(node)),
        Keyword::Entrypoint => InstructionKind::Entrypoint(command(node)),
        Keyword::Label => InstructionKind::Label(pairs(node, "LABEL")?),
        Keyword::Env => InstructionKind::Env(pairs(node, "ENV")?),
        Keyword::Maintainer => InstructionKind::Maintainer(one("MAINTAINER")?),
        Keyword::Expose => InstructionKind::Expose(at_least_one("EXPOSE")?),
        Keyword::Add => {
            let (sources, dest) = sources_and_dest(node, "ADD")?;
            InstructionKind::Add(Add {
                sources,
                dest,
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
                exclude: flags.strings("exclude"),
                unpack: flags.bool("unpack"),
            })
        }
        Keyword::Copy => {
            let (sources, dest) = sources_and_dest(node, "COPY")?;
            InstructionKind::Copy(Copy {
                sources,
                dest,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                parents: flags.bool("parents").unwrap_or(false),
                exclude: flags.strings("exclude"),
            })
        }
        Keyword::Volume => {
            let volumes = at_least_one("VOLUME")?;
            if let Some(empty) = volumes.iter().find(|v| v.value.trim().is_empty()) {
                return Err(Located::new(ErrorKind::EmptyVolume, empty.span));
            }
            InstructionKind::Volume(volumes)
        }
        Keyword::User => InstructionKind::User(one("USER")?),
        Keyword::Workdir => InstructionKind::Workdir(one("WORKDIR")?),
        Keyword::StopSignal => InstructionKind::StopSignal(one("STOPSIGNAL")?),
        Keyword::Arg => InstructionKind::Arg(args(node, &at_least_one("ARG")?)?),
        Keyword::Shell => match &node.args {
            Args::Command(CommandForm::Exec(words)) if !words.is_empty() => {
                InstructionKind::Shell(words.clone())
            }
            Args::Command(CommandForm::Shell(w)) => {
                return Err(Located::new(ErrorKind::ShellNotJson, w.span));
            }
            _ => return Err(at_keyword(node, ErrorKind::AtLeastOneArgument("SHELL"))),
        },
        Keyword::Healthcheck => InstructionKind::Healthcheck(healthcheck(node, &flags)?),
        Keyword::Onbuild => InstructionKind::Onbuild(Box::new(onbuild(node)?)),
    };
    Ok(Instruction {
        kind,
        span: node.span,
        original: node.original.clone(),
    })
}

/// The command of RUN/CMD/ENTRYPOINT, if any.
fn command(node: &Node) -> Option<Command> {
    match &node.args {
        Args::Command(CommandForm::Exec(words)) => Some(Command::Exec(words.clone())),
        Args::Command(CommandForm::Shell(w)) => Some(Command::Shell(w.clone())),
        _ => None,
    }
}

fn network(w: Word) -> Result<NetworkMode, Located> {
    match w.value.as_str() {
        "default" => Ok(NetworkMode::Default),
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        _ => Err(Located::new(
            ErrorKind::InvalidFlagValue {
                flag: "network",
                value: w.value,
                reason: "expected default, none or host".into(),
            },
            w.span,
        )),
    }
}

fn security(w: Word) -> Result<SecurityMode, Located> {
    match w.value.as_str() {
        "sandbox" => Ok(SecurityMode::Sandbox),
        "insecure" => Ok(SecurityMode::Insecure),
        _ => Err(Located::new(
            ErrorKind::InvalidFlagValue {
                flag: "security",
                value: w.value,
                reason: "expected sandbox or insecure".into(),
            },
            w.span,
        )),
    }
}

/// ENV/LABEL pairs: at least one, keys not empty.
fn pairs(node: &Node, name: &'static str) -> Result<Vec<Pair>, Located> {
    let Args::Pairs(pairs) = &node.args else {
        return Err(at_keyword(node, ErrorKind::AtLeastOneArgument(name)));
    };
    pairs
        .iter()
        .map(|KeyValue { key, value, .. }| {
            if key.value.is_empty() {
                Err(Located::new(ErrorKind::BlankName(name), key.span))
            } else {
                Ok(Pair {
                    key: key.clone(),
                    value: value.clone(),
                })
            }
        })
        .collect()
}

/// ARG declarations: `name` or `name=default`, names not empty.
fn args(node: &Node, words: &[Word]) -> Result<Vec<ArgDecl>, Located> {
    words
        .iter()
        .map(|w| {
            let (name, default) = match w.value.split_once('=') {
                Some((name, default)) => (name, Some(default)),
                None => (w.value.as_str(), None),
            };
            if name.is_empty() {
                return Err(Located::new(ErrorKind::BlankName("ARG"), w.span));
            }
            let comment = node
                .comments
                .iter()
                .find_map(|c| c.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_owned);
            Ok(ArgDecl {
                name: Word {
                    value: name.to_owned(),
                    span: w.span,
                },
                default: default.map(|d| Word {
                    value: d.to_owned(),
                    span: w.span,
                }),
                comment,
            })
        })
        .collect()
}

/// COPY/ADD: at least two words; heredoc markers among the sources become
/// inline files; the destination may not be a heredoc.
fn sources_and_dest(node: &Node, name: &'static str) -> Result<(Vec<Source>, Word), Located> {
    let words = arg_words(node);
    let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(at_keyword(node, ErrorKind::NoDestination(name)));
    };
    if parse_marker(&dest.value).is_some() {
        return Err(Located::new(
            ErrorKind::HeredocNotAllowed {
                instruction: name,
                role: "a destination",
            },
            dest.span,
        ));
    }
    let sources = sources
        .iter()
        .map(|w| match parse_marker(&w.value) {
            Some(marker) => {
                let doc = node.heredocs.iter().find(|h| h.name == marker.name);
                Source::Heredoc(Heredoc {
                    name: marker.name,
                    fd: marker.fd,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    content: doc.map(|h| h.content.clone()).unwrap_or_default(),
                    span: doc.map_or(w.span, |h| h.span),
                })
            }
            None => Source::Path((*w).clone()),
        })
        .collect();
    Ok((sources, (*dest).clone()))
}

/// HEALTHCHECK NONE, or CMD with its options.
fn healthcheck(node: &Node, flags: &Flags) -> Result<Healthcheck, Located> {
    let Args::Healthcheck { kind, command } = &node.args else {
        return Err(at_keyword(
            node,
            ErrorKind::AtLeastOneArgument("HEALTHCHECK"),
        ));
    };
    match kind.value.to_uppercase().as_str() {
        "NONE" => match command {
            None => Ok(Healthcheck::None),
            Some(CommandForm::Exec(w)) if w.is_empty() => Ok(Healthcheck::None),
            Some(_) => Err(Located::new(ErrorKind::HealthcheckNoneArguments, kind.span)),
        },
        "CMD" => {
            let command = match command {
                Some(CommandForm::Exec(words)) if !words.is_empty() => Command::Exec(words.clone()),
                Some(CommandForm::Shell(w)) => Command::Shell(w.clone()),
                _ => {
                    return Err(Located::new(
                        ErrorKind::HealthcheckMissingCommand,
                        kind.span,
                    ));
                }
            };
            let duration = |name: &'static str| {
                flags
                    .string(name)
                    .map(|w| duration(name, &w))
                    .transpose()
                    .map(Option::flatten)
            };
            let retries = match flags.string("retries") {
                Some(w) => Some(
                    w.value
                        .parse::<i32>()
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| Located::new(ErrorKind::InvalidRetries(w.value), w.span))?,
                ),
                None => None,
            };
            Ok(Healthcheck::Check(HealthCheck {
                command,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            }))
        }
        other => Err(Located::new(
            ErrorKind::HealthcheckType(other.to_owned()),
            kind.span,
        )),
    }
}

/// A HEALTHCHECK duration: Go's duration syntax, zero meaning "default"
/// (`None`), otherwise at least a millisecond.
fn duration(flag: &'static str, w: &Word) -> Result<Option<Duration>, Located> {
    let error = |reason| {
        Located::new(
            ErrorKind::InvalidDuration {
                flag,
                value: w.value.clone(),
                reason,
            },
            w.span,
        )
    };
    let (negative, nanos) = super::duration::parse_go_duration(&w.value)
        .ok_or_else(|| error("not a duration such as 30s, 1m30s or 500ms"))?;
    if nanos == 0 {
        return Ok(None);
    }
    if negative || nanos < 1_000_000 {
        return Err(error("must be at least 1ms"));
    }
    Ok(Some(Duration::from_nanos(
        u64::try_from(nanos).map_err(|_| error("too long"))?,
    )))
}

/// ONBUILD: one instruction, which may not be ONBUILD, FROM or MAINTAINER.
fn onbuild(node: &Node) -> Result<Instruction, Located> {
    let Args::Onbuild(inner) = &node.args else {
        return Err(at_keyword(node, ErrorKind::AtLeastOneArgument("ONBUILD")));
    };
    let trigger = |kind| Located::new(kind, inner.keyword_word.span);
    match inner.keyword {
        Keyword::Onbuild => Err(trigger(ErrorKind::OnbuildChain)),
        Keyword::From => Err(trigger(ErrorKind::OnbuildTrigger("FROM"))),
        Keyword::Maintainer => Err(trigger(ErrorKind::OnbuildTrigger("MAINTAINER"))),
        _ => {
            // The heredoc bodies follow the ONBUILD line; they belong to
            // the instruction it holds.
            let mut inner = (**inner).clone();
            inner.heredocs = node.heredocs.clone();
            instruction(&inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn load(text: &str) -> Dockerfile {
        lower(&parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> (ErrorKind, usize, usize) {
        let tree = parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"));
        let e = lower(&tree).expect_err("must not lower");
        (e.kind().clone(), e.line(), e.column())
    }

    fn only(text: &str) -> InstructionKind {
        let file = load(text);
        file.stages[0].instructions[0].kind.clone()
    }

    fn values(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.value.as_str()).collect()
    }

    #[test]
    fn stages_and_meta_args() {
        let file = load("ARG V=1 W\nFROM --platform=$P img:$V AS Build\nRUN make\nFROM scratch\n");
        assert_eq!(
            file.meta_args[0].args[0].default.as_ref().unwrap().value,
            "1"
        );
        assert_eq!(file.meta_args[0].args[1].default, None);
        let from = &file.stages[0].from;
        assert_eq!(from.image.value, "img:$V");
        assert_eq!(from.name.as_ref().unwrap().value, "build");
        assert_eq!(from.platform.as_ref().unwrap().value, "$P");
        assert_eq!(file.stages.len(), 2);
        assert_eq!(file.stages[0].instructions.len(), 1);
        assert_eq!(error("RUN x\nFROM a\n"), (ErrorKind::NoStage, 1, 1));
        assert_eq!(error("ARG x\n"), (ErrorKind::NoStage, 1, 1));
        assert_eq!(error("FROM a b\n"), (ErrorKind::FromArguments, 1, 1));
        assert_eq!(
            error("FROM a AS 1x\n"),
            (ErrorKind::InvalidStageName("1x".into()), 1, 11)
        );
    }

    #[test]
    fn run_flags() {
        let InstructionKind::Run(run) = only(
            "FROM a\nRUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none --security=insecure [\"make\", \"all\"]\n",
        ) else {
            panic!("RUN expected");
        };
        assert_eq!(
            values(&run.mounts),
            ["type=cache,target=/c", "type=secret,id=s"]
        );
        assert_eq!(run.network, Some(NetworkMode::None));
        assert_eq!(run.security, Some(SecurityMode::Insecure));
        assert!(matches!(run.command, Command::Exec(ref w) if values(w) == ["make", "all"]));
        assert_eq!(
            error("FROM a\nRUN --network=bridge x\n").0,
            ErrorKind::InvalidFlagValue {
                flag: "network",
                value: "bridge".into(),
                reason: "expected default, none or host".into()
            }
        );
        assert_eq!(
            error("FROM a\nRUN --mount x\n"),
            (ErrorKind::FlagMissingValue("mount".into()), 2, 5)
        );
        assert_eq!(
            error("FROM a\nRUN --network=none --network=host x\n"),
            (ErrorKind::DuplicateFlag("network".into()), 2, 20)
        );
    }

    #[test]
    fn copy_and_add_flags_and_heredocs() {
        let InstructionKind::Copy(copy) = only(
            "FROM a\nCOPY --from=build --chown=1:1 --chmod=644 --link --parents=false --exclude=*.md --exclude=.git a <<EOF /dst/\nhello\nEOF\n",
        ) else {
            panic!("COPY expected");
        };
        assert_eq!(copy.from.unwrap().value, "build");
        assert_eq!(copy.chown.unwrap().value, "1:1");
        assert!(copy.link && !copy.parents);
        assert_eq!(values(&copy.exclude), ["*.md", ".git"]);
        assert_eq!(copy.dest.value, "/dst/");
        assert!(matches!(&copy.sources[0], Source::Path(w) if w.value == "a"));
        assert!(
            matches!(&copy.sources[1], Source::Heredoc(h) if h.name == "EOF" && h.content == "hello\n")
        );
        let InstructionKind::Add(add) = only(
            "FROM a\nADD --checksum=sha256:abc --keep-git-dir --unpack=true https://x/y.tgz /\n",
        ) else {
            panic!("ADD expected");
        };
        assert_eq!(add.checksum.unwrap().value, "sha256:abc");
        assert!(add.keep_git_dir);
        assert_eq!(add.unpack, Some(true));
        assert_eq!(
            error("FROM a\nCOPY --user=me a b\n"),
            (
                ErrorKind::UnknownFlag {
                    instruction: "COPY",
                    flag: "user".into()
                },
                2,
                6
            )
        );
        assert_eq!(
            error("FROM a\nADD --link=maybe a b\n").0,
            ErrorKind::FlagNotBool {
                flag: "link".into(),
                value: "maybe".into()
            }
        );
        assert_eq!(
            error("FROM a\nCOPY a\n"),
            (ErrorKind::NoDestination("COPY"), 2, 1)
        );
        assert_eq!(
            error("FROM a\nCOPY a <<EOF\nx\nEOF\n").0,
            ErrorKind::HeredocNotAllowed {
                instruction: "COPY",
                role: "a destination"
            }
        );
    }

    #[test]
    fn env_label_arg_and_single_word_instructions() {
        let InstructionKind::Env(env) = only("FROM a\nENV A=1 B=\"two words\"\n") else {
            panic!("ENV expected");
        };
        assert_eq!(env[1].key.value, "B");
        assert_eq!(env[1].value.value, "\"two words\"");
        assert_eq!(
            error("FROM a\nENV =x\n"),
            (ErrorKind::BlankName("ENV"), 2, 5)
        );
        assert_eq!(
            error("FROM a\nLABEL\n"),
            (ErrorKind::AtLeastOneArgument("LABEL"), 2, 1)
        );
        assert_eq!(
            error("FROM a\nARG =x\n"),
            (ErrorKind::BlankName("ARG"), 2, 5)
        );
        assert_eq!(
            error("FROM a\nUSER\n"),
            (ErrorKind::ExactlyOneArgument("USER"), 2, 1)
        );
        assert!(
            matches!(only("FROM a\nWORKDIR /a b\n"), InstructionKind::Workdir(w) if w.value == "/a b")
        );
        assert_eq!(error("FROM a\nVOLUME [\"\"]\n").0, ErrorKind::EmptyVolume);
        let file = load("FROM a\n# NAME the user name\nARG NAME=me\n");
        let InstructionKind::Arg(args) = &file.stages[0].instructions[0].kind else {
            panic!("ARG expected");
        };
        assert_eq!(args[0].comment.as_deref(), Some("the user name"));
    }

    #[test]
    fn shell_cmd_entrypoint() {
        assert!(
            matches!(only("FROM a\nSHELL [\"pwsh\", \"-c\"]\n"), InstructionKind::Shell(w) if w.len() == 2)
        );
        assert_eq!(
            error("FROM a\nSHELL pwsh -c\n"),
            (ErrorKind::ShellNotJson, 2, 7)
        );
        assert_eq!(
            error("FROM a\nSHELL []\n").0,
            ErrorKind::AtLeastOneArgument("SHELL")
        );
        assert!(
            matches!(only("FROM a\nCMD []\n"), InstructionKind::Cmd(Some(Command::Exec(w))) if w.is_empty())
        );
        assert!(
            matches!(only("FROM a\nENTRYPOINT run it\n"), InstructionKind::Entrypoint(Some(Command::Shell(w))) if w.value == "run it")
        );
        assert_eq!(
            error("FROM a\nRUN\n").0,
            ErrorKind::AtLeastOneArgument("RUN")
        );
    }

    #[test]
    fn healthcheck() {
        let InstructionKind::Healthcheck(Healthcheck::Check(check)) = only(
            "FROM a\nHEALTHCHECK --interval=1m30s --timeout=0 --start-interval=500ms --retries=3 CMD curl -f x\n",
        ) else {
            panic!("HEALTHCHECK CMD expected");
        };
        assert_eq!(check.interval, Some(Duration::from_secs(90)));
        assert_eq!(check.timeout, None);
        assert_eq!(check.start_interval, Some(Duration::from_millis(500)));
        assert_eq!(check.retries, Some(3));
        assert!(matches!(check.command, Command::Shell(ref w) if w.value == "curl -f x"));
        assert_eq!(
            only("FROM a\nHEALTHCHECK none\n"),
            InstructionKind::Healthcheck(Healthcheck::None)
        );
        assert_eq!(
            error("FROM a\nHEALTHCHECK NONE x\n").0,
            ErrorKind::HealthcheckNoneArguments
        );
        assert_eq!(
            error("FROM a\nHEALTHCHECK CMD\n").0,
            ErrorKind::HealthcheckMissingCommand
        );
        assert_eq!(
            error("FROM a\nHEALTHCHECK RUN x\n").0,
            ErrorKind::HealthcheckType("RUN".into())
        );
        assert!(matches!(
            error("FROM a\nHEALTHCHECK --interval=10us CMD x\n").0,
            ErrorKind::InvalidDuration {
                flag: "interval",
                ..
            }
        ));
        assert_eq!(
            error("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").0,
            ErrorKind::InvalidRetries("-1".into())
        );
    }

    #[test]
    fn onbuild_triggers() {
        let file = load("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
        let InstructionKind::Onbuild(inner) = &file.stages[0].instructions[0].kind else {
            panic!("ONBUILD expected");
        };
        let InstructionKind::Run(run) = &inner.kind else {
            panic!("RUN trigger expected");
        };
        assert_eq!(run.heredocs[0].content, "echo hi\n");
        assert_eq!(
            error("FROM a\nONBUILD ONBUILD RUN x\n"),
            (ErrorKind::OnbuildChain, 2, 9)
        );
        assert_eq!(
            error("FROM a\nONBUILD from b\n").0,
            ErrorKind::OnbuildTrigger("FROM")
        );
        assert_eq!(
            error("FROM a\nONBUILD MAINTAINER me\n").0,
            ErrorKind::OnbuildTrigger("MAINTAINER")
        );
        assert_eq!(
            error("FROM a\nONBUILD\n").0,
            ErrorKind::AtLeastOneArgument("ONBUILD")
        );
    }

    #[test]
    fn check_directive_is_parsed() {
        let file = load("# check=skip=all;error=true\nFROM a\n");
        assert_eq!(
            file.check,
            Some(CheckDirective {
                skip: vec!["all".into()],
                error: true
            })
        );
        assert!(matches!(
            error("# check=nope\nFROM a\n").0,
            ErrorKind::InvalidCheck(_)
        ));
    }
}
