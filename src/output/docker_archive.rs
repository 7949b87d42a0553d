//! `type=docker`: the archive `docker load` reads, as `docker save` writes
//! it today: an OCI image layout plus the older `manifest.json` and
//! `repositories` files. Layers go in as stored (gzip is accepted).

use super::archive::TarSink;
use super::oci_layout::{self, Blobs, SavedImage, blob_path};
use super::spec::Destination;
use super::{OutputError, read_manifest, stream};
use crate::image::manifest::new_index;
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;

/// One image of `manifest.json`, with Docker's field names and order.
#[derive(Debug, Serialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes the Docker archive of `images` to `dest`.
pub(super) fn write(
    store: &Store,
    images: &[SavedImage],
    dest: &Destination,
) -> Result<(), OutputError> {
    let blobs = Blobs::collect(store, images.iter().map(|i| &i.top))?;
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let manifest = read_manifest(store, &image.top, "docker")?;
        let tagged: Vec<(String, &str)> = image
            .names
            .iter()
            .filter_map(|name| name.tag().map(|tag| (name.familiar_name(), tag)))
            .collect();
        items.push(ManifestItem {
            config: blob_path(manifest.config().digest().digest()),
            repo_tags: tagged
                .iter()
                .map(|(name, tag)| format!("{name}:{tag}"))
                .collect(),
            layers: manifest
                .layers()
                .iter()
                .map(|l| blob_path(l.digest().digest()))
                .collect(),
        });
        // `repositories` maps each name and tag to the top layer, as `docker
        // save` writes it; an image without layers or names has none.
        if let Some(top_layer) = manifest.layers().last() {
            for (name, tag) in &tagged {
                repositories
                    .entry(name.clone())
                    .or_default()
                    .insert((*tag).to_owned(), top_layer.digest().digest().to_owned());
            }
        }
    }
    let entries = images
        .iter()
        .flat_map(|i| oci_layout::index_entries(&i.top, &i.names))
        .collect();
    let mut files = oci_layout::top_files(&new_index(entries))?;
    files.insert(
        "manifest.json",
        serde_json::to_vec(&items).map_err(OutputError::Json)?,
    );
    if !repositories.is_empty() {
        files.insert(
            "repositories",
            serde_json::to_vec(&repositories).map_err(OutputError::Json)?,
        );
    }
    stream::write(dest, |out| {
        let mut sink = TarSink::new(out);
        oci_layout::write_layout(store, &blobs, &files, &mut sink)?;
        sink.finish().map(drop)
    })
}
