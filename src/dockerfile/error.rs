//! Errors of the Dockerfile front end. Every error carries the file name, the
//! line and column, and the source so a report can show the offending line
//! with a marker under it.

use super::ast::Span;
use super::excerpt::Excerpt;
use miette::SourceSpan;

/// What went wrong, without where. The messages follow BuildKit's wording so
/// users find them in its documentation and issues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file is not UTF-8 text.
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
    /// A file larger than [`MAX_FILE_BYTES`](super::parser::MAX_FILE_BYTES).
    #[error(
        "the file is larger than {} MiB, the most builder reads",
        super::parser::MAX_FILE_BYTES >> 20
    )]
    FileTooLarge,
    /// A physical line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// Nothing but comments, directives and blank lines.
    #[error("file with no instructions")]
    NoInstructions,
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// The same directive twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// A word at the start of an instruction that is no instruction.
    #[error("unknown instruction: {word}{}", suggestion.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        /// The word as written.
        word: String,
        /// The keyword it is closest to, if any is close.
        suggestion: Option<&'static str>,
    },
    /// ONBUILD inside ONBUILD inside ONBUILD… beyond any sense.
    #[error("ONBUILD instructions nested too deeply")]
    NestingTooDeep,
    /// A JSON array with something other than strings in it.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// Legacy `ENV KEY` / `LABEL KEY` without a value.
    #[error("{0} must have two arguments")]
    MissingValue(&'static str),
    /// `key=value` syntax where one word has no `=`.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// A `--flag` the instruction does not take.
    #[error("unknown flag: --{flag} for {instruction}")]
    UnknownFlag {
        /// The instruction.
        instruction: &'static str,
        /// The flag's name.
        flag: String,
    },
    /// A flag given twice that may appear only once.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// A value flag written without `=value`.
    #[error("missing a value on flag: --{0}")]
    FlagMissingValue(String),
    /// A boolean flag with a value other than true/false.
    #[error("expecting boolean value for flag --{flag}, not: {value}")]
    FlagNotBool {
        /// The flag's name.
        flag: String,
        /// What was given.
        value: String,
    },
    /// A flag value outside the flag's allowed set.
    #[error("invalid value {value:?} for --{flag}: {reason}")]
    InvalidFlagValue {
        /// The flag's name.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// Too few arguments.
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    /// Not exactly one argument.
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    /// ADD/COPY with a single argument.
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    /// An empty ENV/LABEL/ARG name.
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    /// FROM with a wrong number of words.
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    /// FROM … AS with a bad stage name.
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    /// ONBUILD ONBUILD.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// ONBUILD FROM / ONBUILD MAINTAINER.
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(&'static str),
    /// HEALTHCHECK NONE with more words.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    /// HEALTHCHECK CMD with nothing after it.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// HEALTHCHECK with a first word other than CMD or NONE.
    #[error("Unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    /// A duration flag that does not parse or is too short.
    #[error("invalid duration {value:?} for --{flag}: {reason}")]
    InvalidDuration {
        /// The flag's name.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// `--retries` not a non-negative 32-bit integer.
    #[error("invalid --retries value {0:?}: must be a whole number, not negative")]
    InvalidRetries(String),
    /// SHELL in shell form.
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    /// VOLUME with an empty path.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A heredoc used where a path must be.
    #[error("{instruction} cannot accept a heredoc as {role}")]
    HeredocNotAllowed {
        /// The instruction.
        instruction: &'static str,
        /// "a destination".
        role: &'static str,
    },
    /// An instruction other than ARG before the first FROM, or no FROM.
    #[error("no build stage in current context")]
    NoStage,
    /// A malformed `# check=` directive.
    #[error("invalid check directive: {0}")]
    InvalidCheck(String),
}

/// A front-end error: what went wrong and exactly where.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("{}:{line}:{column}: {kind}", source_code.name())]
#[diagnostic(code(builder::dockerfile))]
pub struct Error {
    kind: Box<ErrorKind>,
    line: usize,
    column: usize,
    #[source_code]
    source_code: Excerpt,
    #[label("here")]
    label: SourceSpan,
}

impl Error {
    /// An error of `kind` at `span` of the file `file` with text `source`.
    pub(crate) fn new(kind: ErrorKind, span: Span, file: &str, source: &str) -> Error {
        let (source_code, label) = Excerpt::new(file, source, span.start.offset, span.end.offset);
        Error {
            kind: Box::new(kind),
            line: span.start.line,
            column: span.start.column,
            source_code,
            label,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file name as given to the parser.
    pub fn file(&self) -> &str {
        self.source_code.name()
    }

    /// 1-based line of the problem.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the problem.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// An error found while parsing, before the file name and source are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub kind: ErrorKind,
    pub span: Span,
}

impl Located {
    pub(crate) fn new(kind: ErrorKind, span: Span) -> Located {
        Located { kind, span }
    }
}
