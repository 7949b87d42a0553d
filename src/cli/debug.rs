//! `builder debug …`: tools for looking inside builder's stages.

use crate::dockerfile::{self, dump};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Look inside builder's stages.
#[derive(Debug, Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    command: DebugCommand,
}

#[derive(Debug, Subcommand)]
enum DebugCommand {
    /// Print a Dockerfile's syntax tree in BuildKit's dump format.
    Parse {
        /// The Dockerfile to parse.
        file: PathBuf,
        /// Also check the instructions (flags, argument counts) as a build would.
        #[arg(long)]
        check: bool,
    },
}

/// Runs `builder debug`.
pub fn run(args: DebugArgs) -> ExitCode {
    match args.command {
        DebugCommand::Parse { file, check } => parse(&file, check),
    }
}

fn parse(file: &PathBuf, check: bool) -> ExitCode {
    let name = file.display().to_string();
    let bytes = match std::fs::File::open(file).and_then(dockerfile::read_bounded) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tree = match dockerfile::parse_bytes(&name, &bytes) {
        Ok(tree) => tree,
        Err(e) => return super::report(e),
    };
    if check {
        if let Err(e) = dockerfile::lower(&tree) {
            return super::report(e);
        }
    }
    for warning in &tree.warnings {
        eprintln!("warning: {name}:{}: {}", warning.span, warning.message);
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(dump::dump(&tree).as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the dump: {e}");
            ExitCode::FAILURE
        }
    }
}
