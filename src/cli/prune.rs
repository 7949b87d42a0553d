//! `builder prune`: free the space of content no image name reaches.

use super::Globals;
use super::common::print_line;
use super::images::human_size;
use miette::{IntoDiagnostic as _, Result};

/// Remove content no image in the store refers to, and leftovers of interrupted writes
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also empty the RUN --mount=type=cache directories no build is using
    #[arg(long)]
    cache_mounts: bool,
}

/// Prunes the store and prints what went, as `docker image prune` does.
pub fn run(globals: &Globals, args: PruneArgs) -> Result<()> {
    let store = globals.open_store()?;
    let report = store.prune().into_diagnostic()?;
    let mut removed = report.removed_blobs;
    removed.sort_by_key(|d| d.to_string());
    for digest in &removed {
        print_line(format_args!("Deleted: {digest}"))?;
    }
    if report.removed_temp_files > 0 {
        print_line(format_args!(
            "Removed {} leftover temporary file(s)",
            report.removed_temp_files
        ))?;
    }
    if args.cache_mounts {
        let pruned = store.prune_cache_mounts().into_diagnostic()?;
        print_line(format_args!("Removed {} cache mount(s)", pruned.removed))?;
        if pruned.in_use > 0 {
            print_line(format_args!("Kept {} cache mount(s) in use", pruned.in_use))?;
        }
    }
    print_line(format_args!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    ))?;
    Ok(())
}
