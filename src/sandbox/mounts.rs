//! The step's filesystem: the rootfs (overlay or plain directory), a fresh
//! `/proc`, a minimal `/dev`, a read-only `/sys`, the `/etc` files, extra bind
//! mounts, and the switch into the rootfs with `pivot_root`.
//!
//! Order (as runc and bubblewrap do it): make every mount private, mount the
//! rootfs, mount the kernel filesystems under it while the host's `/proc` is
//! still visible (the kernel only lets a user namespace mount procfs or
//! sysfs when an unobstructed instance is visible), pivot into it, detach
//! the old root, then attach the extra bind mounts, whose targets are then
//! resolved inside the rootfs and cannot point back to the host.

use super::helper::{Context, Scratch, SetupError};
use super::mountpoints::ETC_FILES;
use super::spec::{BindMount, Rootfs, Security, TmpfsMount};
use super::targets::Target;
use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use std::ffi::CStr;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Keeps every mount of the step out of the host's mount table.
pub(crate) fn make_private() -> Result<(), SetupError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .context(|| "making the mounts private".into())
}

/// What a mount the step may write to, or that holds image or context
/// files, must deny: opening device nodes (`nodev`), unless `security` is
/// insecure. Without a devices cgroup this is what keeps a node made with
/// CAP_MKNOD, or shipped in a base layer or a context, from reaching the
/// host's memory or disks; mknod itself stays allowed, as with Docker.
fn no_devices(security: Security) -> MountAttrFlags {
    match security {
        Security::Sandbox => MountAttrFlags::MOUNT_ATTR_NODEV,
        Security::Insecure => MountAttrFlags::empty(),
    }
}

/// Mounts the rootfs on `scratch.root()`, `nodev` unless `security` is
/// insecure.
pub(crate) fn mount_rootfs(
    rootfs: &Rootfs,
    scratch: &Scratch,
    rootless: bool,
    security: Security,
) -> Result<(), SetupError> {
    let target = scratch.root();
    let attrs = no_devices(security);
    match rootfs {
        Rootfs::Overlay { lower, upper, work } => {
            let layers: Vec<PathBuf> = std::iter::once(scratch.mountpoint_layer())
                .chain(lower.iter().cloned())
                .collect();
            mount_overlay(&layers, upper, work, rootless, attrs, &target)
                .map_err(|err| SetupError::Overlay(Box::new(err)))
        }
        Rootfs::Directory(dir) => bind(dir, &target, attrs),
    }
}

/// Makes the missing mount targets of the step in the mountpoint layer:
/// through an overlay of the image's layers whose upper directory is that
/// layer, mounted on `scratch.root()` and taken down again, so that the
/// targets resolve (symlinks, whiteouts) as the step will see them.
pub(crate) fn make_targets_in_layer(
    lower: &[PathBuf],
    targets: &[Target],
    scratch: &Scratch,
    rootless: bool,
) -> Result<(), SetupError> {
    if targets.is_empty() {
        return Ok(());
    }
    let root = scratch.root();
    let work = scratch.setup_work();
    fs::create_dir(&work).context(|| "creating the setup overlay's workdir".into())?;
    let layer = scratch.mountpoint_layer();
    mount_overlay(
        lower,
        &layer,
        &work,
        rootless,
        MountAttrFlags::empty(),
        &root,
    )
    .map_err(|err| SetupError::Overlay(Box::new(err)))?;
    let made = super::targets::create(&root, targets);
    rustix::mount::unmount(&root, UnmountFlags::empty())
        .context(|| "taking down the setup overlay".into())?;
    // Overlayfs leaves a mode-0 `work` directory there, which the invoking
    // user could not remove after a rootless step; root of the step can.
    fs::remove_dir_all(&work).context(|| "removing the setup overlay's workdir".into())?;
    made.map(drop)
}

/// Overlay through the new mount API: one `lowerdir+` per layer avoids the
/// page-size limit of the legacy option string (and any escaping), which
/// needs Linux ≥ 6.8. `attrs` restrict the mount (e.g. `nodev`).
fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    rootless: bool,
    attrs: MountAttrFlags,
    target: &Path,
) -> Result<(), SetupError> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .context(|| "opening an overlay filesystem context".into())?;
    for layer in layers {
        let set = rustix::mount::fsconfig_set_string(&fs, "lowerdir+", layer);
        checked(&fs, set, || {
            format!(
                "adding the overlay layer {} (lowerdir+ needs Linux ≥ 6.8)",
                layer.display()
            )
        })?;
    }
    let set = rustix::mount::fsconfig_set_string(&fs, "upperdir", upper);
    checked(&fs, set, || {
        format!("setting the overlay upperdir {}", upper.display())
    })?;
    let set = rustix::mount::fsconfig_set_string(&fs, "workdir", work);
    checked(&fs, set, || {
        format!("setting the overlay workdir {}", work.display())
    })?;
    // Plain copy-ups and whiteouts only, so the upper directory diffs simply.
    for (key, value) in [("redirect_dir", "nofollow"), ("metacopy", "off")] {
        let set = rustix::mount::fsconfig_set_string(&fs, key, value);
        checked(&fs, set, || {
            format!("setting the overlay option {key}={value}")
        })?;
    }
    // No fsync per copied-up file (Buildah mounts the same way): the upper
    // directory is a throw-away until the step's snapshot, and a fresh
    // workdir per step never meets the leftover marker a crash would leave.
    let set = rustix::mount::fsconfig_set_flag(&fs, "volatile");
    checked(&fs, set, || "setting the overlay option volatile".into())?;
    if rootless {
        let set = rustix::mount::fsconfig_set_flag(&fs, "userxattr");
        checked(&fs, set, || "setting the overlay option userxattr".into())?;
    }
    let created = rustix::mount::fsconfig_create(&fs);
    checked(&fs, created, || {
        format!("creating the overlay (upper {})", upper.display())
    })?;
    let mounted = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs);
    let mount = checked(&fs, mounted, || "mounting the overlay".into())?;
    attach(&mount, target)
}

/// Adds what the kernel logged on the filesystem context to a failure.
fn checked<T>(
    fs: &OwnedFd,
    result: rustix::io::Result<T>,
    what: impl FnOnce() -> String,
) -> Result<T, SetupError> {
    result.map_err(|err| {
        let detail = kernel_messages(fs);
        let what = what();
        SetupError::Os {
            what: if detail.is_empty() {
                what
            } else {
                format!("{what} ({detail})")
            },
            source: err.into(),
        }
    })
}

/// What the kernel logged on a filesystem context (why a mount failed).
fn kernel_messages(fs: &OwnedFd) -> String {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        messages.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    messages.join("; ")
}

/// A fresh procfs for the step's pid namespace.
pub(crate) fn mount_proc(root: &Path) -> Result<(), SetupError> {
    let target = root.join("proc");
    rustix::mount::mount(
        "proc",
        &target,
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .context(|| "mounting /proc".into())
}

/// Device nodes bind-mounted from the host into the step's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// A tmpfs `/dev` with the usual devices, a private devpts and a
/// `/dev/shm` of `shm_size` bytes. The devices are bind mounts of the
/// host's nodes, which keep their own mount's flags, so the tmpfs itself is
/// `nodev` (unless `security` is insecure): a node made in `/dev` by the
/// step cannot be opened.
pub(crate) fn mount_dev(
    root: &Path,
    devpts_gid: Option<u32>,
    shm_size: u64,
    security: Security,
) -> Result<(), SetupError> {
    let dev = root.join("dev");
    let mut flags = MountFlags::NOSUID | MountFlags::STRICTATIME;
    if security == Security::Sandbox {
        flags |= MountFlags::NODEV;
    }
    mount_fs("tmpfs", &dev, flags, c"mode=755,size=65536k", "/dev")?;
    for name in DEVICES {
        let target = dev.join(name);
        fs::File::create(&target).context(|| format!("creating /dev/{name}"))?;
        bind(
            Path::new("/dev").join(name).as_path(),
            &target,
            MountAttrFlags::empty(),
        )?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).context(|| "creating /dev/pts".into())?;
    let options = match devpts_gid {
        Some(gid) => format!("newinstance,ptmxmode=0666,mode=0620,gid={gid}"),
        None => "newinstance,ptmxmode=0666,mode=0620".into(),
    };
    let options =
        std::ffi::CString::new(options).map_err(|err| SetupError::Invalid(err.to_string()))?;
    mount_fs(
        "devpts",
        &pts,
        MountFlags::NOSUID | MountFlags::NOEXEC,
        &options,
        "/dev/pts",
    )?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).context(|| "creating /dev/shm".into())?;
    let options = std::ffi::CString::new(format!("mode=1777,size={shm_size}"))
        .map_err(|err| SetupError::Invalid(err.to_string()))?;
    mount_fs(
        "tmpfs",
        &shm,
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        &options,
        "/dev/shm",
    )?;
    for (link, points_to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(points_to, dev.join(link))
            .context(|| format!("creating /dev/{link}"))?;
    }
    Ok(())
}

fn mount_fs(
    fstype: &str,
    target: &Path,
    flags: MountFlags,
    options: &CStr,
    what: &str,
) -> Result<(), SetupError> {
    rustix::mount::mount(fstype, target, fstype, flags, Some(options))
        .context(|| format!("mounting {what}"))
}

/// `/sys`, read-only unless `security` is insecure: a fresh sysfs where the
/// kernel allows it (it refuses in a user namespace that shares the host's
/// network namespace), otherwise a recursive bind of the host's.
pub(crate) fn mount_sys(root: &Path, security: Security) -> Result<(), SetupError> {
    let target = root.join("sys");
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    if security == Security::Sandbox {
        flags |= MountFlags::RDONLY;
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    match rustix::mount::mount("sysfs", &target, "sysfs", flags, None) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::PERM) => bind(Path::new("/sys"), &target, attrs),
        Err(err) => Err(err).context(|| "mounting /sys".into()),
    }
}

/// Binds the scratch copies of `/etc/{hosts,hostname,resolv.conf}`: files
/// the helper wrote for this step alone, so a step writing to them changes
/// no host file.
pub(crate) fn mount_etc_files(root: &Path, scratch: &Scratch) -> Result<(), SetupError> {
    for name in ETC_FILES {
        bind(
            &scratch.etc_file(name),
            &root.join("etc").join(name),
            MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )?;
    }
    Ok(())
}

/// A bind mount cut from the host before `pivot_root`, attached after it.
pub(crate) struct Detached {
    tree: OwnedFd,
    target: PathBuf,
    is_dir: bool,
}

/// Clones the sources of the extra bind mounts while the host is visible;
/// `nodev` unless `security` is insecure (they hold context, stage, image
/// or cache files: any node in them is untrusted).
pub(crate) fn detach_binds(
    mounts: &[BindMount],
    security: Security,
) -> Result<Vec<Detached>, SetupError> {
    mounts
        .iter()
        .map(|mount| {
            let mut attrs = no_devices(security);
            if mount.readonly {
                attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
            }
            let tree = clone_tree(&mount.source, attrs)?;
            let stat = rustix::fs::fstat(&tree)
                .context(|| format!("inspecting {}", mount.source.display()))?;
            Ok(Detached {
                tree,
                target: mount.target.clone(),
                is_dir: rustix::fs::FileType::from_raw_mode(stat.st_mode)
                    == rustix::fs::FileType::Directory,
            })
        })
        .collect()
}

/// Makes the tmpfs mounts, detached, to attach with the bind mounts.
pub(crate) fn detach_tmpfs(mounts: &[TmpfsMount]) -> Result<Vec<Detached>, SetupError> {
    mounts
        .iter()
        .map(|mount| {
            let target = mount.target.display();
            let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
                .context(|| format!("opening a tmpfs for {target}"))?;
            if let Some(size) = mount.size {
                let set = rustix::mount::fsconfig_set_string(&fs, "size", size.to_string());
                checked(&fs, set, || {
                    format!("setting the size of the tmpfs {target}")
                })?;
            }
            let created = rustix::mount::fsconfig_create(&fs);
            checked(&fs, created, || format!("creating the tmpfs {target}"))?;
            let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
            if mount.readonly {
                attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
            }
            let mounted = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs);
            let tree = checked(&fs, mounted, || format!("mounting the tmpfs {target}"))?;
            Ok(Detached {
                tree,
                target: mount.target.clone(),
                is_dir: true,
            })
        })
        .collect()
}

/// Attaches the extra bind mounts inside the new root. Their targets were
/// made before (see `targets`); one under a filesystem the sandbox mounted
/// itself (`/dev`, a tmpfs) is made here. An existing target is not opened
/// for writing, which would copy it up into the step's layer.
pub(crate) fn attach_binds(binds: Vec<Detached>) -> Result<(), SetupError> {
    for bind in binds {
        let target = &bind.target;
        let created = if fs::metadata(target).is_ok() {
            Ok(())
        } else if bind.is_dir {
            fs::create_dir_all(target)
        } else {
            let parent = target.parent().unwrap_or(Path::new("/"));
            fs::create_dir_all(parent).and_then(|()| {
                match fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)
                {
                    Ok(_) => Ok(()),
                    Err(err) if err.raw_os_error() == Some(libc::EISDIR) => Ok(()),
                    Err(err) => Err(err),
                }
            })
        };
        created.context(|| format!("creating the mount target {}", target.display()))?;
        rustix::mount::move_mount(
            &bind.tree,
            c"",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_SYMLINKS,
        )
        .context(|| format!("mounting onto {}", target.display()))?;
    }
    Ok(())
}

/// Binds `source` onto `target` with the given extra restrictions.
pub(crate) fn bind(source: &Path, target: &Path, attrs: MountAttrFlags) -> Result<(), SetupError> {
    attach(&clone_tree(source, attrs)?, target)
}

pub(crate) fn attach(tree: &OwnedFd, target: &Path) -> Result<(), SetupError> {
    rustix::mount::move_mount(
        tree,
        c"",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .context(|| format!("mounting onto {}", target.display()))
}

/// A detached recursive copy of the mount tree at `source`, with `attrs`
/// applied to every mount in it.
fn clone_tree(source: &Path, attrs: MountAttrFlags) -> Result<OwnedFd, SetupError> {
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .context(|| format!("cloning the mount of {}", source.display()))?;
    if !attrs.is_empty() {
        set_attrs_recursive(&tree, attrs)
            .context(|| format!("restricting the mount of {}", source.display()))?;
    }
    Ok(tree)
}

/// `struct mount_attr` of mount_setattr(2), which rustix does not wrap.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(crate) fn set_attrs_recursive(tree: &OwnedFd, attrs: MountAttrFlags) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: u64::from(attrs.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size_of::<MountAttr>()` bytes from `attr`,
    // which is a live, correctly laid out struct; the path is a valid C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes `root` the root of the mount namespace and detaches the host's.
pub(crate) fn pivot(root: &Path) -> Result<(), SetupError> {
    rustix::process::chdir(root).context(|| "entering the rootfs".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // detach below removes it without needing a directory in the rootfs.
    rustix::process::pivot_root(".", ".").context(|| "pivoting into the rootfs".into())?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .context(|| "detaching the host's root".into())?;
    rustix::process::chdir("/").context(|| "entering the new root".into())
}
