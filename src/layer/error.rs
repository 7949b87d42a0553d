//! The one error type of the layer module.

use std::io;
use std::path::{Path, PathBuf};

/// Why a tar entry was refused rather than applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry's path climbs above the root with `..`.
    #[error("its path climbs out of the root")]
    PathEscapes,
    /// A hardlink's target climbs above the root with `..`.
    #[error("its hardlink target `{0}` climbs out of the root")]
    LinkTargetEscapes(String),
    /// A hardlink's target is not (yet) in the root.
    #[error("its hardlink target `{0}` does not exist in the root")]
    LinkTargetMissing(String),
    /// A hardlink or symlink entry without a target.
    #[error("it has no link target")]
    NoLinkTarget,
    /// A non-directory entry names the root itself.
    #[error("it names the root itself but is not a directory")]
    NotADirectoryAtRoot,
    /// A whiteout whose target is not a plain name (`.wh.`, `.wh..`, `.wh...`).
    #[error("it is a whiteout of no plain name")]
    InvalidWhiteout,
}

/// Everything that can go wrong reading, applying or writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The tar stream itself is unreadable or malformed.
    #[error("reading the layer tar stream (after entry `{after}`)")]
    ReadTar {
        /// The last entry read successfully, or empty at the start.
        after: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tar entry that would not stay inside the root, or cannot be applied as asked.
    #[error("refused tar entry `{entry}`: {reason}")]
    Refused {
        /// The entry's path as the tar names it.
        entry: String,
        /// Why.
        reason: Refusal,
    },
    /// Applying a tar entry failed at the filesystem.
    #[error("applying tar entry `{entry}`: {action}")]
    Apply {
        /// The entry's path as the tar names it.
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation on a path we were given failed.
    #[error("{action} `{path}`")]
    Fs {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A change names a path that is not a plain relative path.
    #[error("change path `{0}` is not a plain relative path")]
    InvalidChangePath(PathBuf),
    /// Writing the tar or the compressed stream failed.
    #[error("writing the layer: {action}")]
    Write {
        /// What was being written.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The media type is not one of a layer we can decompress.
    #[error("unsupported layer media type `{0}`")]
    UnsupportedMediaType(String),
}

/// For `map_err`: an I/O error while doing `action` on `path`, as [`LayerError::Fs`].
pub(crate) fn fs_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LayerError {
    let path = path.to_path_buf();
    move |source| LayerError::Fs {
        action,
        path,
        source,
    }
}
