//! The image a build produces: the target stage's config (with its
//! `created` time) as a canonical JSON blob, and an OCI manifest over it
//! and the stage's layers, both stored as blobs; for a multi-platform
//! build, an OCI index over each platform's manifest.
//!
//! An image without layers (a `FROM scratch` with metadata only) gets
//! `layers: []`, as BuildKit writes it, although the OCI image-spec's
//! schema asks for at least one layer.

use super::PlatformImage;
use super::stage::StageResult;
use crate::exec::meta;
use crate::image::manifest::{canonical_json, new_index, new_manifest};
use crate::store::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest, MediaType};

/// Stores the config and manifest of `result`, with `labels` (`--label`)
/// set over the Dockerfile's and `inline_cache` (`--cache-to type=inline`)
/// under its key; returns the manifest's descriptor and the config's digest.
pub(super) fn write(
    store: &Store,
    result: &StageResult,
    labels: &[(String, String)],
    source_date_epoch: Option<u64>,
    inline_cache: Option<serde_json::Value>,
) -> Result<(Descriptor, Digest), StoreError> {
    let blobs = store.blobs();
    let mut config = result.config.clone();
    if !labels.is_empty() {
        let own = config.config.labels.get_or_insert_with(Default::default);
        own.extend(labels.iter().cloned());
    }
    let fixed = source_date_epoch.map(|epoch| meta::timestamp(Some(epoch)));
    meta::finish(&mut config, fixed.as_deref());
    let config_bytes = match inline_cache {
        None => config.to_canonical_json(),
        Some(records) => {
            let mut value =
                serde_json::to_value(&config).expect("an image config always serializes");
            if let Some(object) = value.as_object_mut() {
                object.insert(super::cache_remote::INLINE_KEY.to_owned(), records);
            }
            canonical_json(&value).expect("an image config always serializes")
        }
    };
    // `--label`s come last: they too may make it larger than a config may be.
    if config_bytes.len() as u64 > crate::store::MAX_DOCUMENT_SIZE {
        return Err(StoreError::DocumentTooLarge {
            digest: crate::digest::sha256(&config_bytes),
            size: config_bytes.len() as u64,
            limit: crate::store::MAX_DOCUMENT_SIZE,
        });
    }
    let config_digest = blobs.put(&config_bytes)?;
    let config_descriptor = Descriptor::new(
        MediaType::ImageConfig,
        config_bytes.len() as u64,
        config_digest.clone(),
    );
    let layers = result.layers.iter().map(|l| l.blob.clone()).collect();
    let manifest = new_manifest(config_descriptor, layers);
    // Strings, numbers and string-keyed maps: serializing cannot fail.
    let manifest_bytes = canonical_json(&manifest).expect("an image manifest always serializes");
    let manifest_digest = blobs.put(&manifest_bytes)?;
    Ok((
        Descriptor::new(
            MediaType::ImageManifest,
            manifest_bytes.len() as u64,
            manifest_digest,
        ),
        config_digest,
    ))
}

/// Stores an OCI index of `images` (each entry with its platform) and
/// returns its descriptor.
pub(super) fn write_index(
    store: &Store,
    images: &[PlatformImage],
) -> Result<Descriptor, StoreError> {
    let entries = images
        .iter()
        .map(|image| {
            let mut entry = image.manifest.clone();
            entry.set_platform(Some(image.platform.to_oci()));
            entry
        })
        .collect();
    let bytes = canonical_json(&new_index(entries)).expect("an image index always serializes");
    let digest = store.blobs().put(&bytes)?;
    Ok(Descriptor::new(
        MediaType::ImageIndex,
        bytes.len() as u64,
        digest,
    ))
}
