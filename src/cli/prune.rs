//! `builder prune`: free the space of content neither an image name nor
//! the build cache needs (`--all`: nor the build cache itself).

use super::Globals;
use super::images::human_size;
use crate::store::PruneScope;
use miette::{IntoDiagnostic as _, Result};

/// Remove content no image or build cache needs, and leftovers of interrupted builds
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also remove the build cache (step results), then all content no image name needs
    #[arg(short, long)]
    all: bool,
    /// Also empty the RUN --mount=type=cache directories no build is using
    #[arg(long)]
    cache_mounts: bool,
}

/// Prunes the store and prints what went, as `docker builder prune` does.
pub fn run(globals: &Globals, args: PruneArgs) -> Result<()> {
    let store = globals.open_store()?;
    let scope = if args.all {
        PruneScope::All
    } else {
        PruneScope::Unused
    };
    let report = store.prune_with(scope).into_diagnostic()?;
    let mut removed = report.removed_blobs;
    removed.sort_by_key(|d| d.to_string());
    for digest in &removed {
        println!("Deleted: {digest}");
    }
    let counts = [
        (report.removed_records, "build cache record(s)"),
        (report.removed_snapshots.len(), "unpacked layer snapshot(s)"),
        (report.removed_temp_files, "leftover temporary file(s)"),
    ];
    for (count, what) in counts {
        if count > 0 {
            println!("Removed {count} {what}");
        }
    }
    if args.cache_mounts {
        let pruned = store.prune_cache_mounts().into_diagnostic()?;
        println!("Removed {} cache mount(s)", pruned.removed);
        if pruned.in_use > 0 {
            println!("Kept {} cache mount(s) in use", pruned.in_use);
        }
    }
    println!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    );
    Ok(())
}
