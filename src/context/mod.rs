//! The build context: the files of the context directory that the
//! `.dockerignore` rules leave in, with the metadata a build needs.
//!
//! The walk never follows a symbolic link (links are entries, their targets
//! are not visited) and opens each directory relative to its parent with
//! `O_NOFOLLOW`, so a link swapped in during the walk cannot lead it out of
//! the context.

mod archive;
pub mod digest;
mod walk;

use std::io;
use std::path::PathBuf;

use crate::file_kind::FileKind;
use crate::ignore::PatternError;

pub use archive::UnpackedContext;
pub use walk::walk;

/// One file, directory, link or special file of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root (no leading `/`).
    pub path: PathBuf,
    /// What it is.
    pub kind: FileKind,
    /// Permission bits, including set-id and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Size in bytes (for a link, the length of its target).
    pub size: u64,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Last status change time (any write or metadata change moves it).
    pub ctime: Timestamp,
    /// Device of the file system holding it (`makedev(major, minor)`).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
}

/// A modification time as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds (negative before 1970).
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// Why the context could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A file system call on a context path failed.
    #[error("build context {}: {source}", path.display())]
    Io {
        /// The path, relative to the context root (the root itself when
        /// it is the root that failed).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A context archive could not be read or unpacked.
    #[error("build context archive {archive}")]
    Archive {
        /// Where the archive came from (its path, or `<stdin>`).
        archive: String,
        /// What went wrong.
        source: crate::layer::LayerError,
    },
    /// An ignore pattern failed while matching a path.
    #[error("matching {} against .dockerignore: {source}", path.display())]
    Pattern {
        /// The path being matched.
        path: PathBuf,
        /// The bad pattern.
        source: PatternError,
    },
}
