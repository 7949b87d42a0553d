//! The instruction graph: a lowered Dockerfile becomes stages with their
//! bases, the edges between them, the stages a target needs and which can
//! run side by side ([`Graph`]); then each stage's steps with words and
//! flags expanded the way BuildKit expands them ([`Graph::plan_stage`]).
//!
//! Planning is in two phases so the executor never replans: the structure
//! needs only the global args; a stage's steps need its base's environment,
//! which for a registry image is known only once its config is pulled.

mod args;
mod error;
mod graph;
mod mount;
mod numbering;
mod platform;
mod run_mount;
mod stage;
mod step;

pub use args::{ArgValue, BuildArgs, DEFAULT_PATH, EnvList, StageEnv};
pub use error::{Error, ErrorKind, SourceFile};
pub use graph::{
    Base, Dependency, Graph, NamedContext, Options, SkipReason, Source, StageNode, Via,
};
pub use mount::{MountField, MountSpec};
pub use numbering::StepCounter;
pub use platform::Platforms;
pub use run_mount::{Mount, MountError, SecretMount, Sharing, ram_in_bytes};
pub use stage::{StagePlan, StageStart};
pub use step::{
    AddStep, CommandLine, CopyFrom, CopySource, CopyStep, RunMount, RunStep, Step, StepKind,
};

use std::sync::Arc;

/// Why a Dockerfile could not be planned: it does not parse, or its
/// graph is wrong.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// The file does not parse or lower.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Dockerfile(#[from] crate::dockerfile::Error),
    /// The graph cannot be built.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] Error),
}

/// Parses the Dockerfile `bytes` (named `file` in reports) and builds its
/// graph.
pub fn load(file: &str, bytes: &[u8], options: Options) -> Result<Graph, LoadError> {
    let tree = crate::dockerfile::parse_bytes(file, bytes)?;
    let dockerfile = crate::dockerfile::lower(&tree)?;
    let source = SourceFile {
        file: tree.file.clone(),
        text: Arc::clone(&tree.source),
    };
    Ok(Graph::new(source, dockerfile, options)?)
}
