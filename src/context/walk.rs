//! Walking the context directory with the ignore rules, as BuildKit's
//! file-sync walker does: entries come depth first with the names of each
//! directory in byte order; an excluded directory is skipped whole unless an
//! exception could re-include something inside it, in which case it is
//! walked and emitted only if something inside it is included.
//!
//! Directories are scanned (listed, their entries stat'ed and matched) by a
//! few threads at once, each directory as one job, since a large context
//! spends its walk waiting on `statx`; the scans are then put together in
//! walk order, so the result does not depend on which thread scanned what.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, RawDir, StatxFlags};

use super::{ContextError, Entry, Timestamp};
use crate::file_kind::FileKind;
use crate::ignore::{MatchInfo, PatternMatcher};

/// Threads scanning directories at most (the walk waits on the kernel,
/// which a handful of threads keeps busy).
const MAX_THREADS: usize = 4;

/// A directory to scan: where it is (opened only when scanned, so that
/// a directory of many subdirectories holds one descriptor, not one per
/// subdirectory waiting), its path, and what the ignore rules said about it.
struct Job {
    /// Its number in the walk: where its scan is kept.
    id: usize,
    at: JobDir,
    rel: PathBuf,
    info: MatchInfo,
    /// Whether the rules exclude it (it is walked for exceptions only).
    excluded: bool,
}

/// Where a directory to scan is.
enum JobDir {
    /// Already open (the root).
    Open(OwnedFd),
    /// The entry `name` of the open directory `parent`.
    In { parent: Arc<OwnedFd>, name: CString },
}

/// One entry of a scanned directory, in name order.
struct Scanned {
    entry: Entry,
    excluded: bool,
    /// The job that scans its contents (a directory walked into).
    descended: Option<usize>,
}

/// The shared state of a walk: directories waiting, how many are not
/// finished, the scans so far (by job number) and the first error.
struct Queue {
    jobs: Vec<Job>,
    unfinished: usize,
    scans: Vec<Option<Vec<Scanned>>>,
    error: Option<ContextError>,
}

/// The entries of the context at `root`, minus what `ignore` excludes, in
/// walk order (depth first, names in byte order). The root itself is not
/// an entry.
pub fn walk(root: &Path, ignore: Option<&PatternMatcher>) -> Result<Vec<Entry>, ContextError> {
    let root_fd = rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(root))?;
    let queue = Mutex::new(Queue {
        jobs: vec![Job {
            id: 0,
            at: JobDir::Open(root_fd),
            rel: PathBuf::new(),
            info: MatchInfo::default(),
            excluded: false,
        }],
        unfinished: 1,
        scans: Vec::new(),
        error: None,
    });
    let wake = Condvar::new();
    let ids = AtomicUsize::new(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| work(&queue, &wake, &ids, ignore));
        }
        work(&queue, &wake, &ids, ignore);
    });
    let queue = queue.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(error) = queue.error {
        return Err(error);
    }
    let mut scans = queue.scans;
    let mut entries = Vec::with_capacity(scans.iter().flatten().map(Vec::len).sum());
    assemble(0, &mut scans, &mut Vec::new(), &mut entries);
    Ok(entries)
}

/// A worker: scans directories until none is left (or one failed);
/// `ids` numbers the jobs.
fn work(queue: &Mutex<Queue>, wake: &Condvar, ids: &AtomicUsize, ignore: Option<&PatternMatcher>) {
    let lock = || queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let job = {
            let mut q = lock();
            loop {
                if q.unfinished == 0 || q.error.is_some() {
                    wake.notify_all();
                    return;
                }
                if let Some(job) = q.jobs.pop() {
                    break job;
                }
                q = wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let id = job.id;
        let result = scan(job, ids, ignore);
        let mut q = lock();
        q.unfinished -= 1;
        match result {
            Ok((scanned, children)) => {
                q.unfinished += children.len();
                q.jobs.extend(children);
                if q.scans.len() <= id {
                    q.scans.resize_with(id + 1, || None);
                }
                if let Some(slot) = q.scans.get_mut(id) {
                    *slot = Some(scanned);
                }
            }
            Err(e) => {
                q.error.get_or_insert(e);
            }
        }
        wake.notify_all();
    }
}

/// Lists, stats and matches the entries of one directory; returns them
/// in name order with the subdirectories to scan next (numbered from `ids`).
fn scan(
    job: Job,
    ids: &AtomicUsize,
    ignore: Option<&PatternMatcher>,
) -> Result<(Vec<Scanned>, Vec<Job>), ContextError> {
    let opened = match job.at {
        JobDir::Open(fd) => Ok(fd),
        JobDir::In { parent, name } => open_dir(&parent, &name),
    };
    let listed = opened.and_then(|fd| Ok((sorted_names(&fd)?, Arc::new(fd))));
    let (names, fd) = match listed {
        Ok(listed) => listed,
        // An unreadable excluded directory is left out, as BuildKit does:
        // nothing in it could be sent anyway.
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) if job.excluded => {
            return Ok((Vec::new(), Vec::new()));
        }
        Err(e) => return Err(io_err(&job.rel)(e)),
    };
    let mut scanned = Vec::with_capacity(names.ranges.len());
    let mut children = Vec::new();
    for name in names.iter() {
        let rel = job.rel.join(OsStr::from_bytes(name.to_bytes()));
        let Some(entry) = stat_entry(&fd, name, &rel)? else {
            // Removed while we walked: it is simply not part of the context.
            continue;
        };
        let is_dir = entry.kind == FileKind::Dir;
        let (excluded, info) = match ignore {
            Some(pm) => {
                let key = rel.to_string_lossy();
                pm.matches_using_parent_results(&key, &job.info)
                    .map_err(|source| ContextError::Pattern {
                        path: rel.clone(),
                        source,
                    })?
            }
            None => (false, MatchInfo::default()),
        };
        // An excluded directory is still walked when an exception may
        // bring back something inside it.
        let descend = is_dir
            && !(excluded
                && ignore.is_some_and(|pm| pm.can_skip_excluded_dir(&rel.to_string_lossy())));
        let mut descended = None;
        if descend {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            descended = Some(id);
            children.push(Job {
                id,
                at: JobDir::In {
                    parent: Arc::clone(&fd),
                    name: name.to_owned(),
                },
                rel: rel.clone(),
                info,
                excluded,
            });
        }
        scanned.push(Scanned {
            entry,
            excluded,
            descended,
        });
    }
    Ok((scanned, children))
}

/// Appends the entries of the directory scanned by job `id` to `out` in
/// walk order. `pending` holds the excluded directories being walked,
/// outermost first: they are emitted before the first included entry
/// found inside them, and not at all when none is.
fn assemble(
    id: usize,
    scans: &mut [Option<Vec<Scanned>>],
    pending: &mut Vec<Option<Entry>>,
    out: &mut Vec<Entry>,
) {
    let Some(scanned) = scans.get_mut(id).and_then(Option::take) else {
        return;
    };
    for Scanned {
        entry,
        excluded,
        descended,
    } in scanned
    {
        if excluded {
            if let Some(child) = descended {
                pending.push(Some(entry));
                assemble(child, scans, pending, out);
                pending.pop();
            }
            continue;
        }
        out.extend(pending.iter_mut().filter_map(Option::take));
        out.push(entry);
        if let Some(child) = descended {
            assemble(child, scans, pending, out);
        }
    }
}

/// An error of a file system call on `path`.
fn io_err(path: &Path) -> impl Fn(rustix::io::Errno) -> ContextError {
    let path = path.to_owned();
    move |e| ContextError::Io {
        path: path.clone(),
        source: io::Error::from(e),
    }
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

/// The names of a directory, in byte order: one buffer of NUL-terminated
/// names (a directory of many files costs one allocation, not one each).
struct Names {
    bytes: Vec<u8>,
    /// Where each name is in `bytes`, its NUL included.
    ranges: Vec<std::ops::Range<usize>>,
}

impl Names {
    /// The names, in byte order.
    fn iter(&self) -> impl Iterator<Item = &CStr> {
        self.ranges
            .iter()
            .filter_map(|range| CStr::from_bytes_with_nul(self.bytes.get(range.clone())?).ok())
    }
}

/// The names in `dir`, in byte order. Reads the directory through its own
/// descriptor with a buffer large enough for a hundred-odd entries per call.
fn sorted_names(dir: &OwnedFd) -> rustix::io::Result<Names> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut listing = RawDir::new(dir, &mut buf);
    let mut names = Names {
        bytes: Vec::new(),
        ranges: Vec::new(),
    };
    while let Some(entry) = listing.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            let start = names.bytes.len();
            names.bytes.extend_from_slice(name.to_bytes_with_nul());
            names.ranges.push(start..names.bytes.len());
        }
    }
    let bytes = &names.bytes;
    names
        .ranges
        .sort_unstable_by(|a, b| bytes.get(a.clone()).cmp(&bytes.get(b.clone())));
    Ok(names)
}

/// The entry for `name` in the directory `dir`, or `None` when it
/// vanished since the directory was read.
fn stat_entry(dir: &OwnedFd, name: &CStr, rel: &Path) -> Result<Option<Entry>, ContextError> {
    let io_err = |e: rustix::io::Errno| ContextError::Io {
        path: rel.to_owned(),
        source: io::Error::from(e),
    };
    let st = match rustix::fs::statx(
        dir,
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
        let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(io_err)?;
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
