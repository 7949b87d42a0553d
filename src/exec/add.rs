//! `ADD`: `COPY` plus local tar archives extracted at the destination and
//! URLs downloaded.
//!
//! - A local file whose content is a tar (uncompressed, gzip, bzip2, xz or
//!   zstd, told by its bytes as Docker does) is extracted into the
//!   destination directory, keeping the archive's owners (`--chown` owns
//!   only the directories the step creates, as BuildKit and Buildah do);
//!   `--unpack=false` copies it as a file. The extraction goes through the
//!   layer extractor, so no entry can leave the destination.
//! - A URL is downloaded (checked against `--checksum` while streaming),
//!   named after the URL's path unless the destination is a file path,
//!   mode 0600, mtime from `Last-Modified`; it is extracted only with
//!   `--unpack=true`, as BuildKit does.
//! - Git sources and `--keep-git-dir` are refused as not supported yet.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::copy::{CopyRequest, Source, SourceRoot, Target};
use super::plan::{DefaultOwner, DestRoot};
use super::rootfs::RootfsView;
use super::sources::{self, Match};
use super::{CopyError, CopyPlan, download};
use crate::file_kind::FileKind;
use crate::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use crate::layer::owners::OwnerMap;

/// An `ADD` as the executor hands it over.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Sources (paths, URLs, heredocs), destination, `WORKDIR` and the flags shared with `COPY`.
    pub copy: CopyRequest,
    /// `--checksum=sha256:…` for a URL source.
    pub checksum: Option<String>,
    /// `--unpack`: `None` is the default (local archives unpacked, URLs not).
    pub unpack: Option<bool>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
}

/// Plans the layer of an `ADD`. Downloads and unpacked archives are kept in
/// `scratch`, which must outlive the plan's `write_layer`.
pub async fn plan_add(
    request: &AddRequest,
    root: &SourceRoot,
    dest: Option<DestRoot<'_>>,
    scratch: &Path,
) -> Result<CopyPlan, CopyError> {
    if request.keep_git_dir {
        return Err(CopyError::Unsupported("ADD --keep-git-dir"));
    }
    let copy = &request.copy;
    let dest = if copy.flags.link { None } else { dest };
    let from_context = matches!(root, SourceRoot::Context(_));
    let (own, view) = match root {
        SourceRoot::Context(view) => (DefaultOwner::Root, view),
        SourceRoot::Stage { view, owners } => (DefaultOwner::Source(*owners), view),
    };
    let mut target = Target::new(copy, dest, own)?;
    let mut scratch_dirs = 0usize;
    let mut next_scratch = || -> Result<PathBuf, CopyError> {
        scratch_dirs += 1;
        let dir = scratch.join(format!("add-{scratch_dirs}"));
        std::fs::create_dir_all(&dir).map_err(|source| CopyError::Io {
            action: format!("creating {}", dir.display()),
            source,
        })?;
        Ok(dir)
    };
    for source in &copy.sources {
        let path = match source {
            Source::Heredoc { name, content } => {
                target.planner.set_default_owner(DefaultOwner::Root);
                target.place_bytes(name, content.clone())?;
                continue;
            }
            Source::Path(path) => path,
        };
        if is_git(path) {
            return Err(CopyError::Unsupported("ADD of a git repository"));
        }
        if let Some(url) = as_url(path) {
            let dir = next_scratch()?;
            let name = download::file_name(&url);
            let file = download::fetch(&url, &dir, &name, request.checksum.as_deref()).await?;
            let fetched = Arc::new(RootfsView::dir(&dir)?);
            if request.unpack == Some(true) && is_archive(&file)? {
                unpack(&mut target, &file, next_scratch()?)?;
                continue;
            }
            let node = fetched
                .lookup(Path::new(&name), false)?
                .ok_or_else(|| CopyError::InvalidPath(file.clone()))?;
            target.planner.set_default_owner(DefaultOwner::Root);
            target.place(
                &fetched,
                &Match {
                    node,
                    rel: PathBuf::from(&name),
                },
            )?;
            continue;
        }
        if request.checksum.is_some() {
            return Err(CopyError::Unsupported(
                "--checksum for a source that is not a URL",
            ));
        }
        for found in sources::resolve(view, path, from_context, copy.flags.parents)? {
            if found.node.kind == FileKind::File && request.unpack != Some(false) {
                let host = view.host_path(&found.node)?;
                if is_archive_in(view, &found)? {
                    unpack(&mut target, &host, next_scratch()?)?;
                    continue;
                }
            }
            target.planner.set_default_owner(own);
            target.place(view, &found)?;
        }
    }
    target.finish(copy)
}

/// Extracts the archive `file` into `dir` and plans its content at the
/// destination directory, with the archive's owners even with `--chown`.
fn unpack(target: &mut Target<'_>, file: &Path, dir: PathBuf) -> Result<(), CopyError> {
    let io_err = |action: &str, source| CopyError::Io {
        action: format!("{action} {}", file.display()),
        source,
    };
    let reader = crate::layer::compress::decompress_sniffed(
        File::open(file).map_err(|e| io_err("opening", e))?,
    )
    .map_err(|e| io_err("decompressing", e))?;
    let (ownership, owners) = if rustix::process::geteuid().is_root() {
        (Ownership::Preserve, OwnerMap::Identity)
    } else {
        // Rootless: only our own ids can be set (others are reported and
        // left ours); they read as root's, as in a rootless step.
        let (uid, gid) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let (uid64, gid64) = (u64::from(uid), u64::from(gid));
        (
            Ownership::Within {
                uids: uid64..uid64 + 1,
                gids: gid64..gid64 + 1,
            },
            OwnerMap::single(uid, gid),
        )
    };
    extract(
        reader,
        &dir,
        &ExtractOptions {
            whiteouts: WhiteoutStyle::Apply,
            ownership,
        },
    )?;
    let view = Arc::new(RootfsView::dir(&dir)?);
    let root = view.root()?;
    let dest = target.dir()?;
    target
        .planner
        .set_default_owner(DefaultOwner::Archive(owners));
    target.planner.add_dir_contents(&view, &root, &dest)
}

/// Whether a source of the view is a (possibly compressed) tar.
fn is_archive_in(view: &RootfsView, found: &Match) -> Result<bool, CopyError> {
    let file = view.open(&found.node)?;
    looks_like_tar(file).map_err(|source| CopyError::Io {
        action: format!("reading /{}", found.node.path.display()),
        source,
    })
}

fn is_archive(path: &Path) -> Result<bool, CopyError> {
    let io_err = |source| CopyError::Io {
        action: format!("reading {}", path.display()),
        source,
    };
    looks_like_tar(File::open(path).map_err(io_err)?).map_err(io_err)
}

/// Whether the content, decompressed by its magic bytes, starts with a tar
/// header (the `ustar` magic of POSIX, GNU and PAX tars).
fn looks_like_tar(file: File) -> std::io::Result<bool> {
    let mut reader = match crate::layer::compress::decompress_sniffed(file) {
        Ok(reader) => reader,
        Err(_) => return Ok(false),
    };
    let mut block = [0u8; 512];
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(block.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // Not valid compressed data: not an archive, a plain file.
            Err(_) => return Ok(false),
        }
    }
    Ok(filled == block.len() && block.get(257..262) == Some(b"ustar".as_slice()))
}

/// An `http://` or `https://` source.
fn as_url(source: &str) -> Option<reqwest::Url> {
    let lower = source.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    reqwest::Url::parse(source).ok()
}

/// A git source, as BuildKit recognizes them: `git://`, `git@host:`, or a
/// URL whose path ends in `.git` (with an optional `#ref`).
fn is_git(source: &str) -> bool {
    let before_fragment = source.split('#').next().unwrap_or_default();
    source.starts_with("git://")
        || source.starts_with("git@")
        || (as_url(source).is_some() && before_fragment.ends_with(".git"))
}
