//! `builder logout [HOST]`: forget the stored credentials for a registry.

use super::Globals;
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
        println!("Removed login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}
