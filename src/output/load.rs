//! `builder load`: reads back what `builder save` (and `docker save` since
//! docker 25, and `-o type=oci|docker`) writes: a tar of an OCI image
//! layout, with or without docker's `manifest.json`. Every blob goes into
//! the store through its verified writer (bytes that do not hash to their
//! name are refused), and each image is named as `index.json` names it
//! (`io.containerd.image.name`), else as `manifest.json`'s `RepoTags` do.
//! Archives of docker before 25 (no `index.json`) are read by
//! [`super::load_legacy`].

use super::OutputError;
use super::load_legacy::{self, LegacyFiles};
use super::oci_layout::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Blobs, SavedImage};
use crate::image::{ManifestOrIndex, Reference};
use crate::store::{Expected, MAX_DOCUMENT_SIZE, Store};
use oci_spec::image::{Descriptor, Digest};
use std::io::{self, Read};
use std::path::Path;

/// Why an archive could not be loaded (beyond the store's and I/O errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the tar failed.
    #[error("cannot read the archive: {0}")]
    Read(#[source] io::Error),
    /// The archive has neither `index.json` nor docker's `manifest.json`.
    #[error(
        "the archive has no index.json or manifest.json: it is no OCI layout or docker archive"
    )]
    NoIndex,
    /// `manifest.json` names a file the archive lacks.
    #[error("manifest.json names {file}, which is not in the archive")]
    Missing {
        /// The file.
        file: String,
    },
    /// A file's bytes are not the ones its name or the config promise.
    #[error("{file} in the archive does not match: its digest is {actual}, expected {expected}")]
    Mismatch {
        /// The file.
        file: String,
        /// Its bytes' digest.
        actual: String,
        /// The digest promised, and by what.
        expected: String,
    },
    /// An image config in a docker archive is unreadable or does not fit
    /// its layers.
    #[error("config {file} in the archive: {reason}")]
    BadConfig {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// `index.json` or `manifest.json` is unreadable.
    #[error("{file} in the archive is unreadable: {reason}")]
    BadFile {
        /// The file.
        file: &'static str,
        /// Why.
        reason: String,
    },
    /// A blob named by an image is not in the archive.
    #[error(transparent)]
    Incomplete(#[from] OutputError),
    /// A blob could not be stored (its bytes do not match its name…).
    #[error("blob {path} in the archive: {source}")]
    Blob {
        /// Its path in the archive.
        path: String,
        /// Why.
        source: Box<crate::store::StoreError>,
    },
    /// The store refused a name.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What a load stored: the images with the names it gave them.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Each image with its names (none: only its ID tells it).
    pub images: Vec<(SavedImage, Digest)>,
}

/// Loads the archive read from `input` into `store`.
pub fn load(store: &Store, input: impl Read) -> Result<Loaded, LoadError> {
    let _lease = store.lease()?;
    let mut archive = tar::Archive::new(input);
    let mut index = None;
    let mut docker_manifest = None;
    let mut legacy = LegacyFiles::default();
    for entry in archive.entries().map_err(LoadError::Read)? {
        let mut entry = entry.map_err(LoadError::Read)?;
        let path = entry.path().map_err(LoadError::Read)?.into_owned();
        let path = path.strip_prefix("./").unwrap_or(&path).to_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() && LegacyFiles::wanted(&path) {
            if let Some(target) = entry.link_name().map_err(LoadError::Read)? {
                legacy.link(&path, &target);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(hex) = blob_hex(&path) {
            let digest: Digest =
                format!("sha256:{hex}")
                    .parse()
                    .map_err(|e: oci_spec::OciSpecError| LoadError::BadFile {
                        file: "a blob name",
                        reason: e.to_string(),
                    })?;
            store_blob(store, &digest, entry.header().size().ok(), &mut entry).map_err(
                |source| LoadError::Blob {
                    path: path.display().to_string(),
                    source: Box::new(source),
                },
            )?;
        } else if path == Path::new("index.json") {
            index = Some(read_document(&mut entry, "index.json")?);
        } else if path == Path::new("manifest.json") {
            docker_manifest = Some(read_document(&mut entry, "manifest.json")?);
        } else if LegacyFiles::wanted(&path) {
            legacy.store(store, &path, &mut entry)?;
        }
    }
    let Some(index) = index else {
        return match docker_manifest {
            Some(manifest) => Ok(Loaded {
                images: load_legacy::import(store, &manifest, &legacy)?,
            }),
            None => Err(LoadError::NoIndex),
        };
    };
    let index = match ManifestOrIndex::parse(&index, Some(crate::image::media::OCI_INDEX)) {
        Ok(ManifestOrIndex::Index(index)) => index,
        Ok(ManifestOrIndex::Manifest(_)) => {
            return Err(LoadError::BadFile {
                file: "index.json",
                reason: "it is a manifest, not an index".to_owned(),
            });
        }
        Err(e) => {
            return Err(LoadError::BadFile {
                file: "index.json",
                reason: e.to_string(),
            });
        }
    };
    let repo_tags = docker_repo_tags(docker_manifest.as_deref())?;
    let mut loaded: Vec<(SavedImage, Digest)> = Vec::new();
    for entry in index.manifests() {
        let mut top = entry.clone();
        top.set_annotations(None);
        // Every blob it needs is there, with its size.
        Blobs::collect(store, [&top])?;
        let id = store.image_id(&top)?;
        let mut names: Vec<Reference> = entry_name(entry).into_iter().collect();
        if names.is_empty()
            && let Some((_, tags)) = repo_tags.iter().find(|(config, _)| *config == id.digest())
        {
            names = tags.clone();
        }
        for name in &names {
            store.refs().set(name, top.clone())?;
        }
        match loaded.iter_mut().find(|(image, _)| image.top == top) {
            Some((image, _)) => image.names.extend(names),
            None => loaded.push((SavedImage { top, names }, id)),
        }
    }
    Ok(Loaded { images: loaded })
}

/// The hex of `blobs/sha256/<hex>`.
fn blob_hex(path: &Path) -> Option<String> {
    let rest = path.strip_prefix("blobs/sha256").ok()?;
    let hex = rest.to_str()?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| hex.to_owned())
}

/// Writes one blob through the store's verifying writer (a blob already
/// stored is read past).
fn store_blob(
    store: &Store,
    digest: &Digest,
    size: Option<u64>,
    entry: &mut impl Read,
) -> Result<(), crate::store::StoreError> {
    let blobs = store.blobs();
    if blobs.contains(digest) && size.is_some_and(|s| blobs.size(digest).ok() == Some(s)) {
        return Ok(());
    }
    let mut writer = blobs.writer(Some(Expected {
        digest: digest.clone(),
        size,
    }))?;
    let path = blobs.path(digest)?;
    io::copy(entry, &mut writer).map_err(|e| crate::store::StoreError::io("write", &path, e))?;
    writer.commit().map(drop)
}

fn read_document(entry: &mut impl Read, file: &'static str) -> Result<Vec<u8>, LoadError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(LoadError::Read)?;
    if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err(LoadError::BadFile {
            file,
            reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
        });
    }
    Ok(bytes)
}

/// The name an `index.json` entry gives its image: the full name
/// containerd and BuildKit annotate, else a ref name that is a whole
/// reference.
fn entry_name(entry: &Descriptor) -> Option<Reference> {
    let annotations = entry.annotations().as_ref()?;
    annotations
        .get(ANNOTATION_IMAGE_NAME)
        .or_else(|| {
            annotations
                .get(ANNOTATION_REF_NAME)
                .filter(|r| r.contains(':'))
        })
        .and_then(|name| Reference::parse(name).ok())
}

/// `manifest.json`'s `RepoTags`, by the hex of each image's config.
fn docker_repo_tags(manifest: Option<&[u8]>) -> Result<Vec<(String, Vec<Reference>)>, LoadError> {
    let Some(bytes) = manifest else {
        return Ok(Vec::new());
    };
    let items: Vec<load_legacy::Item> =
        serde_json::from_slice(bytes).map_err(|e| LoadError::BadFile {
            file: "manifest.json",
            reason: e.to_string(),
        })?;
    Ok(items
        .into_iter()
        .map(|item| {
            let hex = item
                .config
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let tags = item
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            (hex, tags)
        })
        .collect())
}
