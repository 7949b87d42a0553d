//! `builder __sandbox` and `builder __userns`: the internal helpers builder
//! re-executes to run a RUN step in its own namespaces and to unpack a layer
//! in a rootless user namespace. Hidden from help; not for users.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `__sandbox` (none: the request arrives on stdin).
#[derive(Debug, Args)]
pub struct SandboxArgs {}

/// Runs the helper.
pub fn run(_args: SandboxArgs) -> ExitCode {
    crate::sandbox::helper::main()
}

/// Arguments of `__userns` (none: the request arrives on stdin).
#[derive(Debug, Args)]
pub struct UsernsArgs {}

/// Runs the unpack helper.
pub fn run_userns(_args: UsernsArgs) -> ExitCode {
    crate::userns::helper_main()
}
