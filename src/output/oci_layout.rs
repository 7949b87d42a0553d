//! `type=oci`: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) holding an image and everything it references, with
//! the image's names annotated on its `index.json` entry as BuildKit does.
//! The same files make the base of the Docker archive.

use super::archive::{DirSink, READ_ONLY, READ_WRITE, Sink, TarSink};
use super::spec::Destination;
use super::{OutputError, stream};
use crate::digest::Hasher;
use crate::image::layout::layout_header;
use crate::image::manifest::{canonical_json, new_index};
use crate::image::media::document_kind;
use crate::image::{ManifestOrIndex, Reference};
use crate::store::Store;
use oci_spec::image::{Descriptor, Digest, ImageIndex};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// containerd's annotation with the image's full name, which BuildKit and
/// `docker save` put on each `index.json` entry.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation with the tag an `index.json` entry goes by.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image an archive holds: its manifest (or index) and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedImage {
    /// The manifest or index.
    pub top: Descriptor,
    /// The names it goes by in the archive.
    pub names: Vec<Reference>,
}

/// The blobs an image needs, found by walking it from its top descriptor
/// and checked present with their announced sizes before anything is written.
pub(super) struct Blobs {
    /// By hex digest, so they are written in a fixed order.
    by_hex: BTreeMap<String, Descriptor>,
}

impl Blobs {
    /// Walks the manifests or indexes `tops` down to configs and layers
    /// (subjects are left out: they are other images).
    pub(super) fn collect<'a>(
        store: &Store,
        tops: impl IntoIterator<Item = &'a Descriptor>,
    ) -> Result<Self, OutputError> {
        let blobs = store.blobs();
        let mut by_hex = BTreeMap::new();
        let mut pending: Vec<Descriptor> = tops.into_iter().cloned().collect();
        while let Some(descriptor) = pending.pop() {
            let digest = descriptor.digest();
            if by_hex.contains_key(digest.digest()) {
                continue;
            }
            let actual = blobs.size(digest)?;
            if actual != descriptor.size() {
                return Err(OutputError::SizeMismatch {
                    digest: digest.clone(),
                    expected: descriptor.size(),
                    actual,
                });
            }
            let media_type = descriptor.media_type().to_string();
            if document_kind(&media_type).is_some() {
                let bytes = blobs.read(digest)?;
                let document =
                    ManifestOrIndex::parse(&bytes, Some(&media_type)).map_err(|source| {
                        OutputError::Document {
                            digest: digest.clone(),
                            source,
                        }
                    })?;
                match document {
                    ManifestOrIndex::Manifest(m) => {
                        pending.push(m.config().clone());
                        pending.extend(m.layers().iter().cloned());
                    }
                    ManifestOrIndex::Index(i) => pending.extend(i.manifests().iter().cloned()),
                }
            }
            by_hex.insert(digest.digest().to_owned(), descriptor);
        }
        Ok(Self { by_hex })
    }

    /// Writes `blobs/`, `blobs/sha256/` and every blob, streamed from the
    /// store and verified against its digest on the way.
    pub(super) fn write(&self, store: &Store, sink: &mut dyn Sink) -> Result<(), OutputError> {
        sink.dir("blobs")?;
        sink.dir("blobs/sha256")?;
        for (hex, descriptor) in &self.by_hex {
            let path = blob_path(hex);
            if sink.holds(&path, descriptor.size()) {
                continue;
            }
            let file = store.blobs().open(descriptor.digest())?;
            let mut verified = Verified::new(file, descriptor);
            let written = sink.file(&path, READ_ONLY, descriptor.size(), &mut verified);
            if let Some(error) = verified.mismatch {
                return Err(error);
            }
            written?;
        }
        Ok(())
    }
}

/// Where a blob lives in a layout.
pub(super) fn blob_path(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

/// The `index.json` entries for an image going by `names`: one per name,
/// annotated with the full name and its tag; one without names when there
/// are none.
pub(super) fn index_entries(top: &Descriptor, names: &[Reference]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![top.clone()];
    }
    names
        .iter()
        .map(|name| {
            let mut annotations =
                HashMap::from([(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string())]);
            if let Some(tag) = name.tag() {
                annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
            }
            let mut entry = top.clone();
            entry.set_annotations(Some(annotations));
            entry
        })
        .collect()
}

/// The documents at the top of a layout, by file name.
pub(super) fn top_files(
    index: &ImageIndex,
) -> Result<BTreeMap<&'static str, Vec<u8>>, OutputError> {
    Ok(BTreeMap::from([
        (
            "index.json",
            canonical_json(index).map_err(OutputError::Json)?,
        ),
        (
            "oci-layout",
            canonical_json(&layout_header()).map_err(OutputError::Json)?,
        ),
    ]))
}

/// Writes the blobs, then the top files in name order (after `blobs/`,
/// so the whole archive is sorted and an index never precedes its blobs).
pub(super) fn write_layout(
    store: &Store,
    blobs: &Blobs,
    files: &BTreeMap<&'static str, Vec<u8>>,
    sink: &mut dyn Sink,
) -> Result<(), OutputError> {
    blobs.write(store, sink)?;
    for (name, bytes) in files {
        let mode = if *name == "oci-layout" {
            READ_ONLY
        } else {
            READ_WRITE
        };
        sink.file(name, mode, bytes.len() as u64, &mut &bytes[..])?;
    }
    Ok(())
}

/// Writes the layout of `images` as a tar stream to `dest`.
pub(super) fn write_tar(
    store: &Store,
    images: &[SavedImage],
    dest: &Destination,
) -> Result<(), OutputError> {
    let blobs = Blobs::collect(store, images.iter().map(|i| &i.top))?;
    let entries = images
        .iter()
        .flat_map(|i| index_entries(&i.top, &i.names))
        .collect();
    let files = top_files(&new_index(entries))?;
    stream::write(dest, |out| {
        let mut sink = TarSink::new(out);
        write_layout(store, &blobs, &files, &mut sink)?;
        sink.finish().map(drop)
    })
}

/// Writes the layout of `top` into the directory `dir` as the entry tagged
/// `tag` (only `org.opencontainers.image.ref.name`, no image name), in
/// place of any entry with that tag; the layout's other entries and blobs
/// stay, and blobs it holds are not written again.
pub fn write_dir_tagged(
    store: &Store,
    top: &Descriptor,
    tag: &str,
    dir: &Path,
) -> Result<(), OutputError> {
    let blobs = Blobs::collect(store, [top])?;
    let mut ours = top.clone();
    ours.set_annotations(Some(HashMap::from([(
        ANNOTATION_REF_NAME.to_owned(),
        tag.to_owned(),
    )])));
    let mut entries = existing_entries(dir)?;
    entries.retain(|kept| ref_name(kept).is_none_or(|t| t != tag));
    entries.push(ours);
    let files = top_files(&new_index(entries))?;
    let mut sink = DirSink::new(dir);
    sink.dir("")?;
    write_layout(store, &blobs, &files, &mut sink)
}

/// Writes the layout of `top` into the directory `dir`. An image layout
/// already there is added to: its blobs stay, and its `index.json` keeps
/// the entries whose tag none of `names` takes over.
pub(super) fn write_dir(
    store: &Store,
    top: &Descriptor,
    names: &[Reference],
    dir: &Path,
) -> Result<(), OutputError> {
    let blobs = Blobs::collect(store, [top])?;
    let ours = index_entries(top, names);
    let mut entries = existing_entries(dir)?;
    entries.retain(|kept| {
        let tag = ref_name(kept);
        !ours.contains(kept) && (tag.is_none() || ours.iter().all(|new| ref_name(new) != tag))
    });
    entries.extend(ours);
    let files = top_files(&new_index(entries))?;
    let mut sink = DirSink::new(dir);
    sink.dir("")?;
    write_layout(store, &blobs, &files, &mut sink)
}

fn ref_name(entry: &Descriptor) -> Option<&String> {
    entry
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
}

/// The entries of the `index.json` already in `dir`, if any.
fn existing_entries(dir: &Path) -> Result<Vec<Descriptor>, OutputError> {
    let path = dir.join("index.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OutputError::io("read", &path)(e)),
    };
    match ManifestOrIndex::parse(&bytes, Some(crate::image::media::OCI_INDEX)) {
        Ok(ManifestOrIndex::Index(index)) => Ok(index.manifests().clone()),
        Ok(ManifestOrIndex::Manifest(_)) => Err(OutputError::ExistingIndex {
            path,
            reason: "it is a manifest, not an index".to_owned(),
        }),
        Err(e) => Err(OutputError::ExistingIndex {
            path,
            reason: e.to_string(),
        }),
    }
}

/// A blob read from the store, hashed as it goes; at its end, a digest or
/// size that differs from the descriptor's fails the read (so a directory
/// sink never renames it into place) and is kept for the error report.
struct Verified<'d> {
    inner: io::Take<File>,
    hasher: Hasher,
    descriptor: &'d Descriptor,
    mismatch: Option<OutputError>,
}

impl<'d> Verified<'d> {
    fn new(file: File, descriptor: &'d Descriptor) -> Self {
        Self {
            inner: file.take(descriptor.size()),
            hasher: Hasher::new(),
            descriptor,
            mismatch: None,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        let actual: Digest = self.hasher.clone().finish();
        let size = self.hasher.len();
        if &actual == self.descriptor.digest() && size == self.descriptor.size() {
            return Ok(());
        }
        self.mismatch = Some(OutputError::Corrupt {
            digest: self.descriptor.digest().clone(),
            actual,
        });
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "blob does not match its digest",
        ))
    }
}

impl Read for Verified<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match buf.get(..n) {
            Some(read) if n > 0 => self.hasher.update(read),
            _ if !buf.is_empty() => self.check()?,
            _ => {}
        }
        Ok(n)
    }
}
