//! Compressed variants of a stored image for a push or an export.
//!
//! A build stores each new layer as a plain tar (its blob digest is its
//! diff ID) and compresses nothing. When an image leaves the store (a
//! push, an OCI or docker archive, a remote cache) [`distribution_image`]
//! writes the manifest (or index) it is sent as: each plain layer
//! compressed as asked, several layers at once, each result remembered in
//! the store's [`VariantStore`](crate::store::VariantStore) so the next
//! push or export compresses nothing. The memo keeps each compression
//! at each level apart (`compression-level`), so a level asked is the
//! level sent. Layers already compressed (a pulled base image's) pass
//! through unchanged unless `force-compression` asks for another
//! compression (as BuildKit, a layer of the same compression is kept
//! whatever its level). The compressors are deterministic (see
//! [`super::gzip`]), so the distribution manifest is the same bytes
//! whether the layers were compressed now, earlier, or while building (as
//! builder did before).

use super::LayerError;
use super::compress::{Codec, Compression, LayerDigests, decompress, write_compressed};
use crate::image::ManifestOrIndex;
use crate::image::manifest::canonical_json;
use crate::image::media::{DOCKER_LAYER_GZIP, DOCKER_MANIFEST, document_kind};
use crate::progress::{Work, WorkKind, WorkMeter};
use crate::store::{BlobFollower, Store, StoreError};
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::io::Read;
use std::sync::Mutex;

/// How layers leaving the store are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distribution {
    /// The compression (and level) of layers stored as plain tars.
    pub codec: Codec,
    /// Recompress layers stored with another compression too
    /// (`force-compression=true`).
    pub force: bool,
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            codec: Codec::pinned(Compression::Gzip),
            force: false,
        }
    }
}

impl Distribution {
    /// Whether a layer stored as `stored` is rewritten.
    fn converts(self, stored: Compression) -> bool {
        let wanted = self.codec.compression();
        stored != wanted && (stored == Compression::Uncompressed || self.force)
    }
}

/// Why an image could not be made ready to leave the store.
#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    /// The store could not give or keep a blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer could not be read or compressed.
    #[error("compressing layer {digest}: {source}")]
    Layer {
        /// The stored layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A stored plain layer whose bytes no longer hash to its digest.
    #[error("layer {digest} is damaged: its tar hashes to {actual}")]
    Damaged {
        /// The stored layer blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A stored manifest or index that cannot be read.
    #[error("stored document {digest}: {reason}")]
    Document {
        /// The document.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// What hears about the compressions [`distribution_image`] makes.
#[derive(Clone, Copy)]
pub struct Observers<'a> {
    /// Hears each compression that takes a while (`exporting layer …`).
    pub on_work: &'a (dyn Fn(Work) + Sync),
    /// Gets a reader of each compressed layer while it is written (a push
    /// sends the bytes as they are made); it ends once the store has the
    /// blob, whose digest it then tells.
    pub on_writing: Option<&'a (dyn Fn(BlobFollower) + Sync)>,
}

/// The manifest or index `image` as it is sent with its layers
/// compressed as `want` says: `image` itself when no layer changes, else
/// a document stored beside it. `observers` hear of each compression.
pub fn distribution_image(
    store: &Store,
    image: &Descriptor,
    want: Distribution,
    observers: Observers<'_>,
) -> Result<Descriptor, DistributeError> {
    let blobs = store.blobs();
    let media_type = image.media_type().to_string();
    if document_kind(&media_type).is_none() || !blobs.contains(image.digest()) {
        // Another platform of a pulled index that is not stored: as is.
        return Ok(image.clone());
    }
    let bytes = blobs.read(image.digest())?;
    let bad = |reason: String| DistributeError::Document {
        digest: image.digest().clone(),
        reason,
    };
    let document =
        ManifestOrIndex::parse(&bytes, Some(&media_type)).map_err(|e| bad(e.to_string()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let changed = match document {
        ManifestOrIndex::Index(index) => {
            let mut changed = false;
            for (i, child) in index.manifests().iter().enumerate() {
                let sent = distribution_image(store, child, want, observers)?;
                if sent.digest() != child.digest() {
                    set_entry(&mut value, "manifests", i, None, &sent);
                    changed = true;
                }
            }
            changed
        }
        ManifestOrIndex::Manifest(manifest) => {
            let docker = value.get("mediaType").and_then(|m| m.as_str()) == Some(DOCKER_MANIFEST);
            let layers = distribution_layers(store, manifest.layers(), want, observers)?;
            let mut changed = false;
            for (i, (sent, stored)) in layers.iter().zip(manifest.layers()).enumerate() {
                if sent.digest() != stored.digest() {
                    let media_type = match (docker, want.codec.compression()) {
                        (true, Compression::Gzip) => DOCKER_LAYER_GZIP,
                        (_, compression) => compression.media_type(),
                    };
                    set_entry(&mut value, "layers", i, Some(media_type), sent);
                    changed = true;
                }
            }
            changed
        }
    };
    if !changed {
        return Ok(image.clone());
    }
    let bytes = canonical_json(&value).expect("a JSON value always serializes");
    let digest = blobs.put(&bytes)?;
    let mut sent = image.clone();
    sent.set_digest(digest);
    sent.set_size(bytes.len() as u64);
    Ok(sent)
}

/// Points entry `i` of the list `field` of `document` at `sent` (with
/// `media_type` when given).
fn set_entry(
    document: &mut serde_json::Value,
    field: &str,
    i: usize,
    media_type: Option<&str>,
    sent: &Descriptor,
) {
    if let Some(entry) = document
        .get_mut(field)
        .and_then(|list| list.get_mut(i))
        .and_then(|entry| entry.as_object_mut())
    {
        entry.insert("digest".into(), sent.digest().to_string().into());
        entry.insert("size".into(), sent.size().into());
        if let Some(media_type) = media_type {
            entry.insert("mediaType".into(), media_type.into());
        }
    }
}

/// Each of `layers` as it is sent: its compressed variant where `want`
/// rewrites it, else itself; several are compressed at once.
pub fn distribution_layers(
    store: &Store,
    layers: &[Descriptor],
    want: Distribution,
    observers: Observers<'_>,
) -> Result<Vec<Descriptor>, DistributeError> {
    let mut jobs = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        // What is not a layer (an artifact's blob) is sent as it is; a
        // layer type that leaves the compression open, as its bytes say.
        let stored = match Compression::from_media_type(layer.media_type().as_ref()) {
            Err(_) => continue,
            Ok(Some(known)) => known,
            Ok(None) => sniff(store, layer.digest())?,
        };
        if want.converts(stored) {
            jobs.push(i);
        }
    }
    let mut sent: Vec<Descriptor> = layers.to_vec();
    if jobs.is_empty() {
        return Ok(sent);
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(jobs.len());
    let queue = Mutex::new(jobs.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(i) = next else { break };
                    let Some(layer) = layers.get(i) else { break };
                    let result = variant(store, layer, want, observers);
                    let failed = result.is_err();
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, result));
                    if failed {
                        break;
                    }
                }
            });
        }
    });
    for (i, result) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        if let Some(slot) = sent.get_mut(i) {
            *slot = result?;
        }
    }
    Ok(sent)
}

/// The compression a stored blob's first bytes show.
fn sniff(store: &Store, digest: &Digest) -> Result<Compression, DistributeError> {
    let mut head = [0u8; 4];
    let mut file = store.blobs().open(digest)?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(source) => {
                return Err(DistributeError::Layer {
                    digest: digest.clone(),
                    source: LayerError::ReadTar {
                        after: String::new(),
                        source,
                    },
                });
            }
        }
    }
    Ok(Compression::sniff(&head[..read]))
}

/// The variant of `layer` that `want` asks for: the memo's, or made now
/// and remembered.
fn variant(
    store: &Store,
    layer: &Descriptor,
    want: Distribution,
    observers: Observers<'_>,
) -> Result<Descriptor, DistributeError> {
    let source = layer.digest();
    let variants = store.variants();
    let kind = want.codec.variant_name();
    if let Some(known) = variants.get(source, &kind) {
        return Ok(known);
    }
    let layer_err = |source_err| DistributeError::Layer {
        digest: source.clone(),
        source: source_err,
    };
    let blobs = store.blobs();
    let file = blobs.open(source)?;
    let media_type = layer.media_type().to_string();
    let plain =
        Compression::from_media_type(&media_type).ok().flatten() == Some(Compression::Uncompressed);
    let mut meter = WorkMeter::new(
        WorkKind::Export {
            layer: source.clone(),
        },
        Some(layer.size()),
        observers.on_work,
    );
    let mut writer = blobs.writer(None)?;
    if let Some(on_writing) = observers.on_writing {
        on_writing(writer.follow()?);
    }
    let (writer, digests) = write_compressed(writer, want.codec, |out| {
        let mut tar = decompress(
            Metered {
                inner: file,
                done: 0,
                meter: &mut meter,
            },
            &media_type,
        )?;
        std::io::copy(&mut tar, out)
            .map(drop)
            .map_err(|source| LayerError::Write {
                action: "reading the stored layer",
                source,
            })
    })
    .map_err(layer_err)?;
    meter.finish();
    let LayerDigests { diff_id, .. } = digests;
    if plain && &diff_id != source {
        return Err(DistributeError::Damaged {
            digest: source.clone(),
            actual: diff_id,
        });
    }
    let stored = writer.commit()?;
    let sent = Descriptor::new(
        MediaType::from(want.codec.compression().media_type()),
        stored.size,
        stored.digest,
    );
    variants.put(source, &kind, &sent)?;
    Ok(sent)
}

/// A reader that tells a [`WorkMeter`] how many bytes went through it.
struct Metered<'a, R, F: FnMut(Work)> {
    inner: R,
    done: u64,
    meter: &'a mut WorkMeter<F>,
}

impl<R: Read, F: FnMut(Work)> Read for Metered<'_, R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.meter.advance(self.done);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::new_manifest;

    const QUIET: Observers<'static> = Observers {
        on_work: &|_| {},
        on_writing: None,
    };

    fn tar_of(content: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "f", content).unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(tar: &[u8]) -> Vec<u8> {
        let (blob, _) = write_compressed(Vec::new(), Compression::Gzip, |out| {
            out.write_all(tar).map_err(|source| LayerError::Write {
                action: "test",
                source,
            })
        })
        .unwrap();
        blob
    }

    /// A stored manifest over a plain layer and a gzip one.
    fn image(store: &Store) -> (Descriptor, [Descriptor; 2]) {
        let blobs = store.blobs();
        let plain = tar_of(b"plain");
        let plain = Descriptor::new(
            MediaType::ImageLayer,
            plain.len() as u64,
            blobs.put(&plain).unwrap(),
        );
        let zipped = gzip(&tar_of(b"zipped"));
        let zipped = Descriptor::new(
            MediaType::ImageLayerGzip,
            zipped.len() as u64,
            blobs.put(&zipped).unwrap(),
        );
        let config = Descriptor::new(MediaType::ImageConfig, 2, blobs.put(b"{}").unwrap());
        let manifest = new_manifest(config, vec![plain.clone(), zipped.clone()]);
        let bytes = canonical_json(&manifest).unwrap();
        let top = Descriptor::new(
            MediaType::ImageManifest,
            bytes.len() as u64,
            blobs.put(&bytes).unwrap(),
        );
        (top, [plain, zipped])
    }

    fn layers(store: &Store, top: &Descriptor) -> Vec<Descriptor> {
        let bytes = store.blobs().read(top.digest()).unwrap();
        match ManifestOrIndex::parse(&bytes, None).unwrap() {
            ManifestOrIndex::Manifest(m) => m.layers().clone(),
            ManifestOrIndex::Index(_) => panic!("a manifest"),
        }
    }

    #[test]
    fn plain_layers_are_compressed_once_and_compressed_ones_pass_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (top, [plain, zipped]) = image(&store);

        let sent = distribution_image(&store, &top, Distribution::default(), QUIET).unwrap();
        assert_ne!(sent.digest(), top.digest());
        let sent_layers = layers(&store, &sent);
        assert_eq!(sent_layers[0].media_type(), &MediaType::ImageLayerGzip);
        assert_eq!(
            store.blobs().read(sent_layers[0].digest()).unwrap(),
            gzip(&tar_of(b"plain")),
            "the pinned compressor, as a build's layer was compressed"
        );
        assert_eq!(sent_layers[1], zipped, "a gzip layer is sent as it is");
        assert_eq!(
            layers(&store, &top)[0],
            plain,
            "the stored image is unchanged"
        );

        // Again: the memo's variant, the same document.
        let again = distribution_image(&store, &top, Distribution::default(), QUIET).unwrap();
        assert_eq!(again, sent);

        // zstd: the plain layer as zstd, the gzip one as it is unless forced.
        let zstd = Distribution {
            codec: Codec::pinned(Compression::Zstd),
            force: false,
        };
        let sent = layers(
            &store,
            &distribution_image(&store, &top, zstd, QUIET).unwrap(),
        );
        assert_eq!(sent[0].media_type(), &MediaType::ImageLayerZstd);
        assert_eq!(sent[1], zipped);
        let forced = Distribution {
            force: true,
            ..zstd
        };
        let sent = layers(
            &store,
            &distribution_image(&store, &top, forced, QUIET).unwrap(),
        );
        assert_eq!(sent[1].media_type(), &MediaType::ImageLayerZstd);

        // A memo entry whose blob is gone is compressed again.
        store.blobs().remove(sent[1].digest()).unwrap();
        let remade = layers(
            &store,
            &distribution_image(&store, &top, forced, QUIET).unwrap(),
        );
        assert_eq!(remade, sent);
        assert!(store.blobs().contains(sent[1].digest()));
    }

    #[test]
    fn a_follower_reads_each_compressed_layer_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (top, _) = image(&store);
        let readers = Mutex::new(Vec::new());
        let on_writing = |mut follower: BlobFollower| {
            let ending = follower.ending();
            readers.lock().unwrap().push(std::thread::spawn(move || {
                let mut bytes = Vec::new();
                follower.read_to_end(&mut bytes).unwrap();
                (bytes, ending.finish().unwrap())
            }));
        };
        let observers = Observers {
            on_writing: Some(&on_writing),
            ..QUIET
        };
        let sent = distribution_image(&store, &top, Distribution::default(), observers).unwrap();
        let followed: Vec<_> = readers
            .into_inner()
            .unwrap()
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect();
        let compressed = &layers(&store, &sent)[0];
        assert_eq!(followed.len(), 1, "only the plain layer is compressed");
        let (bytes, stored) = &followed[0];
        assert_eq!(&stored.digest, compressed.digest());
        assert_eq!(bytes, &store.blobs().read(compressed.digest()).unwrap());
    }

    #[test]
    fn a_level_asked_is_the_level_sent_whatever_the_memo_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (top, [plain, zipped]) = image(&store);

        let at = |level| Distribution {
            codec: Codec::with_level(Compression::Gzip, level).unwrap(),
            force: true,
        };
        let pinned = layers(
            &store,
            &distribution_image(&store, &top, Distribution::default(), QUIET).unwrap(),
        );
        let fast = layers(
            &store,
            &distribution_image(&store, &top, at(1), QUIET).unwrap(),
        );
        assert_ne!(fast[0], pinned[0], "the memo's level-5 blob handed back");
        let tar = tar_of(b"plain");
        let (expected, _) = write_compressed(
            Vec::new(),
            Codec::with_level(Compression::Gzip, 1).unwrap(),
            |out| {
                out.write_all(&tar).map_err(|source| LayerError::Write {
                    action: "test",
                    source,
                })
            },
        )
        .unwrap();
        assert_eq!(store.blobs().read(fast[0].digest()).unwrap(), expected);
        assert_eq!(fast[1], zipped, "a gzip layer is kept whatever its level");
        // The same level again: the same bytes; the pinned one still there.
        let again = layers(
            &store,
            &distribution_image(&store, &top, at(1), QUIET).unwrap(),
        );
        assert_eq!(again, fast);
        assert_eq!(
            store.variants().get(plain.digest(), "gzip5m"),
            Some(pinned[0].clone())
        );
        assert_eq!(
            store.variants().get(plain.digest(), "gzip1m"),
            Some(fast[0].clone())
        );
    }

    #[test]
    fn a_damaged_plain_layer_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (top, [plain, _]) = image(&store);
        let path = store.blobs().path(plain.digest()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = distribution_image(&store, &top, Distribution::default(), QUIET).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("layer {} is damaged", plain.digest())),
            "{err}"
        );
    }
}
