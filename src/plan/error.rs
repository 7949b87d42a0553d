//! Errors of the planner. Like the parser's errors, each one names the file,
//! line and column and carries the source, so a report shows the offending
//! line with a marker under it.

use crate::dockerfile::ast::Span;
use crate::dockerfile::excerpt::Excerpt;
use crate::dockerfile::expand::ExpandError;
use crate::image::platform::PlatformError;
use crate::image::reference::ReferenceError;
use miette::SourceSpan;
use std::sync::Arc;

/// What went wrong, without where. Messages follow BuildKit's wording so
/// users find them in its documentation and issues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// A word could not be expanded (bad syntax, or `${X:?message}` with X
    /// unset).
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// A FROM whose image expanded to nothing.
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    /// A FROM (or COPY --from, or RUN --mount from=) image that is not a
    /// valid reference.
    #[error("failed to parse stage name {name:?}: {source}")]
    InvalidBaseName {
        /// The name after expansion.
        name: String,
        /// Why the reference grammar refuses it.
        source: ReferenceError,
    },
    /// `FROM --platform=` that expanded to nothing.
    #[error("empty platform value from expression {0}")]
    EmptyPlatform(String),
    /// `FROM --platform=` that is not a platform.
    #[error("failed to parse platform {expression}: {source}")]
    InvalidPlatform {
        /// The flag as written.
        expression: String,
        /// Why it is refused.
        source: PlatformError,
    },
    /// `COPY --from=$X`: BuildKit resolves sources before any stage runs.
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    CopyFromExpansion,
    /// `RUN --mount=from=$X`.
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    MountFromExpansion,
    /// A `--mount` value that is not one CSV record.
    #[error("failed to parse csv mounts: {0}")]
    MountCsv(String),
    /// A `--mount` whose options BuildKit refuses.
    #[error(transparent)]
    Mount(#[from] super::run_mount::MountError),
    /// `COPY --from=<n>` with no stage n.
    #[error("invalid stage index {0}")]
    InvalidStageIndex(i64),
    /// `COPY --from=<stage>` naming this stage or a later one.
    #[error(
        "cannot copy from stage {from:?}, it needs to be defined before current stage {stage:?}"
    )]
    CopyFromLaterStage {
        /// The `--from` value.
        from: String,
        /// The stage doing the copy.
        stage: String,
    },
    /// `RUN --mount=from=<stage>` naming this stage or a later one.
    #[error(
        "cannot mount from stage {from:?} to {stage:?}, stage needs to be defined before current command"
    )]
    MountFromLaterStage {
        /// The `from=` value.
        from: String,
        /// The stage running the command.
        stage: String,
    },
    /// VOLUME with a path that expanded to nothing.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A stage that depends on itself.
    #[error("circular dependency detected on stage: {0}")]
    CircularDependency(String),
    /// `--target` naming no stage.
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    /// ENV or ARG made the stage's variables bigger than
    /// [`MAX_VARIABLES_BYTES`](super::args::MAX_VARIABLES_BYTES).
    #[error(
        "the variables would take {bytes} bytes, more than the {} MiB builder allows",
        super::args::MAX_VARIABLES_BYTES >> 20
    )]
    TooManyVariableBytes {
        /// Their size with this instruction.
        bytes: usize,
    },
    /// The stage's RUN steps together hold more variables than
    /// [`MAX_STAGE_RUN_VARIABLES_BYTES`](super::args::MAX_STAGE_RUN_VARIABLES_BYTES).
    #[error(
        "the RUN steps up to here hold more than {} MiB of variables in all (each keeps the {} bytes it runs with); use fewer or smaller variables, or split the stage",
        super::args::MAX_STAGE_RUN_VARIABLES_BYTES >> 20,
        step_bytes
    )]
    TooManyRunVariableBytes {
        /// What this step holds.
        step_bytes: usize,
    },
    /// An ONBUILD trigger of the base image that is not one instruction
    /// allowed as a trigger.
    #[error("the base image's ONBUILD trigger {trigger:?} is invalid: {reason}")]
    InvalidImageTrigger {
        /// The trigger as the image's config has it.
        trigger: String,
        /// Why it is refused.
        reason: String,
    },
}

/// A planning error: what went wrong and exactly where.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error(transparent)]
#[diagnostic(transparent)]
pub struct Error(Box<Located>);

/// The parts of an [`Error`] (boxed: errors travel through every `Result`
/// of the planner).
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("{}{}: {kind}", source_code.name(), at(*location))]
#[diagnostic(code(builder::plan))]
struct Located {
    kind: ErrorKind,
    /// Line and column, when the problem is in the file (a `--target` that
    /// names no stage is not).
    location: Option<(usize, usize)>,
    #[source_code]
    source_code: Excerpt,
    #[label("here")]
    label: Option<SourceSpan>,
    #[help]
    help: Option<String>,
}

impl Error {
    /// An error of `kind` at `span` of `source`.
    pub(crate) fn new(kind: ErrorKind, span: Span, source: &SourceFile) -> Error {
        let (source_code, label) = Excerpt::new(
            &source.file,
            &source.text,
            span.start.offset,
            span.end.offset,
        );
        Error(Box::new(Located {
            kind,
            location: Some((span.start.line, span.start.column)),
            source_code,
            label: Some(label),
            help: None,
        }))
    }

    /// An error of `kind` about the file as a whole.
    pub(crate) fn unlocated(kind: ErrorKind, source: &SourceFile) -> Error {
        Error(Box::new(Located {
            kind,
            location: None,
            source_code: Excerpt::empty(&source.file),
            label: None,
            help: None,
        }))
    }

    /// Adds a hint shown under the report.
    pub(crate) fn with_help(mut self, help: String) -> Error {
        self.0.help = Some(help);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The file name as given.
    pub fn file(&self) -> &str {
        self.0.source_code.name()
    }

    /// 1-based line and column of the problem, when it is in the file.
    pub fn location(&self) -> Option<(usize, usize)> {
        self.0.location
    }

    /// The hint, if any (such as the stage name a misspelt target is near).
    pub fn hint(&self) -> Option<&str> {
        self.0.help.as_deref()
    }
}

/// `:line:column` for a message, or nothing.
fn at(location: Option<(usize, usize)>) -> String {
    location.map_or_else(String::new, |(l, c)| format!(":{l}:{c}"))
}

/// The Dockerfile a plan was made from: its name and text, for error reports.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The file name as given by the user.
    pub file: String,
    /// The whole text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// An error of `kind` at `span` of this file.
    pub(crate) fn error(&self, kind: impl Into<ErrorKind>, span: Span) -> Error {
        Error::new(kind.into(), span, self)
    }
}
