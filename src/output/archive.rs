//! The files of an image layout written one way or the other: as a
//! deterministic tar stream (sorted by the caller; fixed owners, modes and
//! times) or into a directory (each file renamed into place when complete).

use super::OutputError;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Mode of content-addressed files (blobs, `oci-layout`): never rewritten in place.
pub(super) const READ_ONLY: u32 = 0o444;
/// Mode of the documents naming the images (`index.json`, `manifest.json`…).
pub(super) const READ_WRITE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// Where the files of a layout go.
pub(super) trait Sink {
    /// Whether `path` already holds `size` bytes (a blob need not be written again).
    fn holds(&self, path: &str, size: u64) -> bool;
    /// Adds a directory (`blobs/`).
    fn dir(&mut self, path: &str) -> Result<(), OutputError>;
    /// Adds a file of exactly `size` bytes read from `content`.
    fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<(), OutputError>;
}

/// A tar stream: USTAR headers owned by 0:0, no names, mtime 0.
pub(super) struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    pub(super) fn new(out: W) -> Self {
        Self {
            builder: tar::Builder::new(out),
        }
    }

    /// Ends the archive and returns the writer.
    pub(super) fn finish(self) -> Result<W, OutputError> {
        self.builder.into_inner().map_err(write_err)
    }

    fn append(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<(), OutputError> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).map_err(write_err)?;
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(size);
        header.set_cksum();
        self.builder.append(&header, content).map_err(write_err)
    }
}

fn write_err(source: io::Error) -> OutputError {
    OutputError::Write { source }
}

impl<W: Write> Sink for TarSink<W> {
    fn holds(&self, _path: &str, _size: u64) -> bool {
        false
    }

    fn dir(&mut self, path: &str) -> Result<(), OutputError> {
        self.append(
            &format!("{path}/"),
            tar::EntryType::Directory,
            DIR_MODE,
            0,
            &mut io::empty(),
        )
    }

    fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<(), OutputError> {
        self.append(path, tar::EntryType::Regular, mode, size, content)
    }
}

/// A directory: files are written to a temp file beside their final name
/// and renamed over it, so a reader never sees half a file and an existing
/// symlink is replaced rather than followed.
pub(super) struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
}

impl Sink for DirSink {
    fn holds(&self, path: &str, size: u64) -> bool {
        fs::symlink_metadata(self.root.join(path)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    fn dir(&mut self, path: &str) -> Result<(), OutputError> {
        let dir = self.root.join(path);
        fs::create_dir_all(&dir).map_err(OutputError::io("create directory", &dir))
    }

    fn file(
        &mut self,
        path: &str,
        mode: u32,
        _size: u64,
        content: &mut dyn Read,
    ) -> Result<(), OutputError> {
        let target = self.root.join(path);
        let parent = target.parent().unwrap_or(&self.root);
        let mut temp = tempfile::Builder::new()
            .prefix(".builder-")
            .tempfile_in(parent)
            .map_err(OutputError::io("create a temp file in", parent))?;
        io::copy(content, &mut temp).map_err(OutputError::io("write", temp.path()))?;
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(mode))
            .map_err(OutputError::io("set the mode of", temp.path()))?;
        temp.persist(&target)
            .map_err(|e| OutputError::io("rename into place", &target)(e.error))?;
        Ok(())
    }
}
