//! `builder pull REF [--platform os/arch[/variant]]`: fetch an image from its
//! registry into the local store and tag it there.

use super::Globals;
use super::common::print_line;
use super::common::{block_on, client_for, parse_reference, tag, with_progress};
use super::progress_arg::ProgressMode;
use crate::image::PlatformSpec;
use crate::registry::{PullOptions, pull};
use clap::Args;
use miette::{IntoDiagnostic as _, Result};

/// Pull an image from a registry into the local store.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image, e.g. `busybox`, `127.0.0.1:5000/app:1.0`, `app@sha256:…`.
    reference: String,
    /// The platform to take from a multi-platform image (default: this
    /// machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Progress output on stderr (auto: tty on a terminal, else plain;
    /// default: $BUILDKIT_PROGRESS, else auto)
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: PullArgs) -> Result<()> {
    let reference = parse_reference(&args.reference)?;
    let platform = match &args.platform {
        Some(p) => PlatformSpec::parse(p).into_diagnostic()?,
        None => PlatformSpec::host(),
    };
    let store = globals.open_store()?;
    let client = client_for(globals, reference.registry())?;
    let options = PullOptions {
        platform,
        ..PullOptions::default()
    };
    // Keeps prune from taking the pulled blobs before the name points at them.
    let _lease = store.lease().into_diagnostic()?;
    let pulled = with_progress(ProgressMode::chosen(args.progress, "pull"), |progress| {
        block_on(async { Ok(pull(&client, &store, &reference, &options, &progress).await?) })
    })?;
    tag(&store, &reference, &pulled)?;
    print_line(format_args!("Digest: {}", pulled.manifest))?;
    print_line(format_args!("{reference}"))?;
    Ok(())
}
