//! Media types of image documents and layers, OCI and Docker alike, and what
//! each one means to us: a manifest, an index, a config, or a layer with a
//! given compression.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifest (unsigned); deprecated and refused.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 manifest (signed); deprecated and refused.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed tar (seen in `docker save` output).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker "foreign" (non-distributable) layer, gzip-compressed tar.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI non-distributable layer, uncompressed tar (deprecated by the spec, still read).
pub const OCI_NONDIST_LAYER_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip (deprecated by the spec, still read).
pub const OCI_NONDIST_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd (deprecated by the spec, still read).
pub const OCI_NONDIST_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// The `Accept` header value asking a registry for any manifest or index we
/// can read, OCI first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Which kind of top-level document a media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A single-platform manifest (OCI manifest, Docker schema 2 manifest).
    Manifest,
    /// A multi-platform index (OCI index, Docker manifest list).
    Index,
}

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The kind of document a manifest media type names, or `None` for any
/// other media type.
pub fn document_kind(media_type: &str) -> Option<DocumentKind> {
    match essence(media_type) {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(DocumentKind::Manifest),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(DocumentKind::Index),
        _ => None,
    }
}

/// Whether the media type is an image config (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    matches!(essence(media_type), OCI_CONFIG | DOCKER_CONFIG)
}

/// The compression of a layer media type, or `None` when it is not a layer
/// type we can unpack.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match essence(media_type) {
        OCI_LAYER_TAR | DOCKER_LAYER_TAR | OCI_NONDIST_LAYER_TAR => Some(Compression::None),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP | OCI_NONDIST_LAYER_GZIP => {
            Some(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_NONDIST_LAYER_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// A media type without parameters or surrounding blanks, as a
/// `Content-Type` header may carry them (`…+json; charset=utf-8`).
pub fn essence(media_type: &str) -> &str {
    media_type
        .split_once(';')
        .map_or(media_type, |(essence, _)| essence)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_manifest_types_are_classified() {
        assert_eq!(document_kind(OCI_MANIFEST), Some(DocumentKind::Manifest));
        assert_eq!(document_kind(DOCKER_MANIFEST), Some(DocumentKind::Manifest));
        assert_eq!(document_kind(OCI_INDEX), Some(DocumentKind::Index));
        assert_eq!(
            document_kind(&format!("{DOCKER_MANIFEST_LIST}; charset=utf-8")),
            Some(DocumentKind::Index)
        );
        assert_eq!(document_kind(DOCKER_SCHEMA1), None);
        assert_eq!(document_kind(OCI_CONFIG), None);
        for m in MANIFEST_ACCEPT.split(", ") {
            assert!(document_kind(m).is_some(), "{m}");
        }
    }

    #[test]
    fn layer_compressions() {
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(OCI_LAYER_GZIP), Some(Compression::Gzip));
        assert_eq!(layer_compression(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(layer_compression(OCI_LAYER_TAR), Some(Compression::None));
        assert_eq!(layer_compression(OCI_CONFIG), None);
        assert!(is_config(DOCKER_CONFIG) && is_config(OCI_CONFIG) && !is_config(OCI_LAYER_TAR));
    }
}
