//! What kind of file something is: the one vocabulary for the build
//! context walk, the executor's root filesystem view and the layer writer,
//! and the one reading of a `stat` mode into it.
//!
//! It sits below all of them and depends on none, so `context`, `exec` and
//! `layer` can share it without `layer` learning of the modules above it.

use std::path::PathBuf;

/// What a file is, as its `stat` mode says, with what each kind carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, never followed.
    Symlink {
        /// The link's target as stored.
        target: PathBuf,
    },
    /// A device or named pipe.
    Special(SpecialFile),
    /// A Unix socket: it belongs to a process, never goes into a layer.
    Socket,
}

/// A special file: what `mknod` makes and a layer carries as a header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialFile {
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

impl FileKind {
    /// The kind named by the file type bits of `mode` (`st_mode`), with the
    /// device numbers `major`/`minor` (`st_rdev`) for a device and the
    /// target from `read_link` for a symlink (called only for a symlink).
    /// `None` when the type bits name no file type.
    pub fn from_mode<E>(
        mode: u32,
        major: u32,
        minor: u32,
        read_link: impl FnOnce() -> Result<PathBuf, E>,
    ) -> Result<Option<Self>, E> {
        use rustix::fs::FileType;
        Ok(Some(match FileType::from_raw_mode(mode) {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink {
                target: read_link()?,
            },
            FileType::CharacterDevice => Self::Special(SpecialFile::CharDevice { major, minor }),
            FileType::BlockDevice => Self::Special(SpecialFile::BlockDevice { major, minor }),
            FileType::Fifo => Self::Special(SpecialFile::Fifo),
            FileType::Socket => Self::Socket,
            FileType::Unknown => return Ok(None),
        }))
    }

    /// Whether this is an overlayfs whiteout: a 0/0 character device.
    pub fn is_overlay_whiteout(&self) -> bool {
        *self == Self::Special(SpecialFile::CharDevice { major: 0, minor: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(mode: u32) -> Option<FileKind> {
        FileKind::from_mode(mode, 4, 64, || Ok::<_, ()>(PathBuf::from("target")))
            .expect("the link reader never fails here")
    }

    #[test]
    fn type_bits_name_the_kind_and_carry_device_numbers_and_link_targets() {
        assert_eq!(kind(libc::S_IFREG | 0o644), Some(FileKind::File));
        assert_eq!(kind(libc::S_IFDIR | 0o755), Some(FileKind::Dir));
        assert_eq!(
            kind(libc::S_IFLNK | 0o777),
            Some(FileKind::Symlink {
                target: PathBuf::from("target")
            })
        );
        assert_eq!(
            kind(libc::S_IFCHR | 0o600),
            Some(FileKind::Special(SpecialFile::CharDevice {
                major: 4,
                minor: 64
            }))
        );
        assert_eq!(
            kind(libc::S_IFBLK | 0o600),
            Some(FileKind::Special(SpecialFile::BlockDevice {
                major: 4,
                minor: 64
            }))
        );
        assert_eq!(
            kind(libc::S_IFIFO | 0o600),
            Some(FileKind::Special(SpecialFile::Fifo))
        );
        assert_eq!(kind(libc::S_IFSOCK | 0o755), Some(FileKind::Socket));
        assert_eq!(kind(0o644), None);
    }

    #[test]
    fn the_link_is_read_only_for_a_symlink_and_its_error_passes_through() {
        let failing = || Err::<PathBuf, &str>("unreadable");
        assert_eq!(
            FileKind::from_mode(libc::S_IFREG, 0, 0, failing),
            Ok(Some(FileKind::File))
        );
        assert_eq!(
            FileKind::from_mode(libc::S_IFLNK, 0, 0, failing),
            Err("unreadable")
        );
    }

    #[test]
    fn only_a_zero_zero_character_device_is_an_overlay_whiteout() {
        let char_dev = |major, minor| FileKind::Special(SpecialFile::CharDevice { major, minor });
        assert!(char_dev(0, 0).is_overlay_whiteout());
        assert!(!char_dev(1, 3).is_overlay_whiteout());
        assert!(
            !FileKind::Special(SpecialFile::BlockDevice { major: 0, minor: 0 })
                .is_overlay_whiteout()
        );
    }
}
