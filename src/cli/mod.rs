//! Command-line interface: clap definitions, one file per subcommand, and the
//! single place where errors become a report and an exit code.

mod debug;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// builder: build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "builder", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look inside builder's stages (parse trees and the like).
    Debug(debug::DebugArgs),
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
        Some(Command::Debug(args)) => debug::run(args),
    }
}

/// Prints an error as a miette report (source line with a marker) on stderr
/// and gives the failure exit code.
fn report(error: impl miette::Diagnostic + Send + Sync + 'static) -> ExitCode {
    eprintln!("{:?}", miette::Report::new(error));
    ExitCode::FAILURE
}
