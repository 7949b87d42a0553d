//! The error type of `COPY` and `ADD`.

use std::io;
use std::path::PathBuf;

use super::chmod::ChmodError;
use super::rootfs::RootfsError;
use super::user::UserError;
use crate::context::digest::DigestError;
use crate::ignore::PatternError;
use crate::layer::LayerError;

/// Why a `COPY` or `ADD` could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source that does not exist where it was looked for.
    #[error("{}", not_found_message(source_path, *excluded, near, *from_context))]
    SourceNotFound {
        /// The source as written.
        source_path: String,
        /// It exists but `.dockerignore` excludes it.
        excluded: bool,
        /// Names that do exist beside where it was looked for.
        near: Vec<String>,
        /// Whether it was looked for in the build context (else a stage or image).
        from_context: bool,
    },
    /// Several sources or a wildcard, but the destination is an existing file.
    #[error("destination `{0}` must be a directory: several sources or a wildcard were given")]
    DestinationNotDirectory(String),
    /// A file would replace an existing directory.
    #[error("cannot replace the directory `{0}` with a file")]
    ReplaceDirectory(String),
    /// A bad `--exclude` pattern or wildcard.
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    /// A bad `--chown`.
    #[error("--chown: {0}")]
    Chown(#[from] UserError),
    /// A bad `--chmod`.
    #[error(transparent)]
    Chmod(#[from] ChmodError),
    /// Reading a root filesystem failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// Digesting a source failed.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Writing the layer, or extracting an archive, failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A local I/O operation (a temporary file, a download) failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        source: io::Error,
    },
    /// Downloading an `ADD` URL failed.
    #[error("downloading {url}: {reason}")]
    Download {
        /// The URL (without credentials).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A download did not have the `--checksum` digest.
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// The `--checksum` given.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A `--checksum` that is not `sha256:<64 hex>`.
    #[error("invalid --checksum `{0}`: expected sha256:<64 hex digits>")]
    BadChecksum(String),
    /// Something `ADD` does not do yet.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// A source path that is not valid (not UTF-8 in a place it must be).
    #[error("invalid path `{}`", .0.display())]
    InvalidPath(PathBuf),
}

fn not_found_message(source: &str, excluded: bool, near: &[String], from_context: bool) -> String {
    let place = if from_context {
        "the build context"
    } else {
        "the source image"
    };
    let mut message = format!("COPY source `{source}` not found in {place}");
    if excluded {
        message.push_str(": it is excluded by .dockerignore");
    } else if !near.is_empty() {
        let names: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
        message.push_str(&format!("; did you mean {}?", names.join(" or ")));
    }
    message
}
