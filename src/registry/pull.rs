//! Pulling an image into the store: resolve the reference to a manifest
//! (choosing the platform from an index), download config and layers in
//! parallel, each verified by digest and size while it streams into the
//! store, skipping what the store already has. Manifests are stored last, so
//! a stored manifest always has its blobs.

use super::client::{Client, FetchedManifest};
use super::error::RegistryError;
use super::sources::Sources;
use crate::image::{ManifestOrIndex, PlatformSpec, Reference};
use crate::progress::{BlobOutcome, Direction, Event, InternalState, ProgressSender};
use crate::store::{BlobFollower, BlobStore, BlobWriter, Expected, Store, StoreError};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::{self, TryStreamExt as _};
use oci_spec::image::{Descriptor, Digest, ImageManifest};
use std::io::Write as _;

/// Download attempts per blob when the connection drops mid-way.
const BLOB_ATTEMPTS: u32 = 3;
/// Chunks in flight between the network task and the store writer.
const WRITE_QUEUE: usize = 32;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to choose from an index.
    pub platform: PlatformSpec,
    /// Blobs downloaded at once.
    pub parallel: usize,
    /// Whether resolving the reference to its manifest is shown as the
    /// internal phase `load metadata for REF`, as buildx shows it in a
    /// build (a `builder pull` shows only its blobs).
    pub metadata_phase: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: PlatformSpec::host(),
            parallel: 4,
            metadata_phase: false,
        }
    }
}

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The digest the reference resolved to (an index or a manifest).
    pub resolved: Digest,
    /// The index the reference named, if it named one (stored with the
    /// chosen platform's manifest).
    pub index: Option<Descriptor>,
    /// The image manifest for the chosen platform (equal to `resolved`
    /// unless the reference named an index).
    pub manifest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The config blob.
    pub config: Digest,
    /// The layer blobs, bottom first.
    pub layers: Vec<Digest>,
}

impl PulledImage {
    /// What the reference names in the store: the index when it named
    /// one (holding the platforms pulled so far), else the manifest.
    pub fn named(&self) -> Descriptor {
        self.index.clone().unwrap_or_else(|| self.descriptor())
    }

    /// The descriptor of the pulled manifest, as the reference index keeps it.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.as_str().into(),
            self.size,
            self.manifest.clone(),
        )
    }
}

/// Told of a pull's layers as their bytes land, so that something can be
/// made of them meanwhile (a build unpacks them). The pull stays what it
/// is: a feed cannot fail it, nor slow it down but by reading.
pub trait LayerFeed: Sync {
    /// The image's config `config` is stored and its layers (bottom
    /// first) are to be fetched; called once, before any of them is.
    fn image(&self, config: &Digest, layers: &[Descriptor]);
    /// A download (an attempt: a dropped connection starts another) of the
    /// layer `layer` begins; `bytes` reads its bytes as they land. A layer
    /// the store already has is not downloaded, nor fed.
    fn layer(&self, layer: &Descriptor, bytes: BlobFollower);
}

/// Pulls `reference` into `store`; the caller tags it. With a `feed`, the
/// config is fetched first and each layer's bytes go to the feed too.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    progress: &ProgressSender,
    feed: Option<&dyn LayerFeed>,
) -> Result<PulledImage, RegistryError> {
    let subject = reference.to_string();
    let repository = reference.repository();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let phase = options
        .metadata_phase
        .then(|| format!("load metadata for {subject}"));
    if let Some(name) = &phase {
        progress.send(Event::Internal {
            name: name.clone(),
            state: InternalState::Started,
        });
    }
    let resolved = resolve_manifest(client, repository, &wanted, &subject, options).await;
    if let Some(name) = phase {
        let state = match resolved {
            Ok(_) => InternalState::Done { detail: None },
            Err(_) => InternalState::Failed,
        };
        progress.send(Event::Internal { name, state });
    }
    let Resolved {
        top,
        manifest,
        image,
        documents,
    } = resolved?;
    let blobs = store.blobs();
    let sources = Sources::new(store.root());
    let fetcher = BlobFetch {
        client,
        blobs: &blobs,
        sources: &sources,
        repository,
        subject: &subject,
        progress,
    };
    let fetch = |d, feed| fetcher.blob(d, feed);
    let mut wanted_blobs: Vec<&Descriptor> = image.layers().iter().collect();
    match feed {
        Some(feed) => {
            fetch(image.config(), None).await?;
            feed.image(image.config().digest(), image.layers());
        }
        None => wanted_blobs.insert(0, image.config()),
    }
    stream::iter(wanted_blobs.into_iter().map(|d| fetch(d, feed)))
        .buffer_unordered(options.parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    for doc in documents.into_iter().rev() {
        store_bytes(&blobs, doc, &subject).await?;
    }
    progress.send(Event::Status(format!(
        "pulled {subject} ({})",
        manifest.digest
    )));
    let index = (top.digest != manifest.digest).then(|| {
        Descriptor::new(
            top.media_type.as_str().into(),
            top.bytes.len() as u64,
            top.digest.clone(),
        )
    });
    Ok(PulledImage {
        index,
        resolved: top.digest,
        manifest: manifest.digest,
        size: manifest.bytes.len() as u64,
        media_type: manifest.media_type,
        config: image.config().digest().clone(),
        layers: image.layers().iter().map(|d| d.digest().clone()).collect(),
    })
}

/// What a reference resolved to.
struct Resolved {
    /// The document the reference names (an index or a manifest).
    top: FetchedManifest,
    /// The image manifest chosen (`top` unless that is an index).
    manifest: FetchedManifest,
    /// `manifest`, parsed.
    image: Box<ImageManifest>,
    /// The documents to store, the top first.
    documents: Vec<Bytes>,
}

/// What the manifest `wanted` (a tag or digest) of `repository` resolves
/// to for `options.platform`.
async fn resolve_manifest(
    client: &Client,
    repository: &str,
    wanted: &str,
    subject: &str,
    options: &PullOptions,
) -> Result<Resolved, RegistryError> {
    let subject = subject.to_owned();
    let top = client.get_manifest(repository, wanted, &subject).await?;
    let mut documents = vec![top.bytes.clone()];
    let parse = |m: &FetchedManifest| {
        ManifestOrIndex::parse(&m.bytes, Some(&m.media_type)).map_err(|e| {
            RegistryError::InvalidManifest {
                subject: subject.clone(),
                reason: format!("{}: {e}", m.digest),
            }
        })
    };
    let (manifest, image) = match parse(&top)? {
        ManifestOrIndex::Manifest(image) => (top.clone(), image),
        ManifestOrIndex::Index(index) => {
            let chosen = options.platform.select(index.manifests()).ok_or_else(|| {
                RegistryError::NoMatchingPlatform {
                    subject: subject.clone(),
                    platform: options.platform.to_string(),
                    available: describe(index.manifests()),
                }
            })?;
            let m = client
                .get_manifest(repository, chosen.digest().as_ref(), &subject)
                .await?;
            if m.bytes.len() as u64 != chosen.size() {
                return Err(RegistryError::SizeMismatch {
                    subject,
                    digest: chosen.digest().clone(),
                    expected: chosen.size(),
                    actual: m.bytes.len() as u64,
                });
            }
            documents.push(m.bytes.clone());
            match parse(&m)? {
                ManifestOrIndex::Manifest(image) => (m, image),
                ManifestOrIndex::Index(_) => {
                    return Err(RegistryError::InvalidManifest {
                        subject,
                        reason: format!("index entry {} is itself an index", m.digest),
                    });
                }
            }
        }
    };
    Ok(Resolved {
        top,
        manifest,
        image,
        documents,
    })
}

/// The platforms the index `reference` names lists, in its order (entries
/// without a platform left out); `None` when it names one image's manifest.
pub async fn index_platforms(
    client: &Client,
    reference: &Reference,
) -> Result<Option<Vec<PlatformSpec>>, RegistryError> {
    let subject = reference.to_string();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let top = client
        .get_manifest(reference.repository(), &wanted, &subject)
        .await?;
    let document = ManifestOrIndex::parse(&top.bytes, Some(&top.media_type)).map_err(|e| {
        RegistryError::InvalidManifest {
            subject: subject.clone(),
            reason: format!("{}: {e}", top.digest),
        }
    })?;
    Ok(match document {
        ManifestOrIndex::Manifest(_) => None,
        ManifestOrIndex::Index(index) => Some(
            index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref().map(PlatformSpec::of))
                .collect(),
        ),
    })
}

/// `linux/amd64, linux/arm64/v8` for an index's entries, for errors.
fn describe(manifests: &[Descriptor]) -> String {
    let names: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| PlatformSpec::of(p).to_string())
        .collect();
    if names.is_empty() {
        "no platforms".into()
    } else {
        names.join(", ")
    }
}

/// Where blobs are fetched from and into, and who hears of it.
pub struct BlobFetch<'a> {
    /// The registry's client.
    pub client: &'a Client,
    /// The store's blobs.
    pub blobs: &'a BlobStore,
    /// Where the store remembers blobs came from.
    pub sources: &'a Sources,
    /// The repository in the registry.
    pub repository: &'a str,
    /// What errors name (the reference).
    pub subject: &'a str,
    /// Where blob progress goes.
    pub progress: &'a ProgressSender,
}

impl BlobFetch<'_> {
    /// Downloads one blob into the store unless it is there, retrying when
    /// the connection drops, and remembers the repository it came from (a
    /// push to the same registry mounts it from there). Each download
    /// attempt is given to `feed`.
    pub async fn blob(
        &self,
        descriptor: &Descriptor,
        feed: Option<&dyn LayerFeed>,
    ) -> Result<(), RegistryError> {
        let Self {
            client,
            blobs,
            sources,
            repository,
            subject,
            progress,
        } = *self;
        let digest = descriptor.digest();
        let registry = client.endpoint().name();
        // A stored blob of the wrong size was damaged on disk: fetch it again
        // (checking the size is cheap; the digest is checked when the blob is
        // unpacked or pushed).
        if blobs
            .size(digest)
            .is_ok_and(|size| size != descriptor.size())
        {
            blobs.remove(digest).map_err(|e| store_error(subject, e))?;
        }
        if blobs.contains(digest) {
            progress.send(Event::BlobFinished {
                digest: digest.clone(),
                direction: Direction::Download,
                outcome: BlobOutcome::AlreadyPresent,
            });
            sources.record(digest, registry, repository);
            return Ok(());
        }
        progress.send(Event::BlobStarted {
            digest: digest.clone(),
            direction: Direction::Download,
            total: Some(descriptor.size()),
        });
        let mut attempt = 1;
        loop {
            match download(self, descriptor, feed).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                        .await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        sources.record(digest, registry, repository);
        progress.send(Event::BlobFinished {
            digest: digest.clone(),
            direction: Direction::Download,
            outcome: BlobOutcome::Transferred,
        });
        Ok(())
    }
}

/// One download attempt: the network task reads chunks and hands them to a
/// blocking task that hashes and writes them; the store commits the blob
/// only if digest and size match.
async fn download(
    fetch: &BlobFetch<'_>,
    descriptor: &Descriptor,
    feed: Option<&dyn LayerFeed>,
) -> Result<(), RegistryError> {
    let BlobFetch {
        client,
        blobs,
        repository,
        subject,
        progress,
        ..
    } = *fetch;
    let digest = descriptor.digest().clone();
    let size = descriptor.size();
    let resp = client.get_blob(repository, &digest, subject).await?;
    let mut writer = blobs
        .writer(Some(Expected {
            digest: digest.clone(),
            size: Some(size),
        }))
        .map_err(|e| store_error(subject, e))?;
    if let Some(feed) = feed {
        let bytes = writer.follow().map_err(|e| store_error(subject, e))?;
        feed.layer(descriptor, bytes);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    let write_task = tokio::task::spawn_blocking(move || -> std::io::Result<BlobWriter> {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write_all(&chunk)?;
        }
        Ok(writer)
    });
    let mut body = client.body(resp, subject, format!("fetching blob {digest}"));
    let mut done: u64 = 0;
    let mut network_error = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                network_error = Some(e);
                break;
            }
        };
        done += chunk.len() as u64;
        if done > size {
            network_error = Some(RegistryError::SizeMismatch {
                subject: subject.to_string(),
                digest: digest.clone(),
                expected: size,
                actual: done,
            });
            break;
        }
        if tx.send(chunk).await.is_err() {
            break; // the writer failed; its error is reported below
        }
        progress.send(Event::BlobProgress {
            digest: digest.clone(),
            done,
        });
    }
    drop(tx);
    let written = write_task.await.map_err(|e| RegistryError::Io {
        subject: subject.to_string(),
        context: format!("writing {digest}"),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(e) = network_error {
        return Err(e); // dropping the writer discards the partial blob
    }
    let writer = written.map_err(|source| RegistryError::Io {
        subject: subject.to_string(),
        context: format!("writing {digest} to the store"),
        source,
    })?;
    in_store(subject, format!("committing {digest}"), move || {
        writer.commit()
    })
    .await?;
    Ok(())
}

/// Stores a small document (manifest, index) already verified in memory.
async fn store_bytes(
    blobs: &BlobStore,
    bytes: Bytes,
    subject: &str,
) -> Result<Digest, RegistryError> {
    let blobs = blobs.clone();
    in_store(subject, "storing a manifest".into(), move || {
        blobs.put(&bytes)
    })
    .await
}

/// Runs store work (which blocks) off the async threads; its errors in
/// registry terms, `context` saying what it was doing when the work could
/// not run to its end.
pub(crate) async fn in_store<T: Send + 'static>(
    subject: &str,
    context: String,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RegistryError::Io {
            subject: subject.to_string(),
            context,
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|e| store_error(subject, e))
}

/// A store error in registry terms: mismatches name the blob and say the
/// registry sent them.
pub(crate) fn store_error(subject: &str, e: StoreError) -> RegistryError {
    match e {
        StoreError::DigestMismatch { expected, actual } => RegistryError::DigestMismatch {
            subject: subject.to_string(),
            expected,
            actual,
        },
        StoreError::SizeMismatch {
            digest,
            expected,
            actual,
        } => RegistryError::SizeMismatch {
            subject: subject.to_string(),
            digest,
            expected,
            actual,
        },
        other => RegistryError::Store {
            subject: subject.to_string(),
            source: Box::new(other),
        },
    }
}
