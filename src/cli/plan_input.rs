//! What `check` and `build` share: finding and reading the Dockerfile and
//! turning it into a plan graph.

use crate::plan::{self, BuildArgs, Graph, Options, Platforms};
use miette::{Result, miette};
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

impl DockerfileArgs {
    /// The Dockerfile's path: `-f`, or `Dockerfile` in the context.
    pub fn path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| self.context.join("Dockerfile"))
    }
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

/// Reads the Dockerfile and builds its graph.
pub fn load_graph(
    args: &DockerfileArgs,
    build_args: BuildArgs,
    target: Option<String>,
    platforms: Platforms,
) -> Result<Graph> {
    refuse_remote(&args.context)?;
    let path = args.path();
    let name = path.display().to_string();
    let bytes =
        std::fs::read(&path).map_err(|e| miette!("cannot read the Dockerfile {name}: {e}"))?;
    let options = Options {
        build_args,
        target,
        platforms,
        named_contexts: Default::default(),
    };
    plan_graph(&DockerfileText { name, bytes }, options)
}

/// Builds the graph of a Dockerfile already read.
pub fn plan_graph(text: &DockerfileText, options: Options) -> Result<Graph> {
    plan::load(&text.name, &text.bytes, options).map_err(miette::Report::new)
}

/// Refuses a context that names a remote source (a Git or HTTP URL) or
/// stdin, which docker accepts but builder cannot read yet, instead of
/// failing later on a file that does not exist.
fn refuse_remote(context: &std::path::Path) -> Result<()> {
    let text = context.to_string_lossy();
    let remote = text.contains("://") || text.starts_with("git@");
    let (what, help) = if remote {
        (
            "a remote context",
            "clone or download it and pass its directory",
        )
    } else if text == "-" {
        (
            "a context on stdin",
            "put the Dockerfile in a directory and pass that",
        )
    } else {
        return Ok(());
    };
    Err(miette!(
        help = help,
        "CONTEXT {text:?} is {what}: only local directories are supported for now"
    ))
}
