//! `builder tag SOURCE TARGET`: another name for an image in the store.

use super::Globals;
use crate::image::Reference;
use miette::{IntoDiagnostic as _, Result, miette};

/// Give an image in the store another name
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image to name (NAME[:TAG] or NAME@DIGEST)
    source: String,
    /// The new name (NAME[:TAG])
    target: String,
}

/// Points TARGET at what SOURCE points to.
pub fn run(globals: &Globals, args: TagArgs) -> Result<()> {
    let source = Reference::parse(&args.source).into_diagnostic()?;
    let target = Reference::parse(&args.target).into_diagnostic()?;
    if target.digest().is_some() {
        return Err(miette!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        ));
    }
    let store = globals.open_store()?;
    let refs = store.refs();
    let image = refs
        .get(&source)
        .into_diagnostic()?
        .ok_or_else(|| miette!("no such image: {}", source.familiar()))?;
    refs.set(&target, image).into_diagnostic()
}
