//! Pushing an image from the store: every blob is checked with HEAD first,
//! mounted from another repository of the same registry when the store
//! knows one that has it, else uploaded (monolithic when small, chunked
//! when large, always streamed from the file). Blobs go up in parallel
//! (bounded); manifests follow their blobs, an index its manifests. A
//! blob still being written (a layer compressed for the push) can go up
//! as it is written, with [`upload_written`].

use super::client::{Body, Client, MountOutcome};
use super::error::RegistryError;
use super::pull::{in_store, store_error};
use super::sources::Sources;
use super::upload_check::UploadCheck;
use crate::image::media::{OCI_INDEX, OCI_MANIFEST};
use crate::image::{ManifestOrIndex, PlatformSpec, Reference};
use crate::progress::{BlobOutcome, Direction, Event, ProgressSender};
use crate::store::{BlobFollower, BlobStore, Store};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use oci_spec::image::{Descriptor, Digest, ImageManifest};
use reqwest::Url;
use std::collections::HashSet;
use std::io::Read as _;
use std::sync::{Arc, Mutex};

/// Upload attempts per blob (each opens a fresh upload session).
const BLOB_ATTEMPTS: u32 = 3;
/// The most bytes of a blob being written sent as one piece of its stream.
const WRITTEN_PIECE: usize = 1 << 20;
/// Pieces of a blob being written read ahead of the network.
const WRITTEN_AHEAD: usize = 4;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs uploaded at once.
    pub parallel: usize,
    /// Blobs up to this size go up in one request.
    pub monolithic_limit: u64,
    /// Larger blobs go up in `PATCH` chunks of this size.
    pub chunk_size: u64,
    /// Blobs the target has from [`upload_written`] already: reported as
    /// sent, not asked about.
    pub uploaded: HashSet<Digest>,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            parallel: 4,
            monolithic_limit: 32 << 20,
            chunk_size: 128 << 20,
            uploaded: HashSet::new(),
        }
    }
}

/// Pushes the manifest or index `image` from `store` to `target` (by its
/// tag, or by digest when the reference has none); returns the digest the
/// target now names. Reports blobs on `progress`; saying that the image
/// was pushed, once, is the caller's part.
pub async fn push(
    client: &Client,
    store: &Store,
    image: &Digest,
    target: &Reference,
    options: &PushOptions,
    progress: &ProgressSender,
) -> Result<Digest, RegistryError> {
    let subject = target.to_string();
    let blobs = store.blobs();
    let ctx = Ctx {
        client,
        blobs: &blobs,
        sources: Sources::new(store.root()),
        repository: target.repository(),
        subject: &subject,
        options,
        progress,
    };
    let (bytes, media_type, document) = ctx.read_document(image)?;
    match document {
        ManifestOrIndex::Index(index) => {
            // Every platform or none: a registry would take an index whose
            // manifests are missing.
            if let Some(absent) = index
                .manifests()
                .iter()
                .find(|c| !blobs.contains(c.digest()))
            {
                return Err(RegistryError::IncompleteIndex {
                    subject,
                    platform: absent
                        .platform()
                        .as_ref()
                        .map(|p| PlatformSpec::of(p).to_string())
                        .unwrap_or_else(|| absent.digest().to_string()),
                });
            }
            for child in index.manifests() {
                let (child_bytes, child_type, child_doc) = ctx.read_document(child.digest())?;
                let ManifestOrIndex::Manifest(manifest) = child_doc else {
                    return Err(RegistryError::InvalidManifest {
                        subject,
                        reason: format!("index entry {} is itself an index", child.digest()),
                    });
                };
                ctx.push_blobs(&manifest).await?;
                ctx.put_manifest(child.digest().as_ref(), &child_type, child_bytes)
                    .await?;
            }
        }
        ManifestOrIndex::Manifest(manifest) => ctx.push_blobs(&manifest).await?,
    }
    let reference = target
        .tag()
        .map(str::to_string)
        .unwrap_or_else(|| image.to_string());
    ctx.put_manifest(&reference, &media_type, bytes).await?;
    Ok(image.clone())
}

/// What [`upload_written`] did with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenUpload {
    /// The registry has the blob from this upload.
    Sent(Digest),
    /// The registry had the blob already (found once the store had
    /// written it): the rest of the upload was dropped.
    Present(Digest),
}

/// Uploads a blob while the store writes it (a layer compressed for this
/// push): its bytes go up in one streamed `PATCH` as `follower` reads
/// them, and the upload closes with the digest the store committed. A
/// blob the registry turns out to have (asked once its digest is known)
/// is not sent further. A blob whose upload fails is left to [`push`],
/// which sends it from the store (mark those sent in
/// [`PushOptions::uploaded`]).
pub async fn upload_written(
    client: &Client,
    target: &Reference,
    follower: BlobFollower,
) -> Result<WrittenUpload, RegistryError> {
    let subject = target.to_string();
    let repository = target.repository();
    let ending = follower.ending();
    let session = client.start_upload(repository, &subject).await?;
    let (pieces, received) = tokio::sync::mpsc::channel(WRITTEN_AHEAD);
    tokio::task::spawn_blocking(move || read_pieces(follower, &pieces));
    let stream = stream::unfold(received, |mut received| async move {
        received.recv().await.map(|piece| (piece, received))
    });
    let body = Body::Stream(Arc::new(Mutex::new(Some(stream.boxed()))));
    let upload = client.upload_stream(repository, &session, body, &subject);
    tokio::pin!(upload);
    let committed = in_store(
        &subject,
        "waiting for the blob being written".to_owned(),
        move || ending.finish(),
    );
    tokio::pin!(committed);
    let mut sent = None;
    let stored = loop {
        tokio::select! {
            session = &mut upload, if sent.is_none() => sent = Some(session?),
            stored = &mut committed => break stored?,
        }
    };
    let session = match sent {
        Some(session) => session,
        None => {
            // The store has it, the registry is still taking it: a
            // registry that had it all along needs no more bytes.
            let scope = super::auth::Scope::push(repository);
            if let Ok(true) = client
                .blob_exists(repository, &stored.digest, &scope, &subject)
                .await
            {
                return Ok(WrittenUpload::Present(stored.digest));
            }
            upload.await?
        }
    };
    client
        .finish_upload(repository, &session, &stored.digest, Body::Empty, &subject)
        .await?;
    Ok(WrittenUpload::Sent(stored.digest))
}

/// Sends what `follower` reads, piece by piece, until the blob is stored
/// (or its error, when it is not), or until nothing takes the pieces.
fn read_pieces(
    mut follower: BlobFollower,
    pieces: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    loop {
        let mut piece = vec![0; WRITTEN_PIECE];
        let read = match follower.read(&mut piece) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ = pieces.blocking_send(Err(e));
                return;
            }
        };
        piece.truncate(read);
        if pieces.blocking_send(Ok(piece.into())).is_err() {
            return;
        }
    }
}

struct Ctx<'a> {
    client: &'a Client,
    blobs: &'a BlobStore,
    sources: Sources,
    repository: &'a str,
    subject: &'a str,
    options: &'a PushOptions,
    progress: &'a ProgressSender,
}

impl Ctx<'_> {
    /// A stored manifest or index, its media type (from its `mediaType`,
    /// else by kind: OCI allows leaving it out) and its parsed form.
    fn read_document(
        &self,
        digest: &Digest,
    ) -> Result<(Bytes, String, ManifestOrIndex), RegistryError> {
        let bytes = self
            .blobs
            .read(digest)
            .map_err(|e| store_error(self.subject, e))?;
        let document =
            ManifestOrIndex::parse(&bytes, None).map_err(|e| RegistryError::InvalidManifest {
                subject: self.subject.to_string(),
                reason: format!("stored document {digest}: {e}"),
            })?;
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let declared = serde_json::from_slice::<Probe>(&bytes)
            .ok()
            .and_then(|p| p.media_type);
        let media_type = declared.unwrap_or_else(|| match document {
            ManifestOrIndex::Index(_) => OCI_INDEX.to_string(),
            ManifestOrIndex::Manifest(_) => OCI_MANIFEST.to_string(),
        });
        Ok((bytes.into(), media_type, document))
    }

    /// Sends a manifest's config and layers, in parallel.
    async fn push_blobs(&self, manifest: &ImageManifest) -> Result<(), RegistryError> {
        let mut all: Vec<&Descriptor> = vec![manifest.config()];
        all.extend(manifest.layers());
        stream::iter(all.into_iter().map(|d| self.push_blob(d)))
            .buffer_unordered(self.options.parallel.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        self.client
            .put_manifest(self.repository, reference, media_type, bytes, self.subject)
            .await
    }

    async fn push_blob(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        let digest = descriptor.digest();
        let registry = self.client.endpoint().name();
        let scope = super::auth::Scope::push(self.repository);
        let finished = |outcome| {
            self.sources.record(digest, registry, self.repository);
            self.progress.send(Event::BlobFinished {
                digest: digest.clone(),
                direction: Direction::Upload,
                outcome,
            });
        };
        if self.options.uploaded.contains(digest) {
            self.upload_started(digest)?;
            finished(BlobOutcome::Transferred);
            return Ok(());
        }
        if self
            .client
            .blob_exists(self.repository, digest, &scope, self.subject)
            .await?
        {
            finished(BlobOutcome::AlreadyPresent);
            return Ok(());
        }
        let mut session = None;
        for from in self.sources.repositories(digest, registry) {
            if from == self.repository {
                continue;
            }
            match self
                .client
                .mount_blob(self.repository, digest, &from, self.subject)
                .await
            {
                Ok(MountOutcome::Mounted) => {
                    finished(BlobOutcome::Mounted { from });
                    return Ok(());
                }
                Ok(MountOutcome::Upload(url)) => {
                    session = Some(url);
                    break;
                }
                // A refused mount (no access to `from`) is only a missed
                // shortcut: upload instead.
                Err(e) if !e.is_transient() => continue,
                Err(e) => return Err(e),
            }
        }
        let path = self
            .blobs
            .path(digest)
            .map_err(|e| store_error(self.subject, e))?;
        let size = self.upload_started(digest)?;
        let progress = self.progress.clone();
        let progress_digest = digest.clone();
        let on_progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |done| {
            progress.send(Event::BlobProgress {
                digest: progress_digest.clone(),
                done,
            })
        });
        let check = UploadCheck::new(digest, size);
        let mut attempt = 1;
        loop {
            let session = match session.take() {
                Some(s) => s,
                None => {
                    self.client
                        .start_upload(self.repository, self.subject)
                        .await?
                }
            };
            match self
                .upload(session, digest, &path, size, &on_progress, &check)
                .await
            {
                Ok(()) => break,
                // Damaged in the store: nothing was committed; remove it so
                // that a pull or a build makes it anew.
                Err(e) if check.corrupt().is_some() => {
                    let _ = self.blobs.remove(digest);
                    return Err(e);
                }
                Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
        finished(BlobOutcome::Transferred);
        Ok(())
    }

    /// Reports the upload of the stored blob `digest` started; returns its
    /// size.
    fn upload_started(&self, digest: &Digest) -> Result<u64, RegistryError> {
        let size = self
            .blobs
            .size(digest)
            .map_err(|e| store_error(self.subject, e))?;
        self.progress.send(Event::BlobStarted {
            digest: digest.clone(),
            direction: Direction::Upload,
            total: Some(size),
        });
        Ok(size)
    }

    /// Sends the file through an open session: one PUT when small, else
    /// PATCH chunks and a closing PUT.
    async fn upload(
        &self,
        mut session: Url,
        digest: &Digest,
        path: &std::path::Path,
        size: u64,
        progress: &Arc<dyn Fn(u64) + Send + Sync>,
        check: &Arc<UploadCheck>,
    ) -> Result<(), RegistryError> {
        let part = |offset: u64, len: u64| Body::File {
            path: path.to_path_buf(),
            offset,
            len,
            progress: Some(progress.clone()),
            check: Some(check.clone()),
        };
        if size <= self.options.monolithic_limit {
            return self
                .client
                .finish_upload(
                    self.repository,
                    &session,
                    digest,
                    part(0, size),
                    self.subject,
                )
                .await;
        }
        let chunk = self.options.chunk_size.max(1);
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            session = self
                .client
                .upload_chunk(
                    self.repository,
                    &session,
                    offset,
                    part(offset, len),
                    len,
                    self.subject,
                )
                .await?;
            offset += len;
        }
        self.client
            .finish_upload(self.repository, &session, digest, Body::Empty, self.subject)
            .await
    }
}
