//! `builder __sandbox`: the internal helper the executor re-executes to run
//! a RUN step in its own namespaces. Hidden from help; not for users.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `__sandbox` (none: the request arrives on stdin).
#[derive(Debug, Args)]
pub struct SandboxArgs {}

/// Runs the helper.
pub fn run(_args: SandboxArgs) -> ExitCode {
    crate::sandbox::helper::main()
}
