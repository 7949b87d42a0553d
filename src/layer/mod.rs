//! Layers: applying OCI layer tars onto snapshot directories safely, and
//! producing deterministic layer tars from a change, compressed when they
//! leave the store.
//!
//! - [`extract`]: apply a tar stream under a root, contained by `openat2`
//!   with `RESOLVE_IN_ROOT`, with whiteouts applied or kept as overlay
//!   whiteouts.
//! - [`diff`]: the change a step made, from an overlay upperdir or by
//!   comparing a copied tree with its parent.
//! - [`tar`]: the deterministic writer of a change, or of entries a step
//!   describes itself (`COPY`, `ADD`).
//! - [`compress`]: compression and the digests taken in the same pass,
//!   and decompression by media type.
//! - [`compression_attrs`]: buildx's `compression=`, `compression-level=`
//!   and `force-compression=` of an output, over `--compression`.
//! - [`distribute`]: the compressed variants of a stored image's plain
//!   layers for a push or an export, remembered in the store.
//! - [`gzip`]: deterministic gzip deflated in blocks on all cores.
//! - [`copy`]: copy-up snapshots for the tree-diff fallback.
//! - [`hardlinks`]: which files are further links to one already stored.

pub mod compress;
pub mod compression_attrs;
pub mod copy;
pub mod diff;
pub mod distribute;
mod error;
pub mod extract;
mod fsmeta;
pub mod gzip;
pub mod hardlinks;
pub mod owners;
pub(crate) mod resolve;
pub mod tar;

pub use error::{LayerError, Refusal};
pub use fsmeta::OverlayXattrs;

/// Prefix of an OCI whiteout file name: `.wh.name` removes `name`.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// Name of the OCI opaque-directory marker: the directory hides all lower content.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
