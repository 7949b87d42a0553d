//! `builder build --secret …` and `--ssh …`: the flag values read and
//! resolved against builder's environment (see [`crate::solver::secrets`]).

use crate::solver::BuildSecrets;
use crate::solver::secrets::{SecretFlag, SshFlag};

/// The secrets and agents of `--secret` and `--ssh`, checked now: a
/// secret's file must exist, an agent must be a socket.
/// A flag whose file or socket is missing is a usage error (exit code 2).
pub fn build_secrets(secrets: &[SecretFlag], ssh: &[SshFlag]) -> BuildSecrets {
    BuildSecrets::from_flags(secrets, ssh, |name| std::env::var_os(name))
        .unwrap_or_else(|e| super::build::usage_error(&e.to_string()))
}
