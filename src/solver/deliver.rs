//! What happens to a built image: it is named in the store (`-t`,
//! `type=image`), written out (`-o`), pushed (`--push`, `push=true`,
//! `type=registry`), and its cache exported (`--cache-to`). Blobs that
//! only an imported cache has are fetched when an output reads them; a
//! push to the cache's registry mounts them instead.
//!
//! The store keeps a build's layers uncompressed; what leaves it as an
//! image (a push, a `type=oci` or `type=docker` archive) is the
//! distribution image, whose layers are compressed once (and remembered)
//! by [`distribution_image`], as the output's compression attributes
//! say over `--compression` (one image for each setting asked). A push
//! sends the layers it compresses while they are compressed
//! ([`upload_written`]).
//! `type=local` and `type=tar` read the uncompressed layers.

use super::Built;
use super::ClientFactory;
use super::cache_remote::{self, ExportError};
use crate::image::Reference;
use crate::layer::compression_attrs::CompressionAttrError;
use crate::layer::distribute::{DistributeError, Distribution, Observers, distribution_image};
use crate::layer::extract::ExtractWarning;
use crate::output::{Destination, Export, Output, OutputError};
use crate::progress::{Event, ProgressSender};
use crate::registry::{Client, PushOptions, RegistryError, WrittenUpload, push, upload_written};
use crate::store::{BlobFollower, Store, StoreError};
use oci_spec::image::{Descriptor, Digest};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

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
    /// An output's compression attributes ask for a level its
    /// compression does not take.
    #[error("--output: {0}")]
    Compression(#[from] CompressionAttrError),
    /// The layers could not be compressed for a push or an export.
    #[error(transparent)]
    Distribute(#[from] DistributeError),
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

impl Delivery {
    /// Each name pushed, once, with how its layers are sent: as the first
    /// `type=image` output naming it says (its compression attributes
    /// over `default`, `--compression`), then the `--push`ed `-t` names.
    pub fn pushes(
        &self,
        default: Distribution,
    ) -> Result<Vec<(Reference, Distribution)>, CompressionAttrError> {
        let tags = &self.tags;
        let mut pushes: Vec<(Reference, Distribution)> = Vec::new();
        for output in &self.outputs {
            let Output::Image {
                names,
                push,
                compression,
            } = output
            else {
                continue;
            };
            let want = compression.resolve(default)?;
            for name in self.names_of(names) {
                // `--push` pushes the -t names, or without any, the
                // type=image names.
                let pushed = *push || (self.push && (tags.is_empty() || tags.contains(name)));
                if pushed && !pushes.iter().any(|(n, _)| n == name) {
                    pushes.push((name.clone(), want));
                }
            }
        }
        if self.push {
            for tag in tags {
                if !pushes.iter().any(|(n, _)| n == tag) {
                    pushes.push((tag.clone(), default));
                }
            }
        }
        Ok(pushes)
    }

    /// The names a `type=image` output with `own` names gives: its own,
    /// else the `-t` names.
    fn names_of<'a>(&'a self, own: &'a [Reference]) -> &'a [Reference] {
        if own.is_empty() { &self.tags } else { own }
    }

    /// How the image's layers leave the store: as its first push sends
    /// them, else as its first OCI or docker export writes them, else as
    /// `default` says. What names its layers (an inline cache) names them
    /// so.
    pub fn sent_as(&self, default: Distribution) -> Result<Distribution, CompressionAttrError> {
        if let Some((_, first)) = self.pushes(default)?.first() {
            return Ok(*first);
        }
        for output in &self.outputs {
            if let Output::Export(export) = output
                && let Some(attrs) = export.compression()
            {
                return attrs.resolve(default);
            }
        }
        Ok(default)
    }
}

/// The image as it leaves the store, made once for each distribution
/// an output asks for, when first needed.
struct Sent<'a> {
    store: &'a Store,
    image: &'a Descriptor,
    progress: &'a ProgressSender,
    made: Vec<(Distribution, Descriptor)>,
}

impl Sent<'_> {
    /// The distribution image with its layers compressed as `want` says
    /// (each once).
    fn get(&mut self, want: Distribution) -> Result<Descriptor, DistributeError> {
        self.make(want, None)
    }

    /// As [`Self::get`]; `on_writing` reads each layer compressed now as
    /// it is written.
    fn make(
        &mut self,
        want: Distribution,
        on_writing: Option<&(dyn Fn(BlobFollower) + Sync)>,
    ) -> Result<Descriptor, DistributeError> {
        if let Some(made) = self.made(want) {
            return Ok(made);
        }
        let progress = self.progress;
        let on_work = |work| progress.send(Event::Work(work));
        let observers = Observers {
            on_work: &on_work,
            on_writing,
        };
        let made = tokio::task::block_in_place(|| {
            distribution_image(self.store, self.image, want, observers)
        })?;
        self.made.push((want, made.clone()));
        Ok(made)
    }

    /// The distribution image `want` asks for, when made already.
    fn made(&self, want: Distribution) -> Option<Descriptor> {
        let (_, made) = self.made.iter().find(|(d, _)| *d == want)?;
        Some(made.clone())
    }

    /// Pushes the distribution image `want` asks for to `target`; layers
    /// compressed for it go up while they are compressed (those whose
    /// streamed upload fails go up again from the store).
    async fn push(
        &mut self,
        want: Distribution,
        client: &Arc<Client>,
        target: &Reference,
    ) -> Result<Digest, DeliverError> {
        let mut options = PushOptions::default();
        let image = match self.made(want) {
            Some(made) => made,
            None => {
                let runtime = tokio::runtime::Handle::current();
                let uploads = Mutex::new(Vec::new());
                let on_writing = |follower: BlobFollower| {
                    let (client, target) = (Arc::clone(client), target.clone());
                    let upload = runtime
                        .spawn(async move { upload_written(&client, &target, follower).await });
                    uploads
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(upload);
                };
                let made = self.make(want, Some(&on_writing));
                let uploads = uploads.into_inner().unwrap_or_else(|e| e.into_inner());
                if made.is_err() {
                    uploads.iter().for_each(JoinHandle::abort);
                }
                let made = made?;
                for upload in uploads {
                    if let Ok(Ok(WrittenUpload::Sent(digest))) = upload.await {
                        options.uploaded.insert(digest);
                    }
                }
                made
            }
        };
        Ok(push(
            client,
            self.store,
            image.digest(),
            target,
            &options,
            self.progress,
        )
        .await?)
    }

    /// The first image made, as buildx reports one.
    fn first(self) -> Option<Descriptor> {
        self.made.into_iter().next().map(|(_, made)| made)
    }
}

/// Names the image, writes the outputs, pushes, then exports the cache;
/// returns the image as pushed or exported (its layers compressed) when
/// a push or an OCI or docker export sent it.
pub async fn deliver(
    built: &Built,
    delivery: &Delivery,
    clients: &ClientFactory,
    progress: &ProgressSender,
) -> Result<Option<Descriptor>, DeliverError> {
    let store = &built.store;
    let tags = &delivery.tags;
    let refs = store.refs();
    // Keeps prune from taking the compressed layers while they are sent.
    let _lease = store.lease()?;
    let mut sent = Sent {
        store,
        image: &built.image,
        progress,
        made: Vec::new(),
    };
    for tag in tags {
        refs.set(tag, built.image.clone())?;
    }
    for output in &delivery.outputs {
        match output {
            Output::Export(export) => {
                let image = match export.compression() {
                    Some(attrs) => sent.get(attrs.resolve(built.distribution)?)?,
                    None => built.image.clone(),
                };
                let report = tokio::task::block_in_place(|| export.write(store, &image, tags))?;
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
            Output::Image { names, .. } => {
                let names = delivery.names_of(names);
                if names.is_empty() {
                    return Err(DeliverError::Unnamed);
                }
                for name in names {
                    refs.set(name, built.image.clone())?;
                }
            }
        }
    }
    for (name, want) in &delivery.pushes(built.distribution)? {
        let client = Arc::new(clients(name.registry())?);
        let digest = sent.push(*want, &client, name).await?;
        progress.send(Event::Status(format!("pushed {name}@{digest}")));
    }
    cache_remote::export_all(
        store,
        &built.cache_to,
        &built.steps_used,
        built.distribution,
        clients,
        progress,
    )
    .await?;
    Ok(sent.first())
}

/// `builder push`: sends the stored `image` to `target` with its layers
/// compressed as `distribution` says (each once: the store remembers);
/// returns the digest the target now names.
pub async fn push_stored(
    client: Client,
    store: &Store,
    image: &Descriptor,
    target: &Reference,
    distribution: Distribution,
    progress: &ProgressSender,
) -> Result<Digest, DeliverError> {
    let _lease = store.lease()?;
    let mut sent = Sent {
        store,
        image,
        progress,
        made: Vec::new(),
    };
    sent.push(distribution, &Arc::new(client), target).await
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
