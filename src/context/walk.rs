//! Walking the context directory with the ignore rules, as BuildKit's
//! file-sync walker does: entries come depth first with the names of each
//! directory in byte order; an excluded directory is skipped whole unless an
//! exception could re-include something inside it, in which case it is
//! walked and emitted only if something inside it is included.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Dir, Mode, OFlags, StatxFlags};

use super::{ContextError, Entry, Timestamp};
use crate::file_kind::FileKind;
use crate::ignore::{MatchInfo, PatternMatcher};

/// A directory being walked: its open descriptor, the names still to visit
/// (in reverse order, to pop), and what the ignore rules said about it.
struct Frame {
    fd: OwnedFd,
    rel: PathBuf,
    names: Vec<CString>,
    info: MatchInfo,
    /// The directory's own entry while it is excluded and not yet emitted:
    /// it is emitted before the first included entry found inside it.
    pending: Option<Entry>,
}

/// The entries of the context at `root`, minus what `ignore` excludes, in
/// walk order (depth first, names in byte order). The root itself is not
/// an entry.
pub fn walk(root: &Path, ignore: Option<&PatternMatcher>) -> Result<Vec<Entry>, ContextError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |e: rustix::io::Errno| ContextError::Io {
            path,
            source: io::Error::from(e),
        }
    };
    let root_fd = rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(root))?;
    let names = sorted_names(&root_fd).map_err(io_err(root))?;
    let mut stack = vec![Frame {
        fd: root_fd,
        rel: PathBuf::new(),
        names,
        info: MatchInfo::default(),
        pending: None,
    }];
    let mut entries = Vec::new();

    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.pop() else {
            stack.pop();
            continue;
        };
        let rel = frame.rel.join(OsStr::from_bytes(name.as_bytes()));
        let Some(entry) = stat_entry(frame, &name, &rel)? else {
            // Removed while we walked: it is simply not part of the context.
            continue;
        };
        let is_dir = entry.kind == FileKind::Dir;
        let (excluded, info) = match ignore {
            Some(pm) => {
                let key = rel.to_string_lossy();
                pm.matches_using_parent_results(&key, &frame.info)
                    .map_err(|source| ContextError::Pattern {
                        path: rel.clone(),
                        source,
                    })?
            }
            None => (false, MatchInfo::default()),
        };
        if excluded {
            let skippable =
                ignore.is_some_and(|pm| pm.can_skip_excluded_dir(&rel.to_string_lossy()));
            if is_dir && !skippable {
                // An unreadable excluded directory is left out, as BuildKit
                // does: nothing in it could be sent anyway.
                let opened = open_dir(&frame.fd, &name).and_then(|fd| Ok((sorted_names(&fd)?, fd)));
                match opened {
                    Ok((names, fd)) => stack.push(Frame {
                        fd,
                        rel,
                        names,
                        info,
                        pending: Some(entry),
                    }),
                    Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(io_err(&rel)(e)),
                }
            }
            continue;
        }
        let child = if is_dir {
            let fd = open_dir(&frame.fd, &name).map_err(io_err(&rel))?;
            Some((sorted_names(&fd).map_err(io_err(&rel))?, fd))
        } else {
            None
        };
        // Something is included: the excluded directories holding it come
        // first, outermost first.
        entries.extend(stack.iter_mut().filter_map(|f| f.pending.take()));
        entries.push(entry);
        if let Some((names, fd)) = child {
            stack.push(Frame {
                fd,
                rel,
                names,
                info,
                pending: None,
            });
        }
    }
    Ok(entries)
}

/// Opens the directory `name` inside `dir` without following a link.
fn open_dir(dir: &OwnedFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in `dir`, sorted so that popping yields them in byte order.
fn sorted_names(dir: &OwnedFd) -> rustix::io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    Ok(names)
}

/// The entry for `name` in the frame's directory, or `None` when it
/// vanished since the directory was read.
fn stat_entry(frame: &Frame, name: &CStr, rel: &Path) -> Result<Option<Entry>, ContextError> {
    let io_err = |e: rustix::io::Errno| ContextError::Io {
        path: rel.to_owned(),
        source: io::Error::from(e),
    };
    let st = match rustix::fs::statx(
        &frame.fd,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mode = u32::from(st.stx_mode);
    let read_link = || {
        let target = rustix::fs::readlinkat(&frame.fd, name, Vec::new()).map_err(io_err)?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    };
    let kind = FileKind::from_mode(mode, st.stx_rdev_major, st.stx_rdev_minor, read_link)?
        .ok_or_else(|| io_err(rustix::io::Errno::INVAL))?;
    Ok(Some(Entry {
        path: rel.to_owned(),
        kind,
        mode: mode & 0o7777,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: st.stx_size,
        mtime: Timestamp {
            secs: st.stx_mtime.tv_sec,
            nanos: st.stx_mtime.tv_nsec,
        },
        ctime: Timestamp {
            secs: st.stx_ctime.tv_sec,
            nanos: st.stx_ctime.tv_nsec,
        },
        dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        nlink: u64::from(st.stx_nlink),
    }))
}
