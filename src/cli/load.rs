//! `builder load [-i FILE]`: images from an archive `builder save` or
//! `docker save` wrote (an OCI layout tar) into the store.

use super::Globals;
use super::common::print_line;
use crate::output::load;
use miette::{IntoDiagnostic as _, Result, miette};
use std::path::PathBuf;

/// Load images from a tar archive (docker save's, or an OCI layout)
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read FILE instead of stdin
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print nothing
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    quiet: bool,
}

/// Loads and prints `Loaded image: NAME` per name (`Loaded image ID: …`
/// for an image without one), as `docker load` does.
pub fn run(globals: &Globals, args: LoadArgs) -> Result<()> {
    let store = globals.open_store()?;
    let loaded = match &args.input {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| miette!("cannot open {}: {e}", path.display()))?;
            load(&store, std::io::BufReader::new(file))
        }
        None => {
            use std::io::IsTerminal as _;
            if std::io::stdin().is_terminal() {
                return Err(miette!(
                    help = "builder load -i FILE, or builder load < FILE",
                    "refusing to read an archive from the terminal"
                ));
            }
            load(&store, std::io::stdin().lock())
        }
    }
    .into_diagnostic()?;
    if args.quiet {
        return Ok(());
    }
    for (image, id) in &loaded.images {
        if image.names.is_empty() {
            print_line(format_args!("Loaded image ID: {id}"))?;
            eprintln!(
                "warning: {id} has no name in the archive; the store keeps named images only, so the next prune removes it"
            );
        }
        for name in &image.names {
            print_line(format_args!("Loaded image: {}", name.familiar()))?;
        }
    }
    Ok(())
}
