//! The steps of a planned stage: each instruction with its words and flags
//! expanded where the Dockerfile reference says they expand, and what the
//! executor needs besides (the env a RUN sees, where COPY --from reads).

use super::args::{ArgValue, EnvList};
use super::graph::Source;
use super::mount::MountSpec;
use crate::dockerfile::ast::{Heredoc, Span};
use crate::dockerfile::instructions::{Healthcheck, NetworkMode, SecurityMode};
use std::fmt;

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does, expanded.
    pub kind: StepKind,
    /// The instruction's location (for an ONBUILD trigger, in the base
    /// stage).
    pub span: Span,
    /// The instruction as written (continuations joined).
    pub original: String,
    /// True for a trigger inherited from the base stage's ONBUILD.
    pub onbuild: bool,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// `RUN`
    Run(RunStep),
    /// `COPY`
    Copy(CopyStep),
    /// `ADD`
    Add(AddStep),
    /// `ENV`, expanded pairs.
    Env(Vec<(String, String)>),
    /// `ARG`, with the values the declarations resolved to.
    Arg(Vec<ArgValue>),
    /// `LABEL`, expanded pairs.
    Label(Vec<(String, String)>),
    /// `EXPOSE`, expanded ports.
    Expose(Vec<String>),
    /// `VOLUME`, expanded paths.
    Volume(Vec<String>),
    /// `USER`, expanded.
    User(String),
    /// `WORKDIR`, expanded (relative paths are resolved by the executor
    /// against the current working directory).
    Workdir(String),
    /// `STOPSIGNAL`, expanded.
    StopSignal(String),
    /// `MAINTAINER` (not expanded).
    Maintainer(String),
    /// `CMD` (left to the shell).
    Cmd(Option<CommandLine>),
    /// `ENTRYPOINT` (left to the shell).
    Entrypoint(Option<CommandLine>),
    /// `HEALTHCHECK` (left to the shell).
    Healthcheck(Healthcheck),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `ONBUILD`: the trigger text stored in the image config.
    Onbuild(String),
}

/// A command as written: exec form runs the words, shell form runs the
/// string with the stage's SHELL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// `["executable", "arg"…]`
    Exec(Vec<String>),
    /// `command string`
    Shell(String),
}

/// A RUN step: the command is left to the shell; the step records the
/// variables it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// What to run.
    pub command: CommandLine,
    /// Here-documents of the command, passed to the shell as written.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values, field values expanded.
    pub mounts: Vec<RunMount>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
    /// The variables the command runs with: the image config's env, ENV
    /// and the ARGs in scope.
    pub env: EnvList,
    /// The ARGs in scope, for the history line (`RUN |1 X=y …`).
    pub args: Vec<ArgValue>,
    /// Proxy variables from `--build-arg`: set for the command, never
    /// written to the image config or history.
    pub proxy_env: EnvList,
}

/// One `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// The fields, values expanded.
    pub spec: MountSpec,
    /// What the fields ask for.
    pub mount: super::run_mount::Mount,
    /// The stage or image `from=` names.
    pub source: Option<Source>,
}

/// Where a COPY reads from: `--from` as written and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFrom {
    /// The flag's value as written.
    pub written: String,
    /// The stage or image.
    pub source: Source,
}

/// A source of COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path in the context (or stage, or a URL for ADD), expanded.
    Path(String),
    /// A file from a heredoc: its name and its content (expanded unless
    /// the delimiter was quoted, tabs stripped for `<<-`).
    Inline {
        /// The file name (the heredoc's delimiter).
        name: String,
        /// The content.
        content: String,
    },
}

/// A COPY step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// The sources (at least one).
    pub sources: Vec<CopySource>,
    /// The destination.
    pub dest: String,
    /// `--from` (the build context when `None`).
    pub from: Option<CopyFrom>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// An ADD step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddStep {
    /// The sources (at least one).
    pub sources: Vec<CopySource>,
    /// The destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--checksum`.
    pub checksum: Option<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--unpack` (`None`: local archives only).
    pub unpack: Option<bool>,
}

impl fmt::Display for Step {
    /// The instruction as it reads after expansion, such as
    /// `COPY --chown=1000:1000 app.sh /srv/app/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.onbuild {
            f.write_str("ONBUILD ")?;
        }
        match &self.kind {
            StepKind::Run(run) => {
                f.write_str("RUN")?;
                for mount in &run.mounts {
                    write!(f, " --mount={}", mount.spec)?;
                }
                if let Some(network) = run.network {
                    let name = match network {
                        NetworkMode::Default => "default",
                        NetworkMode::None => "none",
                        NetworkMode::Host => "host",
                    };
                    write!(f, " --network={name}")?;
                }
                if let Some(security) = run.security {
                    let name = match security {
                        SecurityMode::Sandbox => "sandbox",
                        SecurityMode::Insecure => "insecure",
                    };
                    write!(f, " --security={name}")?;
                }
                write!(f, " {}", run.command)
            }
            StepKind::Copy(copy) => {
                f.write_str("COPY")?;
                if let Some(from) = &copy.from {
                    write!(f, " --from={}", from.written)?;
                }
                flag(f, "chown", copy.chown.as_deref())?;
                flag(f, "chmod", copy.chmod.as_deref())?;
                switch(f, "link", copy.link)?;
                switch(f, "parents", copy.parents)?;
                for pattern in &copy.exclude {
                    flag(f, "exclude", Some(pattern))?;
                }
                paths(f, &copy.sources, &copy.dest)
            }
            StepKind::Add(add) => {
                f.write_str("ADD")?;
                flag(f, "chown", add.chown.as_deref())?;
                flag(f, "chmod", add.chmod.as_deref())?;
                switch(f, "link", add.link)?;
                flag(f, "checksum", add.checksum.as_deref())?;
                switch(f, "keep-git-dir", add.keep_git_dir)?;
                for pattern in &add.exclude {
                    flag(f, "exclude", Some(pattern))?;
                }
                if let Some(unpack) = add.unpack {
                    write!(f, " --unpack={unpack}")?;
                }
                paths(f, &add.sources, &add.dest)
            }
            StepKind::Env(pairs) => key_values(f, "ENV", pairs),
            StepKind::Label(pairs) => key_values(f, "LABEL", pairs),
            StepKind::Arg(args) => {
                f.write_str("ARG")?;
                for arg in args {
                    match &arg.value {
                        Some(v) => write!(f, " {}={}", arg.name, quoted(v))?,
                        None => write!(f, " {}", arg.name)?,
                    }
                }
                Ok(())
            }
            StepKind::Expose(ports) => write!(f, "EXPOSE {}", ports.join(" ")),
            StepKind::Volume(paths) => write!(f, "VOLUME {}", json(paths)),
            StepKind::User(user) => write!(f, "USER {user}"),
            StepKind::Workdir(dir) => write!(f, "WORKDIR {dir}"),
            StepKind::StopSignal(signal) => write!(f, "STOPSIGNAL {signal}"),
            StepKind::Maintainer(name) => write!(f, "MAINTAINER {name}"),
            StepKind::Cmd(command) => optional_command(f, "CMD", command.as_ref()),
            StepKind::Entrypoint(command) => optional_command(f, "ENTRYPOINT", command.as_ref()),
            StepKind::Healthcheck(_) | StepKind::Onbuild(_) => f.write_str(&self.original),
            StepKind::Shell(words) => write!(f, "SHELL {}", json(words)),
        }
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Exec(words) => f.write_str(&json(words)),
            CommandLine::Shell(text) => f.write_str(text),
        }
    }
}

fn flag(f: &mut fmt::Formatter<'_>, name: &str, value: Option<&str>) -> fmt::Result {
    match value {
        Some(v) => write!(f, " --{name}={v}"),
        None => Ok(()),
    }
}

fn switch(f: &mut fmt::Formatter<'_>, name: &str, on: bool) -> fmt::Result {
    if on { write!(f, " --{name}") } else { Ok(()) }
}

fn paths(f: &mut fmt::Formatter<'_>, sources: &[CopySource], dest: &str) -> fmt::Result {
    for source in sources {
        match source {
            CopySource::Path(p) => write!(f, " {p}")?,
            CopySource::Inline { name, .. } => write!(f, " <<{name}")?,
        }
    }
    write!(f, " {dest}")
}

fn key_values(
    f: &mut fmt::Formatter<'_>,
    keyword: &str,
    pairs: &[(String, String)],
) -> fmt::Result {
    f.write_str(keyword)?;
    for (k, v) in pairs {
        write!(f, " {k}={}", quoted(v))?;
    }
    Ok(())
}

fn optional_command(
    f: &mut fmt::Formatter<'_>,
    keyword: &str,
    command: Option<&CommandLine>,
) -> fmt::Result {
    match command {
        Some(c) => write!(f, "{keyword} {c}"),
        None => f.write_str(keyword),
    }
}

/// A value as a Dockerfile would need it written: bare when it has no
/// space, quote or backslash, double-quoted otherwise.
fn quoted(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || "\"'\\$".contains(c)) {
        return value.to_owned();
    }
    serde_json::Value::from(value).to_string()
}

/// A JSON array of strings, spaced as the Dockerfile reference writes them.
fn json(words: &[String]) -> String {
    let items: Vec<String> = words
        .iter()
        .map(|w| serde_json::Value::from(w.as_str()).to_string())
        .collect();
    format!("[{}]", items.join(", "))
}
