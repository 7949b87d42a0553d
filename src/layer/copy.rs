//! Copy-up snapshots: a full copy of a parent tree for a step to modify
//! where overlayfs is unavailable, later compared with the parent by
//! [`super::diff::tree_changes`]. Everything the comparison looks at is
//! kept: type, mode, owner, mtime (to the nanosecond), xattrs, symlink
//! targets, device numbers and hardlinks.

use super::LayerError;
use super::error::fs_err;
use super::fsmeta;
use super::hardlinks::Hardlinks;
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid};
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Copies the tree at `src` into the directory `dst` (which must exist and
/// be empty). Content is copied with `copy_file_range`, so filesystems that
/// can share extents (btrfs, xfs) make it cheap.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), LayerError> {
    let mut copier = Copier {
        links: Hardlinks::default(),
    };
    copier.copy_dir_contents(src, dst)?;
    let meta = fs::symlink_metadata(src).map_err(fs_err("reading metadata of", src))?;
    set_metadata(src, dst, &meta)
}

struct Copier {
    /// The first copy made of each multiply-linked inode.
    links: Hardlinks<std::path::PathBuf>,
}

impl Copier {
    fn copy_dir_contents(&mut self, src: &Path, dst: &Path) -> Result<(), LayerError> {
        for entry in fs::read_dir(src).map_err(fs_err("listing", src))? {
            let entry = entry.map_err(fs_err("listing", src))?;
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            let meta = fs::symlink_metadata(&from).map_err(fs_err("reading metadata of", &from))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                fs::create_dir(&to).map_err(fs_err("creating", &to))?;
                self.copy_dir_contents(&from, &to)?;
            } else if ft.is_file() {
                if let Some(first) = self
                    .links
                    .first_of(meta.dev(), meta.ino(), meta.nlink(), &to)
                {
                    fs::hard_link(first, &to).map_err(fs_err("hardlinking", &to))?;
                    continue;
                }
                fs::copy(&from, &to).map_err(fs_err("copying to", &to))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&from).map_err(fs_err("reading the symlink", &from))?;
                std::os::unix::fs::symlink(target, &to).map_err(fs_err("creating", &to))?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    FileType::CharacterDevice
                } else if ft.is_block_device() {
                    FileType::BlockDevice
                } else {
                    FileType::Fifo
                };
                rfs::mknodat(rfs::CWD, &to, kind, Mode::from_raw_mode(0o600), meta.rdev())
                    .map_err(|e| fs_err("creating", &to)(e.into()))?;
            } else {
                // A socket belongs to a process, not to an image.
                continue;
            }
            set_metadata(&from, &to, &meta)?;
        }
        Ok(())
    }
}

/// Owner, then mode (after the chown, which clears setuid), xattrs, then mtime.
fn set_metadata(from: &Path, to: &Path, meta: &Metadata) -> Result<(), LayerError> {
    let err = |action| fs_err(action, to);
    rfs::chownat(
        rfs::CWD,
        to,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err("setting the owner of")(e.into()))?;
    if !meta.file_type().is_symlink() {
        rfs::chmodat(
            rfs::CWD,
            to,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| err("setting the mode of")(e.into()))?;
    }
    let xattrs = fsmeta::read_xattrs(from).map_err(fs_err("reading xattrs of", from))?;
    for (name, value) in xattrs {
        fsmeta::set_xattr_nofollow(to, &name, &value).map_err(err("setting xattrs of"))?;
    }
    let mtime = Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec(),
    };
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rfs::utimensat(rfs::CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| err("setting the mtime of")(e.into()))
}
