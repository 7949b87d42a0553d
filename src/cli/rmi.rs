//! `builder rmi REF...`: remove image names; `builder prune` then frees
//! the content no name reaches any more.

use super::Globals;
use super::common::print_line;
use miette::{IntoDiagnostic as _, Result, miette};

/// Remove images from the store by name or ID
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// The images to remove (NAME[:TAG], NAME@DIGEST, or an image ID or a
    /// unique prefix of one: all its names)
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image ID's names even when they are in several repositories
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    force: bool,
}

/// Removes each reference, printing `Untagged: NAME` per name removed; goes
/// on past failures and reports them all, as `docker rmi` does.
pub fn run(globals: &Globals, args: RmiArgs) -> Result<()> {
    let store = globals.open_store()?;
    let mut failed = 0;
    for text in &args.images {
        let removed = store.untag_image(text, args.force).into_diagnostic();
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
