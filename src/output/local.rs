//! `type=local` and `type=tar`: the image's final filesystem, every layer
//! applied in order with whiteouts, into a directory or as a tar stream.
//! A multi-platform image gives one subdirectory per platform, named as
//! buildx names them (`linux_amd64/`, `linux_arm_v7/`).

use super::spec::Destination;
use super::{OutputError, platform_images, read_manifest, stream};
use crate::image::config::parse_config;
use crate::layer::compress::decompress;
use crate::layer::diff::full_tree;
use crate::layer::extract::{ExtractOptions, ExtractWarning, Ownership, WhiteoutStyle, extract};
use crate::layer::tar::{WriteOptions, write_changes};
use crate::store::Store;
use oci_spec::image::Descriptor;
use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Applies the image's layers into the directory `dest`, creating it if
/// needed. The layers go into a staging directory inside `dest` first and
/// are then moved into place, so a failed export leaves `dest` as it was;
/// what is already in `dest` and not in the image is kept, what the image
/// also has is replaced, as BuildKit's local exporter does.
pub(super) fn write_dir(
    store: &Store,
    top: &Descriptor,
    dest: &Path,
) -> Result<Vec<ExtractWarning>, OutputError> {
    match platform_images(store, top)? {
        None => write_one_dir(store, top, dest),
        Some(images) => {
            let mut warnings = Vec::new();
            for (dir, manifest) in images {
                warnings.extend(write_one_dir(store, &manifest, &dest.join(dir))?);
            }
            Ok(warnings)
        }
    }
}

/// [`write_dir`] for one platform's manifest.
fn write_one_dir(
    store: &Store,
    top: &Descriptor,
    dest: &Path,
) -> Result<Vec<ExtractWarning>, OutputError> {
    let created = !dest.exists();
    fs::create_dir_all(dest).map_err(OutputError::io("create directory", dest))?;
    let staging = tempfile::Builder::new()
        .prefix(".builder-staging-")
        .tempdir_in(dest)
        .map_err(OutputError::io("create a staging directory in", dest))?;
    let root = staging.path();
    // The image's root directory is 0755 unless a layer says otherwise.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))
        .map_err(OutputError::io("set the mode of", root))?;
    let warnings = apply_layers(store, top, root)?;
    let root_meta = fs::symlink_metadata(root).map_err(OutputError::io("inspect", root))?;
    merge(root, dest).map_err(OutputError::io("move the filesystem into", dest))?;
    if created {
        set_dir_meta(&root_meta, dest).map_err(OutputError::io("set the metadata of", dest))?;
    }
    staging
        .close()
        .map_err(OutputError::io("remove the staging directory in", dest))?;
    Ok(warnings)
}

/// Writes the image's filesystem as a deterministic tar stream to `dest`.
pub(super) fn write_tar(
    store: &Store,
    top: &Descriptor,
    dest: &Destination,
) -> Result<Vec<ExtractWarning>, OutputError> {
    let staging = tempfile::Builder::new()
        .prefix("builder-rootfs-")
        .tempdir()
        .map_err(OutputError::io(
            "create a staging directory in",
            &std::env::temp_dir(),
        ))?;
    let root = staging.path();
    let warnings = match platform_images(store, top)? {
        None => apply_layers(store, top, root)?,
        Some(images) => {
            let mut warnings = Vec::new();
            for (dir, manifest) in images {
                let sub = root.join(dir);
                fs::create_dir(&sub).map_err(OutputError::io("create directory", &sub))?;
                fs::set_permissions(&sub, fs::Permissions::from_mode(0o755))
                    .map_err(OutputError::io("set the mode of", &sub))?;
                warnings.extend(apply_layers(store, &manifest, &sub)?);
            }
            warnings
        }
    };
    let changes = full_tree(root).map_err(OutputError::Filesystem)?;
    stream::write(dest, |out| {
        write_changes(root, changes, out, &WriteOptions::default())
            .map(drop)
            .map_err(OutputError::Filesystem)
    })?;
    Ok(warnings)
}

/// Applies every layer of the manifest `top` in order onto `root`, checking
/// each layer's diff ID against the config's.
fn apply_layers(
    store: &Store,
    top: &Descriptor,
    root: &Path,
) -> Result<Vec<ExtractWarning>, OutputError> {
    let manifest = read_manifest(store, top, "local")?;
    let config_digest = manifest.config().digest();
    let config = parse_config(&store.blobs().read(config_digest)?).map_err(|source| {
        OutputError::Config {
            digest: config_digest.clone(),
            source,
        }
    })?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(OutputError::LayerCount {
            config: diff_ids.len(),
            manifest: manifest.layers().len(),
        });
    }
    let options = ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: ownership(),
    };
    let mut warnings = Vec::new();
    for (layer, expected) in manifest.layers().iter().zip(diff_ids) {
        let digest = layer.digest();
        let layer_err = |source| OutputError::Layer {
            digest: digest.clone(),
            source,
        };
        let blob = store.blobs().open(digest)?;
        let tar = decompress(blob, layer.media_type().as_ref()).map_err(layer_err)?;
        let report = extract(tar, root, &options).map_err(layer_err)?;
        if report.diff_id.to_string() != *expected {
            return Err(OutputError::DiffIdMismatch {
                digest: digest.clone(),
                expected: expected.clone(),
                actual: report.diff_id,
            });
        }
        warnings.extend(report.warnings);
    }
    Ok(warnings)
}

/// Root keeps the recorded owners; anyone else can only give files their own ids.
fn ownership() -> Ownership {
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return Ownership::Preserve;
    }
    let uid = u64::from(uid.as_raw());
    let gid = u64::from(rustix::process::getegid().as_raw());
    Ownership::Within {
        uids: uid..uid + 1,
        gids: gid..gid + 1,
    }
}

/// Moves everything under `from` into `to`: directories present in both
/// are merged (and take `from`'s metadata), anything else in `to` with a
/// name from `from` is replaced. Never follows a symlink in `to`.
fn merge(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let source_is_dir = entry.file_type()?.is_dir();
        match fs::symlink_metadata(&target) {
            Ok(existing) if existing.is_dir() && source_is_dir => {
                // Taken before the merge, which changes the mtime.
                let meta = fs::symlink_metadata(&source)?;
                merge(&source, &target)?;
                set_dir_meta(&meta, &target)?;
            }
            Ok(existing) => {
                if existing.is_dir() {
                    fs::remove_dir_all(&target)?;
                } else {
                    fs::remove_file(&target)?;
                }
                fs::rename(&source, &target)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(&source, &target)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Gives the directory `to` the mode, owner and mtime in `meta`.
fn set_dir_meta(meta: &fs::Metadata, to: &Path) -> io::Result<()> {
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    }
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    File::open(to)?.set_times(
        FileTimes::new()
            .set_accessed(meta.accessed()?)
            .set_modified(meta.modified()?),
    )
}
