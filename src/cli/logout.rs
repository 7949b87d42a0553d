//! `builder logout [HOST]`: forget the stored credentials for a registry.

use super::Globals;
use super::common::print_line;
use super::login::registry_name;
use crate::registry::DockerConfig;
use clap::Args;
use miette::Result;

/// Remove stored credentials for a registry.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    host: Option<String>,
}

/// Runs the subcommand.
pub fn run(_globals: &Globals, args: LogoutArgs) -> Result<()> {
    let registry = registry_name(args.host.as_deref());
    let mut config = DockerConfig::load_default()?;
    if config.erase(&registry)? {
        config.save()?;
        print_line(format_args!("Removed login credentials for {registry}"))?;
    } else {
        print_line(format_args!("Not logged in to {registry}"))?;
    }
    Ok(())
}
