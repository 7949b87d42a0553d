//! `builder pull REF [--platform os/arch[/variant],…] [--all-platforms]`:
//! fetch an image from its registry into the local store and tag it there.
//! A name that resolves to a multi-platform index names the index in the
//! store, which holds the platforms pulled (this machine's by default).

use super::Globals;
use super::common::print_line;
use super::common::{block_on, client_for, parse_reference, tag, with_progress};
use super::progress_arg::ProgressMode;
use crate::image::PlatformSpec;
use crate::registry::{PullOptions, index_platforms, pull};
use clap::Args;
use miette::{IntoDiagnostic as _, Result};

/// Pull an image from a registry into the local store.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image, e.g. `busybox`, `127.0.0.1:5000/app:1.0`, `app@sha256:…`.
    reference: String,
    /// The platforms to take from a multi-platform image, comma-separated
    /// (repeatable; default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT],…")]
    platform: Vec<String>,
    /// Take every platform of a multi-platform image.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Progress output on stderr (auto: tty on a terminal, else plain;
    /// default: $BUILDKIT_PROGRESS, else auto)
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: PullArgs) -> Result<()> {
    let reference = parse_reference(&args.reference)?;
    let mut platforms = Vec::new();
    for item in args.platform.iter().flat_map(|v| v.split(',')) {
        let platform = PlatformSpec::parse(item.trim()).into_diagnostic()?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    let store = globals.open_store()?;
    let client = client_for(globals, reference.registry())?;
    // Keeps prune from taking the pulled blobs before the name points at them.
    let _lease = store.lease().into_diagnostic()?;
    let pulled = with_progress(ProgressMode::chosen(args.progress, "pull"), |progress| {
        block_on(async {
            if args.all_platforms {
                platforms = index_platforms(&client, &reference)
                    .await?
                    .unwrap_or_default();
            }
            if platforms.is_empty() {
                platforms.push(PlatformSpec::host());
            }
            let mut last = None;
            for platform in platforms {
                let options = PullOptions {
                    platform,
                    ..PullOptions::default()
                };
                last = Some(pull(&client, &store, &reference, &options, &progress, None).await?);
            }
            last.ok_or_else(|| miette::miette!("{reference}: no platform to pull"))
        })
    })?;
    tag(&store, &reference, &pulled)?;
    print_line(format_args!("Digest: {}", pulled.resolved))?;
    print_line(format_args!("{reference}"))?;
    Ok(())
}
