//! `builder push REF [DEST]`: send an image from the local store to a
//! registry, under its own name or under DEST.

use super::Globals;
use super::build_image::CompressionArg;
use super::common::print_line;
use super::common::{block_on, client_for, parse_reference, resolve_image, with_progress};
use super::progress_arg::ProgressMode;
use crate::layer::distribute::Distribution;
use crate::progress::Event;
use crate::solver::push_stored;
use clap::Args;
use miette::Result;

/// Push an image from the local store to a registry.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the local store, e.g. `127.0.0.1:5000/app:1.0`, or its
    /// image ID (or a unique prefix of it) with a DESTINATION.
    reference: String,
    /// Push it under this name instead (tag, or digest-only to push by
    /// digest); the local tag is left as it is.
    destination: Option<String>,
    /// Progress output on stderr (auto: tty on a terminal, else plain;
    /// default: $BUILDKIT_PROGRESS, else auto)
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
    /// Compression of the layers the store keeps uncompressed (layers
    /// pulled compressed are sent as they are)
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: PushArgs) -> Result<()> {
    let store = globals.open_store()?;
    let resolved = resolve_image(&store, &args.reference)?;
    let target = match (&args.destination, resolved.reference) {
        (Some(d), _) => parse_reference(d)?,
        (None, Some(source)) => source,
        (None, None) => super::usage_error(
            "push",
            &format!(
                "{}: an image ID names no repository to push to; give one: builder push {} NAME[:TAG]",
                args.reference, args.reference
            ),
        ),
    };
    let image = resolved.target;
    let distribution = Distribution::from(args.compression);
    let client = client_for(globals, target.registry())?;
    let digest = with_progress(ProgressMode::chosen(args.progress, "push"), |progress| {
        block_on(async {
            let digest =
                push_stored(client, &store, &image, &target, distribution, &progress).await?;
            progress.send(Event::Status(format!("pushed {target}@{digest}")));
            Ok(digest)
        })
    })?;
    print_line(format_args!("Digest: {digest}"))?;
    print_line(format_args!("{target}"))?;
    Ok(())
}
