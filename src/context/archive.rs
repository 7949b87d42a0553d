//! A build context sent as a tar archive (`builder build - < ctx.tar`,
//! `builder build ctx.tar.gz`): unpacked into a temporary directory with
//! the layer extractor, so every entry stays inside that directory
//! whatever its path or link target says, and removed when dropped.

use std::io::Read;
use std::path::Path;

use crate::layer::resolve::{InRootPath, Root};

use super::ContextError;
use crate::layer::LayerError;
use crate::layer::compress::decompress_sniffed;
use crate::layer::extract::{ExtractOptions, WhiteoutStyle, extract};

/// A context unpacked from an archive; the directory goes away on drop.
#[derive(Debug)]
pub struct UnpackedContext {
    dir: tempfile::TempDir,
}

impl UnpackedContext {
    /// Unpacks the tar read from `archive` (plain, gzip, bzip2, xz or
    /// zstd, told by its first bytes, as Docker accepts) into a fresh
    /// directory under `parent`; `name` says where it came from in errors.
    pub fn unpack(
        archive: impl Read + Send,
        parent: &Path,
        name: &str,
    ) -> Result<Self, ContextError> {
        let archive_error = |source| ContextError::Archive {
            archive: name.to_owned(),
            source,
        };
        let unpacked = Self::empty(parent)?;
        let tar = decompress_sniffed(archive).map_err(|source| {
            archive_error(LayerError::ReadTar {
                after: String::new(),
                source,
            })
        })?;
        let options = ExtractOptions {
            // A context has no lower layers: `.wh.` names are plain files
            // to Docker, but no context is expected to hold them.
            whiteouts: WhiteoutStyle::Apply,
            ownership: crate::userns::in_process_options(&crate::userns::Stack::Applied).ownership,
        };
        extract(tar, unpacked.path(), &options).map_err(archive_error)?;
        Ok(unpacked)
    }

    /// An empty context (Docker's, when stdin holds a Dockerfile rather
    /// than an archive) in a fresh directory under `parent`.
    pub fn empty(parent: &Path) -> Result<Self, ContextError> {
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(parent)
            .map_err(|source| ContextError::Io {
                path: parent.to_owned(),
                source,
            })?;
        Ok(Self { dir })
    }

    /// The directory holding the context.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The content of the file at `path` inside the context (the
    /// Dockerfile), links resolved as if the context were the root, so a
    /// link in the archive cannot make the build read a host file.
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>, ContextError> {
        let io_error = |source: std::io::Error| ContextError::Io {
            path: path.to_owned(),
            source,
        };
        let relative = InRootPath::normalize(path).ok_or_else(|| {
            io_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path climbs out of the context",
            ))
        })?;
        Root::open(self.dir.path())
            .and_then(|root| root.read_file(&relative))
            .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header
    }

    fn tar_with(entries: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = header(tar::EntryType::Regular, content.len() as u64);
            builder.append_data(&mut header, path, *content).unwrap();
        }
        for (path, target) in links {
            let mut header = header(tar::EntryType::Symlink, 0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_gzipped_archive_is_unpacked_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let tar = tar_with(&[("Dockerfile", b"FROM scratch\n"), ("a/b.txt", b"b")], &[]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let unpacked = UnpackedContext::unpack(gz.as_slice(), parent.path(), "ctx.tgz").unwrap();
        let dir = unpacked.path().to_owned();
        assert_eq!(
            std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
            "FROM scratch\n"
        );
        assert_eq!(std::fs::read_to_string(dir.join("a/b.txt")).unwrap(), "b");
        drop(unpacked);
        assert!(!dir.exists());
    }

    #[test]
    fn links_out_of_the_archive_do_not_lead_writes_out() {
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let escape = outside.path().to_str().unwrap().to_owned();
        // Links first, then files written through them, as an attacker
        // would order them.
        let mut builder = tar::Builder::new(Vec::new());
        for (path, target) in [("up", "../.."), ("abs", escape.as_str())] {
            let mut header = header(tar::EntryType::Symlink, 0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        for (path, content) in [("up/x", b"x"), ("abs/y", b"y")] {
            let mut header = header(tar::EntryType::Regular, 1);
            builder
                .append_data(&mut header, path, &content[..])
                .unwrap();
        }
        let hostile = builder.into_inner().unwrap();
        // Whether it unpacks (inside) or is refused, nothing lands outside.
        let _unpacked = UnpackedContext::unpack(hostile.as_slice(), parent.path(), "ctx.tar");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(!parent.path().join("x").exists());
        assert!(!parent.path().join("up").exists());
    }

    #[test]
    fn the_dockerfile_is_read_inside_the_archive_even_through_a_link() {
        let parent = tempfile::tempdir().unwrap();
        let tar = tar_with(
            &[("etc/passwd", b"inside")],
            &[("Dockerfile", "/etc/passwd")],
        );
        let unpacked = UnpackedContext::unpack(tar.as_slice(), parent.path(), "ctx.tar").unwrap();
        assert_eq!(
            unpacked.read_file(Path::new("Dockerfile")).unwrap(),
            b"inside"
        );
        let missing = unpacked
            .read_file(Path::new("nope/Dockerfile"))
            .unwrap_err();
        assert!(missing.to_string().contains("nope/Dockerfile"), "{missing}");
    }

    #[test]
    fn a_file_that_is_not_an_archive_is_an_error_naming_it() {
        let parent = tempfile::tempdir().unwrap();
        let error = UnpackedContext::unpack(
            b"this is not a tar archive at all, just words"
                .repeat(20)
                .as_slice(),
            parent.path(),
            "notes.txt",
        )
        .unwrap_err();
        assert!(error.to_string().contains("notes.txt"), "{error}");
        assert!(std::error::Error::source(&error).is_some());
    }
}
