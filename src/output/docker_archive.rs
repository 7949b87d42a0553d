//! `type=docker`: the archive `docker load` reads, as `docker save` writes
//! it today: an OCI image layout plus the older `manifest.json` and
//! `repositories` files. Layers go in as stored (gzip is accepted).

use super::archive::TarSink;
use super::oci_layout::{self, Blobs, blob_path};
use super::spec::Destination;
use super::{OutputError, read_manifest, stream};
use crate::image::Reference;
use crate::image::manifest::new_index;
use crate::store::Store;
use oci_spec::image::Descriptor;
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

/// Writes the Docker archive of the manifest `top`, tagged with `names`, to `dest`.
pub(super) fn write(
    store: &Store,
    top: &Descriptor,
    names: &[Reference],
    dest: &Destination,
) -> Result<(), OutputError> {
    let manifest = read_manifest(store, top, "docker")?;
    let blobs = Blobs::collect(store, top)?;
    let tagged: Vec<(String, &str)> = names
        .iter()
        .filter_map(|name| name.tag().map(|tag| (name.familiar_name(), tag)))
        .collect();

    let layers: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| blob_path(l.digest().digest()))
        .collect();
    let item = ManifestItem {
        config: blob_path(manifest.config().digest().digest()),
        repo_tags: tagged
            .iter()
            .map(|(name, tag)| format!("{name}:{tag}"))
            .collect(),
        layers,
    };
    let mut files = oci_layout::top_files(&new_index(oci_layout::index_entries(top, names)))?;
    files.insert(
        "manifest.json",
        serde_json::to_vec(&[item]).map_err(OutputError::Json)?,
    );
    // `repositories` maps each name and tag to the top layer, as `docker
    // save` writes it; an image without layers or names has none.
    if let Some(top_layer) = manifest.layers().last() {
        let mut repositories: BTreeMap<String, BTreeMap<&str, &str>> = BTreeMap::new();
        for (name, tag) in &tagged {
            repositories
                .entry(name.clone())
                .or_default()
                .insert(tag, top_layer.digest().digest());
        }
        if !repositories.is_empty() {
            files.insert(
                "repositories",
                serde_json::to_vec(&repositories).map_err(OutputError::Json)?,
            );
        }
    }
    stream::write(dest, |out| {
        let mut sink = TarSink::new(out);
        oci_layout::write_layout(store, &blobs, &files, &mut sink)?;
        sink.finish().map(drop)
    })
}
