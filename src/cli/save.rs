//! `builder save [-o FILE] [--format docker|oci] IMAGE...`: images from the
//! store as one archive, as `docker save` writes it (or an OCI layout tar).

use super::Globals;
use super::common::resolve_image;
use crate::output::{ArchiveFormat, Destination, SavedImage, save};
use miette::{IntoDiagnostic as _, Result};
use std::path::PathBuf;

/// Save images to a tar archive (docker's format, or an OCI layout)
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// The images: names, image IDs or unique ID prefixes
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// docker: what `docker save` writes (an OCI layout with manifest.json);
    /// oci: an OCI image layout
    #[arg(long, value_enum, default_value_t = FormatArg::Docker)]
    format: FormatArg,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// `docker save`'s archive, which `docker load` and `builder load` read.
    Docker,
    /// An OCI image layout as a tar.
    Oci,
}

/// Writes the archive; an image named by name keeps that name in it, one
/// named by ID all its names.
pub fn run(globals: &Globals, args: SaveArgs) -> Result<()> {
    let store = globals.open_store()?;
    let mut images: Vec<SavedImage> = Vec::new();
    for text in &args.images {
        let image = resolve_image(&store, text)?;
        // By ID: every name it has (the store keeps named images only, so
        // a nameless image would be lost to the next prune once loaded).
        let names: Vec<_> = match image.reference {
            Some(reference) => vec![reference],
            None => store
                .named_images()
                .into_diagnostic()?
                .into_iter()
                .filter(|n| n.id == image.id)
                .map(|n| n.reference)
                .collect(),
        };
        match images.iter_mut().find(|i| i.top == image.target) {
            Some(saved) => {
                for name in names {
                    if !saved.names.contains(&name) {
                        saved.names.push(name);
                    }
                }
            }
            None => images.push(SavedImage {
                top: image.target,
                names,
            }),
        }
    }
    let dest = match &args.output {
        Some(path) => Destination::File(path.clone()),
        None => Destination::Stdout,
    };
    let format = match args.format {
        FormatArg::Docker => ArchiveFormat::Docker,
        FormatArg::Oci => ArchiveFormat::Oci,
    };
    save(&store, &images, format, &dest).into_diagnostic()
}
