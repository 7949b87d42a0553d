//! What `check` and `build` share: finding and reading the Dockerfile and
//! turning it into a plan graph.

use crate::plan::{self, Graph, Options};
use miette::Result;
use std::path::PathBuf;

/// The Dockerfile and the build context it belongs to.
#[derive(Debug, clap::Args)]
pub struct DockerfileArgs {
    /// The Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The build context directory
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

/// A Dockerfile's text and the name reports give it (its path, or
/// `<stdin>`).
#[derive(Debug, Clone)]
pub struct DockerfileText {
    /// How errors name the file.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Builds the graph of a Dockerfile already read.
pub fn plan_graph(text: &DockerfileText, options: Options) -> Result<Graph> {
    plan::load(&text.name, &text.bytes, options).map_err(miette::Report::new)
}
