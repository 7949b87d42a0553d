//! `builder rmi REF...`: remove image names; `builder prune` then frees
//! the content no name reaches any more.

use super::Globals;
use super::common::print_line;
use crate::image::Reference;
use miette::{IntoDiagnostic as _, Result, miette};

/// Remove images from the store by name
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// The images to remove (NAME[:TAG] or NAME@DIGEST)
    #[arg(required = true)]
    images: Vec<String>,
}

/// Removes each reference, printing `Untagged: NAME` per name removed; goes
/// on past failures and reports them all, as `docker rmi` does.
pub fn run(globals: &Globals, args: RmiArgs) -> Result<()> {
    let store = globals.open_store()?;
    let refs = store.refs();
    let mut failed = 0;
    for text in &args.images {
        let removed = Reference::parse(text)
            .into_diagnostic()
            .and_then(|reference| refs.remove(&reference).into_diagnostic());
        match removed {
            Ok(removed) => {
                for reference in removed {
                    print_line(format_args!("Untagged: {}", reference.familiar()))?;
                }
            }
            Err(report) => {
                eprintln!("{report:?}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(miette!(
            "could not remove {n} of {} images",
            args.images.len()
        )),
    }
}
