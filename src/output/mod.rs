//! The local outputs of a finished image: an OCI image layout, a Docker
//! archive, or the final filesystem (a directory or a tar), written from
//! the image's blobs in the store. `--output` values are parsed here too;
//! `type=image`/`type=registry` are represented for the caller, which
//! keeps and pushes the image itself.

mod archive;
mod docker_archive;
mod load;
mod load_legacy;
mod local;
mod oci_layout;
mod spec;
mod stream;

pub use load::{LoadError, Loaded, load};
pub use oci_layout::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, SavedImage, write_dir_tagged};
pub use spec::{Destination, Export, OciTarget, Output, OutputSpecError};
pub use stream::docker_cli;

use crate::image::config::ConfigError;
use crate::image::{ManifestError, ManifestOrIndex, PlatformSpec, Reference};
use crate::layer::LayerError;
use crate::layer::extract::ExtractWarning;
use crate::store::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest, ImageManifest};
use std::io;
use std::path::{Path, PathBuf};

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The store could not give a blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest or index in the store is unreadable.
    #[error("stored document {digest} is unreadable")]
    Document {
        /// The blob concerned.
        digest: Digest,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The image config in the store is unreadable.
    #[error("stored image config {digest} is unreadable")]
    Config {
        /// The blob concerned.
        digest: Digest,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// The output holds one platform's image and was given an index.
    #[error(
        "{digest} is a multi-platform index; a type={kind} output holds one platform's image \
         (build for one --platform, or use -o type=oci for every platform)"
    )]
    NotAManifest {
        /// The index.
        digest: Digest,
        /// The output type.
        kind: &'static str,
    },
    /// An index entry without a platform, which gets no directory.
    #[error("index entry {0} names no platform")]
    NoPlatform(Digest),
    /// A stored blob's size differs from its descriptor's.
    #[error("blob {digest} in the store is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The stored size.
        actual: u64,
    },
    /// A stored blob's bytes do not hash to its digest.
    #[error("blob {digest} in the store is corrupt: its content hashes to {actual}")]
    Corrupt {
        /// The blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// The config and the manifest disagree on the number of layers.
    #[error("the image config lists {config} layers but the manifest {manifest}")]
    LayerCount {
        /// Diff IDs in the config.
        config: usize,
        /// Layers in the manifest.
        manifest: usize,
    },
    /// A layer's uncompressed content is not what the config says.
    #[error("layer {digest} unpacks to diff ID {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// The config's diff ID.
        expected: String,
        /// The diff ID of what was unpacked.
        actual: Digest,
    },
    /// A layer could not be unpacked.
    #[error("cannot unpack layer {digest}")]
    Layer {
        /// The layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// The unpacked filesystem could not be written as a tar.
    #[error("cannot write the filesystem as a tar")]
    Filesystem(#[source] LayerError),
    /// A filesystem operation on the destination failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the output stream failed.
    #[error("cannot write the output stream")]
    Write {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A document could not be serialized.
    #[error("cannot serialize a document")]
    Json(#[source] serde_json::Error),
    /// The destination directory holds an `index.json` that is not an index.
    #[error("{path} is not an OCI image index ({reason}); choose another dest")]
    ExistingIndex {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// `--load` or `type=docker` without `dest`, and no docker CLI.
    #[error("there is no docker CLI on PATH to load the image into; give type=docker a dest=FILE")]
    NoDocker,
    /// `docker load` failed.
    #[error(
        "docker load failed ({status}): {stderr} (the image is in builder's store all the same)"
    )]
    DockerLoad {
        /// How it exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// A binary stream would go to the terminal.
    #[error("refusing to write a tar archive to the terminal; give dest=FILE or redirect stdout")]
    Terminal,
}

impl OutputError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// What an export did that the user should hear about.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// What unpacking the filesystem could not reproduce (rootless owners,
    /// device nodes…); empty for image outputs.
    pub warnings: Vec<ExtractWarning>,
}

impl Export {
    /// Writes the image whose manifest (or, for `type=oci`, index) is `top`
    /// from `store`. The image goes by this output's `name=` names, or by
    /// `tags` (the build's `-t`) when it has none, as buildx does.
    pub fn write(
        &self,
        store: &Store,
        top: &Descriptor,
        tags: &[Reference],
    ) -> Result<ExportReport, OutputError> {
        // Keeps prune from removing blobs while they are read.
        let _lease = store.lease()?;
        let names = |own: &[Reference]| {
            let chosen = if own.is_empty() { tags } else { own };
            let mut names: Vec<Reference> = Vec::with_capacity(chosen.len());
            for name in chosen {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            names
        };
        let mut report = ExportReport::default();
        match self {
            Export::Local { dest } => report.warnings = local::write_dir(store, top, dest)?,
            Export::Tar { dest } => report.warnings = local::write_tar(store, top, dest)?,
            Export::Oci {
                target: OciTarget::Tar(dest),
                names: own,
                ..
            } => oci_layout::write_tar(store, &[saved(top, names(own))], dest)?,
            Export::Oci {
                target: OciTarget::Directory(dir),
                names: own,
                ..
            } => oci_layout::write_dir(store, top, &names(own), dir)?,
            Export::Docker {
                dest, names: own, ..
            } => docker_archive::write(store, &[saved(top, names(own))], dest)?,
        }
        Ok(report)
    }
}

fn saved(top: &Descriptor, names: Vec<Reference>) -> SavedImage {
    SavedImage {
        top: top.clone(),
        names,
    }
}

/// The archive formats of `builder save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// What `docker save` writes (an OCI layout with `manifest.json`).
    Docker,
    /// An OCI image layout as a tar.
    Oci,
}

/// Writes `images` from `store` as one archive to `dest` (`builder save`).
pub fn save(
    store: &Store,
    images: &[SavedImage],
    format: ArchiveFormat,
    dest: &Destination,
) -> Result<(), OutputError> {
    // Keeps prune from removing blobs while they are read.
    let _lease = store.lease()?;
    match format {
        ArchiveFormat::Docker => docker_archive::write(store, images, dest),
        ArchiveFormat::Oci => oci_layout::write_tar(store, images, dest),
    }
}

/// The manifest `top` names; an index is refused for a `kind` output,
/// which holds one platform's image.
fn read_manifest(
    store: &Store,
    top: &Descriptor,
    kind: &'static str,
) -> Result<ImageManifest, OutputError> {
    let digest = top.digest();
    let bytes = store.blobs().read(digest)?;
    let media_type = top.media_type().to_string();
    match ManifestOrIndex::parse(&bytes, Some(&media_type)) {
        Ok(ManifestOrIndex::Manifest(manifest)) => Ok(*manifest),
        Ok(ManifestOrIndex::Index(_)) => Err(OutputError::NotAManifest {
            digest: digest.clone(),
            kind,
        }),
        Err(source) => Err(OutputError::Document {
            digest: digest.clone(),
            source,
        }),
    }
}

/// The platforms' manifests of the index `top`, each with the directory
/// buildx gives it (`linux_arm64`, `linux_arm_v7`); `None` when `top` is
/// one image's manifest. An entry without a platform is refused.
fn platform_images(
    store: &Store,
    top: &Descriptor,
) -> Result<Option<Vec<(String, Descriptor)>>, OutputError> {
    let digest = top.digest();
    let bytes = store.blobs().read(digest)?;
    let media_type = top.media_type().to_string();
    let document = ManifestOrIndex::parse(&bytes, Some(&media_type)).map_err(|source| {
        OutputError::Document {
            digest: digest.clone(),
            source,
        }
    })?;
    let ManifestOrIndex::Index(index) = document else {
        return Ok(None);
    };
    index
        .manifests()
        .iter()
        .map(|entry| {
            let platform = entry
                .platform()
                .as_ref()
                .ok_or_else(|| OutputError::NoPlatform(entry.digest().clone()))?;
            let dir = PlatformSpec::of(platform).to_string().replace('/', "_");
            Ok((dir, entry.clone()))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}
