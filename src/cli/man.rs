//! `builder man DIR`: one man page per command (`builder.1`,
//! `builder-build.1`, …), generated from the clap definitions so they never
//! fall behind the flags.

use clap::CommandFactory as _;
use miette::{Result, miette};
use std::path::{Path, PathBuf};

/// Write a man page per command into DIR
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory (created if missing), e.g. /usr/local/share/man/man1
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Writes `builder.1` and `builder-COMMAND.1` for every visible command.
pub fn run(args: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| miette!("cannot create {}: {e}", args.dir.display()))?;
    let mut command = super::Cli::command();
    command.build();
    write_page(&args.dir, "builder", command.clone())?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("builder-{}", sub.get_name());
        write_page(&args.dir, &name, sub.clone())?;
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, command: clap::Command) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| miette!("cannot render {name}.1: {e}"))?;
    std::fs::write(&path, page).map_err(|e| miette!("cannot write {}: {e}", path.display()))
}
