//! What happens to a built image: it is named in the store (`-t`,
//! `type=image`), written out (`-o`), pushed (`--push`, `push=true`,
//! `type=registry`), and its cache exported (`--cache-to`). Blobs that
//! only an imported cache has are fetched when an output reads them; a
//! push to the cache's registry mounts them instead.

use super::Built;
use super::ClientFactory;
use super::cache_remote::{self, ExportError};
use crate::image::Reference;
use crate::layer::extract::ExtractWarning;
use crate::output::{Destination, Export, Output, OutputError};
use crate::progress::{Event, ProgressSender};
use crate::registry::{PushOptions, RegistryError, push};
use crate::store::StoreError;

/// Why delivering a built image failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DeliverError {
    /// The image could not be named in the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An `-o` output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `type=image` without a name.
    #[error("--output type=image needs name=… or a -t name to name the image")]
    Unnamed,
    /// A push failed (its help says how to log in).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Push(#[from] RegistryError),
    /// A `--cache-to` failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cache(#[from] ExportError),
}

/// What to do with a built image.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// `-t`: names in the store (pushed with `push`).
    pub tags: Vec<Reference>,
    /// `-o`.
    pub outputs: Vec<Output>,
    /// `--push`: push every tag.
    pub push: bool,
}

/// Names the image, writes the outputs, pushes, then exports the cache.
pub async fn deliver(
    built: &Built,
    delivery: &Delivery,
    clients: &ClientFactory,
    progress: &ProgressSender,
) -> Result<(), DeliverError> {
    let store = &built.store;
    let tags = &delivery.tags;
    let refs = store.refs();
    for tag in tags {
        refs.set(tag, built.image.clone())?;
    }
    // `--push` pushes the -t names, or without any, the type=image names.
    let mut to_push: Vec<Reference> = match delivery.push {
        true if tags.is_empty() => image_names(tags, &delivery.outputs),
        true => tags.to_vec(),
        false => Vec::new(),
    };
    for output in &delivery.outputs {
        match output {
            Output::Export(export) => {
                let report =
                    tokio::task::block_in_place(|| export.write(store, &built.image, tags))?;
                for warning in summarize_warnings(report.warnings) {
                    progress.send(Event::Status(format!("warning: {warning}")));
                }
                if let Export::Docker {
                    dest: Destination::DockerLoad,
                    ..
                } = export
                {
                    progress.send(Event::Status("loaded into docker (docker load)".to_owned()));
                }
            }
            Output::Image { names, push } => {
                let names = if names.is_empty() { tags } else { names };
                if names.is_empty() {
                    return Err(DeliverError::Unnamed);
                }
                for name in names {
                    refs.set(name, built.image.clone())?;
                    if *push && !to_push.contains(name) {
                        to_push.push(name.clone());
                    }
                }
            }
        }
    }
    for name in &to_push {
        let client = clients(name.registry())?;
        let digest = push(
            &client,
            store,
            built.image.digest(),
            name,
            &PushOptions::default(),
            progress,
        )
        .await?;
        progress.send(Event::Status(format!("pushed {name}@{digest}")));
    }
    cache_remote::export_all(
        store,
        &built.cache_to,
        &built.steps_used,
        built.compression,
        clients,
        progress,
    )
    .await?;
    Ok(())
}

/// Every name the image gets: `-t` names and `type=image` names.
pub fn image_names(tags: &[Reference], outputs: &[Output]) -> Vec<Reference> {
    let mut names: Vec<Reference> = tags.to_vec();
    for output in outputs {
        if let Output::Image { names: own, .. } = output {
            for name in own {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

/// The export's warnings as shown: owners that could not be set (every
/// file of a rootless export) in one line, the others one by one.
fn summarize_warnings(warnings: Vec<ExtractWarning>) -> Vec<String> {
    let (owners, others): (Vec<_>, Vec<_>) = warnings
        .into_iter()
        .partition(|w| matches!(w, ExtractWarning::OwnerNotSet { .. }));
    let mut shown: Vec<String> = others.iter().map(ToString::to_string).collect();
    if let Some(first) = owners.first() {
        shown.push(match owners.len() {
            1 => first.to_string(),
            n => format!(
                "{n} entries keep the exporting user as owner (their recorded owners are outside the ids this user may set), e.g. {first}"
            ),
        });
    }
    shown
}
