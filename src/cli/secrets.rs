//! `builder build --secret …` and `--ssh …`: the flag values read and
//! resolved against builder's environment (see [`crate::solver::secrets`]).

use crate::solver::BuildSecrets;
use crate::solver::secrets::{SecretFlag, SshFlag};
use miette::{IntoDiagnostic as _, Result};

/// The secrets and agents of `--secret` and `--ssh`, checked now: a
/// secret's file must exist, an agent must be a socket.
pub fn build_secrets(secrets: &[String], ssh: &[String]) -> Result<BuildSecrets> {
    let secrets = secrets
        .iter()
        .map(|flag| SecretFlag::parse(flag))
        .collect::<Result<Vec<_>, _>>()
        .into_diagnostic()?;
    let ssh = ssh
        .iter()
        .map(|flag| SshFlag::parse(flag))
        .collect::<Result<Vec<_>, _>>()
        .into_diagnostic()?;
    BuildSecrets::from_flags(&secrets, &ssh, |name| std::env::var_os(name)).into_diagnostic()
}
