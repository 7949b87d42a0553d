//! Command-line interface: clap definitions, one file per subcommand, and the
//! single place where errors become a report and an exit code.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod sandbox;

/// builder: build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "builder", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: runs one RUN step in a sandbox (re-executed by builder itself).
    #[command(name = "__sandbox", hide = true)]
    Sandbox(sandbox::SandboxArgs),
}

/// Parses the process arguments, runs the subcommand and reports its outcome.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            // A bare `builder` shows what it can do, as `docker` does.
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
        Some(command) => match command {
            Command::Sandbox(args) => sandbox::run(args),
        },
    }
}
