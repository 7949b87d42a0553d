//! Chroot isolation (`--isolation=chroot`, Buildah's name): for hosts that
//! refuse namespaces and mounts (an unprivileged container: a Kubernetes
//! pod, a hosted CI runner). The helper makes no namespace but the user
//! namespace when rootless, mounts nothing, and chroots itself into the
//! step's plain-directory rootfs (a full copy of its parent, which the
//! caller compares with the parent afterwards).
//!
//! What the sandbox would mount is put in place by moving files instead,
//! each staged in order and taken out in reverse after the step, leaving
//! the rootfs as the step left it (the directories above a staged path get
//! their times back, so only the step's own changes reach the layer):
//! fresh empty `/proc` and `/sys`, a fresh `/dev` with the nodes that
//! `mknod` may make, per-step `/etc/{hosts,hostname,resolv.conf}`, bind
//! sources (copied in when read-only, moved in and back out when writable:
//! cache mounts persist), empty directories for tmpfs mounts, and secret
//! files. What was in the image at those paths is moved aside meanwhile, so
//! the step sees what a mount would show. Everything the helper does after
//! `chroot` resolves inside the rootfs, whatever symlinks the image or the
//! step made; what lies outside it is reached only through directories
//! opened before.
//!
//! The step keeps the sandbox's own session keyring, closed descriptors,
//! RLIMITs, cgroup and seccomp filter, without CAP_MKNOD and CAP_SYS_CHROOT
//! (no `nodev` mount shields device nodes here, and a root step with
//! CAP_SYS_CHROOT leaves a chroot at will).

use super::helper::{Context, SetupError, StatusPipe};
use super::protocol::{Message, Request};
use super::secret::SecretFile;
use super::spec::{Rootfs, Spec};
use super::{capabilities, exec, fds, keyring, namespaces, rlimits};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// The device nodes a step's `/dev` gets where `mknod` is allowed:
/// name, major, minor (Docker's default devices).
const DEV_NODES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Runs the step of `request` chrooted into its rootfs and reports how it
/// ended; the helper is already in the user namespace when rootless.
pub(crate) fn supervise(status: &StatusPipe, request: &mut Request) -> Result<Message, SetupError> {
    let Rootfs::Directory(root) = &request.spec.rootfs else {
        return Err(SetupError::Invalid(
            "chroot isolation needs a plain-directory rootfs".into(),
        ));
    };
    let outside = Outside::open(&request.scratch, &request.spec)?;
    // Read from /proc while it is still in reach.
    capabilities::last_capability()?;
    rustix::process::chroot(root.as_path())
        .context(|| format!("chroot into the step's rootfs {}", root.display()))?;
    rustix::process::chdir("/").context(|| "entering the rootfs".into())?;
    let mut staged = Vec::new();
    let result =
        stage_all(&request.spec, &outside, &mut staged).and_then(|()| run_step(status, request));
    // Only the step needs its secrets; the helper wipes its copies now.
    request.spec.secrets.clear();
    request.spec.secret_env.clear();
    // Every path is taken out (a cache goes back) even after a failure;
    // the first failure is reported.
    let restored = staged
        .into_iter()
        .rev()
        .map(|item| item.unstage(&outside))
        .fold(Ok(()), Result::and);
    let ended = result?;
    restored?;
    Ok(ended)
}

/// Forks the step, waits for it and returns how it ended.
fn run_step(status: &StatusPipe, request: &Request) -> Result<Message, SetupError> {
    let (alive_read, alive_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context(|| "creating the liveness pipe".into())?;
    // SAFETY: the helper is single-threaded (no runtime, no threads spawned),
    // so the child may keep running ordinary Rust code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context(|| "forking the step".into());
    }
    if pid == 0 {
        drop(alive_write);
        let err = match prepare(request, alive_read) {
            Ok(()) => exec::exec(&request.spec),
            Err(err) => err,
        };
        // The status pipe is the helper's too; a failed write leaves the
        // parent with "ended without a result", which is still a failure.
        let _ = status.send(&err.message());
        // SAFETY: _exit skips destructors, which belong to the helper.
        unsafe { libc::_exit(i32::from(super::helper::SETUP_FAILED)) };
    }
    drop(alive_read);
    let ended = super::helper::wait_for(pid);
    drop(alive_write);
    ended
}

/// The step's side after fork, already chrooted: what `init` does in the
/// sandbox, without namespaces or mounts.
fn prepare(request: &Request, alive: OwnedFd) -> Result<(), SetupError> {
    let spec = &request.spec;
    namespaces::die_with_helper(&alive)?;
    drop(alive);
    rustix::process::setsid().context(|| "starting a new session".into())?;
    fs::create_dir_all(&spec.cwd)
        .context(|| format!("creating the working directory {}", spec.cwd.display()))?;
    rustix::process::chdir(&spec.cwd)
        .context(|| format!("entering the working directory {}", spec.cwd.display()))?;
    stdin_from_null()?;
    let rootless = request.user_namespace.is_some();
    let pids_fallback = spec
        .cgroup
        .pids
        .filter(|_| rootless && request.cgroup.is_empty());
    rlimits::apply(&spec.ulimits, pids_fallback).map_err(SetupError::Invalid)?;
    keyring::join_new_session()?;
    fds::cloexec_from(3).context(|| "marking inherited file descriptors close-on-exec".into())?;
    capabilities::limit_bounding_set(spec.security, spec.isolation)?;
    install_seccomp(spec)?;
    super::init::become_user(
        &spec.user,
        request.user_namespace.is_none_or(|map| map.setgroups),
    )?;
    capabilities::set_final(spec.user.uid, spec.security, spec.isolation)
}

/// Installs the step's filter. Without CAP_SYS_ADMIN (root in an
/// unprivileged container) the kernel takes a filter only from a process
/// with `no_new_privs`: that is set then, so setuid programs gain nothing
/// in the step, rather than run it unfiltered.
fn install_seccomp(spec: &Spec) -> Result<(), SetupError> {
    let Some(filter) = &spec.seccomp else {
        return Ok(());
    };
    match filter.install() {
        Err(err) if err.raw_os_error() == Some(libc::EACCES) => {
            rustix::thread::set_no_new_privs(true)
                .context(|| "setting no_new_privs for the seccomp filter".into())?;
            filter.install()
        }
        other => other,
    }
    .context(|| "installing the seccomp filter".into())
}

fn stdin_from_null() -> Result<(), SetupError> {
    let null = match rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
    {
        Ok(null) => null,
        // No node could be made (no CAP_MKNOD): an empty pipe reads as EOF.
        Err(_) => {
            let (read, write) = rustix::pipe::pipe().context(|| "making stdin".into())?;
            drop(write);
            read
        }
    };
    // SAFETY: fd 0 is the helper's request pipe, which the step must not
    // inherit; replacing it is the point.
    let mut stdin = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) };
    let duplicated =
        rustix::io::dup2(null.as_fd(), &mut stdin).context(|| "redirecting stdin".into());
    // fd 0 must stay open for the step.
    std::mem::forget(stdin);
    duplicated
}

/// What the helper reaches outside the rootfs once chrooted: its stash
/// for what the image had at staged paths, the copies of read-only bind
/// sources, and the directories writable bind sources are moved from.
struct Outside {
    stash: OwnedFd,
    copies: OwnedFd,
    /// Per bind mount of the spec: the directory holding a writable
    /// source and its name there (`None` for a read-only one, copied).
    movable: Vec<Option<(OwnedFd, PathBuf)>>,
}

impl Outside {
    fn open(scratch: &Path, spec: &Spec) -> Result<Outside, SetupError> {
        let dir = |name: &str| -> Result<OwnedFd, SetupError> {
            let path = scratch.join(name);
            fs::create_dir(&path).context(|| format!("creating {}", path.display()))?;
            open_dir(&path)
        };
        let stash = dir("stash")?;
        let copies = dir("binds")?;
        let mut movable = Vec::new();
        for (index, bind) in spec.mounts.iter().enumerate() {
            if bind.readonly {
                let copy = scratch.join("binds").join(index.to_string());
                copy_source(&bind.source, &copy).map_err(|err| {
                    unsupported(
                        &bind.target,
                        &format!("copying {}: {err}", bind.source.display()),
                    )
                })?;
                movable.push(None);
            } else {
                let (Some(parent), Some(name)) = (bind.source.parent(), bind.source.file_name())
                else {
                    return Err(unsupported(
                        &bind.target,
                        "its source has no parent directory",
                    ));
                };
                movable.push(Some((open_dir(parent)?, PathBuf::from(name))));
            }
        }
        Ok(Outside {
            stash,
            copies,
            movable,
        })
    }
}

/// A mount chroot isolation cannot stand in for.
fn unsupported(target: &Path, why: &str) -> SetupError {
    SetupError::Invalid(format!(
        "RUN --mount with target {}: not supported with chroot isolation ({why}); \
         build with --isolation=oci where namespaces and mounts are allowed",
        target.display()
    ))
}

fn open_dir(path: &Path) -> Result<OwnedFd, SetupError> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening {}", path.display()))
}

/// Copies a read-only bind's source (a tree or one file) to `copy`.
fn copy_source(source: &Path, copy: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(source).map_err(|err| err.to_string())?;
    if meta.is_dir() {
        fs::create_dir(copy).map_err(|err| err.to_string())?;
        crate::layer::copy::copy_tree(source, copy).map_err(|err| err.to_string())
    } else if meta.is_file() {
        fs::copy(source, copy).map_err(|err| err.to_string())?;
        std::os::unix::fs::lchown(copy, Some(meta.uid()), Some(meta.gid()))
            .map_err(|err| err.to_string())
    } else {
        Err("only a directory or a regular file can be copied in".into())
    }
}

/// What a staged path holds for the step.
enum Content<'a> {
    /// An empty directory with this mode.
    Dir(u32),
    /// `/dev`: a directory with the default nodes where `mknod` may.
    Dev,
    /// A file with this content and mode, owned by root.
    File(&'a [u8], u32),
    /// A secret file.
    Secret(&'a SecretFile),
    /// The copy of the read-only bind source number N.
    Copy(usize),
    /// The writable bind source number N, moved in and back out.
    Move(usize),
}

/// One path staged in the rootfs, to take out after the step.
struct Staged {
    target: PathBuf,
    /// The image's file moved aside, by its name in the stash.
    stash: Option<String>,
    /// Directories made above `target`, outermost first.
    made: Vec<PathBuf>,
    /// For a moved bind source: its index and file type.
    moved: Option<(usize, rustix::fs::FileType)>,
}

fn stage_all(spec: &Spec, outside: &Outside, staged: &mut Vec<Staged>) -> Result<(), SetupError> {
    let etc = [
        ("/etc/hosts", spec.hosts.as_bytes()),
        ("/etc/resolv.conf", spec.resolv_conf.as_bytes()),
    ];
    let hostname = format!("{}\n", spec.hostname);
    let mut items: Vec<(PathBuf, Content<'_>)> = vec![
        ("/proc".into(), Content::Dir(0o555)),
        ("/sys".into(), Content::Dir(0o555)),
        ("/dev".into(), Content::Dev),
    ];
    items.extend(
        etc.iter()
            .map(|(path, text)| (PathBuf::from(path), Content::File(text, 0o644))),
    );
    items.push((
        "/etc/hostname".into(),
        Content::File(hostname.as_bytes(), 0o644),
    ));
    for (index, bind) in spec.mounts.iter().enumerate() {
        let content = if bind.readonly {
            Content::Copy(index)
        } else {
            Content::Move(index)
        };
        items.push((bind.target.clone(), content));
    }
    // tmpfs mounts are world-writable with the sticky bit, as Docker's.
    items.extend(
        spec.tmpfs
            .iter()
            .map(|t| (t.target.clone(), Content::Dir(0o1777))),
    );
    items.extend(
        spec.secrets
            .iter()
            .map(|s| (s.target.clone(), Content::Secret(s))),
    );
    for (index, (target, content)) in items.into_iter().enumerate() {
        stage(&target, content, index, outside, staged)?;
    }
    Ok(())
}

/// Puts `content` at `target`, moving what is there into the stash as
/// `index`, and records it in `staged` (also when it fails half-way).
fn stage(
    target: &Path,
    content: Content<'_>,
    index: usize,
    outside: &Outside,
    staged: &mut Vec<Staged>,
) -> Result<(), SetupError> {
    let what = || format!("putting {} in place for the step", target.display());
    let parent = target.parent().unwrap_or(Path::new("/"));
    staged.push(Staged {
        target: target.to_path_buf(),
        stash: None,
        made: Vec::new(),
        moved: None,
    });
    let item = staged.last_mut().expect("just pushed");
    item.made = make_parents(parent)?;
    let times = times_of(parent)?;
    if fs::symlink_metadata(target).is_ok() {
        let name = index.to_string();
        rustix::fs::renameat(CWD, target, &outside.stash, name.as_str()).context(what)?;
        item.stash = Some(name);
    }
    match content {
        Content::Dir(mode) => make_dir(target, mode).context(what)?,
        Content::Dev => make_dev(target).context(what)?,
        Content::File(data, mode) => write_file(target, data, mode, 0, 0).context(what)?,
        Content::Secret(secret) => write_file(
            target,
            secret.data.expose(),
            secret.mode & 0o7777,
            secret.uid,
            secret.gid,
        )
        .context(what)?,
        Content::Copy(bind) => {
            rustix::fs::renameat(&outside.copies, bind.to_string().as_str(), CWD, target)
                .context(what)?;
        }
        Content::Move(bind) => {
            let Some((dir, name)) = &outside.movable[bind] else {
                return Err(SetupError::Invalid(format!("bind {bind} is not movable")));
            };
            let kind = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode))
                .context(what)?;
            rustix::fs::renameat(dir, name, CWD, target).map_err(|err| {
                unsupported(
                    target,
                    &format!(
                        "its source cannot be moved into the rootfs: {}",
                        std::io::Error::from(err)
                    ),
                )
            })?;
            item.moved = Some((bind, kind));
        }
    }
    set_times(parent, times)
}

impl Staged {
    /// Takes the staged path out again and puts back what the image had
    /// there (a moved bind source goes back where it came from).
    fn unstage(self, outside: &Outside) -> Result<(), SetupError> {
        let what = || format!("taking {} out after the step", self.target.display());
        let parent = self.target.parent().unwrap_or(Path::new("/"));
        if let Ok(times) = times_of(parent) {
            let found = rustix::fs::statat(CWD, &self.target, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode));
            match (self.moved, found) {
                (Some((bind, kind)), Some(now)) if kind == now => {
                    let (dir, name) = outside.movable[bind]
                        .as_ref()
                        .expect("a moved source is movable");
                    rustix::fs::renameat(CWD, &self.target, dir, name).context(what)?;
                    // Checked again where the step cannot reach: a process
                    // it left may have swapped in a symlink meanwhile, which
                    // must not become a cache directory on the host.
                    let back = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode))
                        .context(what)?;
                    if back != kind {
                        let flags = match back {
                            rustix::fs::FileType::Directory => AtFlags::REMOVEDIR,
                            _ => AtFlags::empty(),
                        };
                        rustix::fs::unlinkat(dir, name, flags).context(what)?;
                    }
                }
                (_, Some(_)) => remove(&self.target).context(what)?,
                (_, None) => {}
            }
            if let Some(name) = &self.stash {
                rustix::fs::renameat(&outside.stash, name.as_str(), CWD, &self.target)
                    .context(what)?;
            }
            set_times(parent, times)?;
        }
        for dir in self.made.iter().rev() {
            let above = dir.parent().unwrap_or(Path::new("/"));
            let times = times_of(above)?;
            match fs::remove_dir(dir) {
                // The step left files there: they, and it, are its own.
                Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) => return Ok(()),
                other => other.context(what)?,
            }
            set_times(above, times)?;
        }
        Ok(())
    }
}

/// Makes the missing directories of `dir` (0755), keeping the times of the
/// ones above; returns those made, outermost first.
fn make_parents(dir: &Path) -> Result<Vec<PathBuf>, SetupError> {
    let mut made = Vec::new();
    let mut path = PathBuf::from("/");
    for component in dir.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let above = path.clone();
        path.push(name);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {
                return Err(SetupError::Invalid(format!(
                    "{} in the rootfs is not a directory",
                    path.display()
                )));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).context(|| format!("inspecting {}", path.display())),
        }
        let times = times_of(&above)?;
        make_dir(&path, 0o755).context(|| format!("creating {}", path.display()))?;
        set_times(&above, times)?;
        made.push(path.clone());
    }
    Ok(made)
}

fn make_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A fresh `/dev`: the default nodes where `mknod` is allowed (root with
/// CAP_MKNOD, outside a user namespace), `shm` and the `/proc/self/fd`
/// links Docker makes.
fn make_dev(dev: &Path) -> std::io::Result<()> {
    make_dir(dev, 0o755)?;
    for (name, major, minor) in DEV_NODES {
        match rustix::fs::mknodat(
            CWD,
            dev.join(name),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        ) {
            Ok(()) => fs::set_permissions(dev.join(name), fs::Permissions::from_mode(0o666))?,
            Err(rustix::io::Errno::PERM | rustix::io::Errno::ACCESS) => {}
            Err(err) => return Err(err.into()),
        }
    }
    make_dir(&dev.join("shm"), 0o1777)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))?;
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Removes whatever is at `path` (a tree, never following a symlink).
fn remove(path: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn times_of(dir: &Path) -> Result<(SystemTime, SystemTime), SetupError> {
    let what = || format!("reading the times of {}", dir.display());
    let meta = fs::metadata(dir).context(what)?;
    Ok((
        meta.accessed().context(what)?,
        meta.modified().context(what)?,
    ))
}

fn set_times(dir: &Path, (accessed, modified): (SystemTime, SystemTime)) -> Result<(), SetupError> {
    File::open(dir)
        .and_then(|file| {
            file.set_times(
                FileTimes::new()
                    .set_accessed(accessed)
                    .set_modified(modified),
            )
        })
        .context(|| format!("setting the times of {}", dir.display()))
}
