//! `builder tag SOURCE TARGET`: another name for an image in the store.

use super::Globals;
use crate::image::Reference;
use miette::{IntoDiagnostic as _, Result, miette};

/// Give an image in the store another name
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image to name (NAME[:TAG], NAME@DIGEST, or an image ID or a
    /// unique prefix of one)
    source: String,
    /// The new name (NAME[:TAG])
    target: String,
}

/// Points TARGET at what SOURCE points to.
pub fn run(globals: &Globals, args: TagArgs) -> Result<()> {
    let target = Reference::parse(&args.target).into_diagnostic()?;
    if target.digest().is_some() {
        return Err(miette!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        ));
    }
    let store = globals.open_store()?;
    let image = store.resolve_image(&args.source).into_diagnostic()?;
    store.refs().set(&target, image.target).into_diagnostic()
}
