//! Each step in a cgroup of its own: a `pids` limit (a guard against fork
//! bombs) and `--memory`'s limit.
//!
//! Where the step's cgroup goes is found once per process ([`support`]):
//! for each of the `pids` and `memory` controllers, the cgroup v1 hierarchy
//! that has it (a hybrid or v1 host), else the unified (v2) hierarchy. The
//! step's cgroup is a child of builder's own cgroup there, so it stays under
//! whatever limits builder runs with; on v2 that needs the controllers
//! enabled in builder's cgroup (a delegated subtree, or one without
//! processes: builder moves itself into a leaf where it is alone), and root
//! falls back to `builder/` under the hierarchy's root,
//! as Docker's cgroupfs driver does. Without any of that (rootless without a
//! delegated subtree, a v1 host as an unprivileged user) steps run without
//! a cgroup, which the build says once.
//!
//! The parent makes the cgroup and writes its limits; the helper joins it
//! before it makes any namespace, so the step's every process is in it. The
//! cgroup is removed after the step (its processes killed first when the
//! step was cancelled), and cgroups left by a killed builder are removed by
//! the next one.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The pids limit of each step unless `BUILDER_PIDS_LIMIT` says otherwise:
/// generous for parallel compilers, small enough that a fork bomb ends.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// Prefix of the cgroups builder makes; the builder's pid follows.
const PREFIX: &str = "builder-";

/// Why a step's cgroup could not be made or set up.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct CgroupError {
    /// What was being done.
    what: &'static str,
    /// The cgroup file or directory.
    path: PathBuf,
    /// The OS error.
    source: std::io::Error,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError { what, path, source }
}

/// The limits a step's cgroup enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupLimits {
    /// Most processes and threads at once; `None` is no limit.
    pub pids: Option<u64>,
    /// Most memory in bytes (`--memory`); the step may use as much swap
    /// again, as Docker allows without `--memory-swap`.
    pub memory: Option<u64>,
}

impl Default for CgroupLimits {
    fn default() -> Self {
        CgroupLimits {
            pids: Some(DEFAULT_PIDS_LIMIT),
            memory: None,
        }
    }
}

/// A cgroup hierarchy: its version decides the names of the limit files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Where a controller's step cgroups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parent {
    dir: PathBuf,
    version: Version,
}

/// Where steps' cgroups go, or why they cannot be made.
#[derive(Debug)]
enum Support {
    /// The parent directories for `pids` and `memory` (the same one when
    /// both controllers live in one hierarchy).
    Available { pids: Parent, memory: Parent },
    /// Why not.
    Unavailable(String),
}

fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| match detect() {
        Ok((pids, memory)) => {
            remove_stale(&[&pids, &memory]);
            match probe(&pids, &memory) {
                Ok(()) => Support::Available { pids, memory },
                Err(err) if !rustix::process::geteuid().is_root() => Support::Unavailable(format!(
                    "{err}; an unprivileged user needs a delegated cgroup v2 subtree"
                )),
                Err(err) => Support::Unavailable(err.to_string()),
            }
        }
        Err(reason) => Support::Unavailable(reason),
    })
}

/// What a build says (once) where steps get no cgroup of their own: why,
/// and what becomes of `limits`; `None` where they get one.
pub fn unavailable_notice(limits: &CgroupLimits) -> Option<String> {
    let Support::Unavailable(reason) = support() else {
        return None;
    };
    let pids = if rustix::process::geteuid().is_root() {
        "no process limit"
    } else {
        "the process limit holds as an nproc rlimit in the step's user namespace"
    };
    let memory = if limits.memory.is_some() {
        ", and --memory is not applied"
    } else {
        ""
    };
    Some(format!(
        "steps run without a cgroup of their own ({reason}): {pids}{memory}"
    ))
}

/// One step's cgroup (a directory per hierarchy); removed on drop, its
/// processes killed first.
#[derive(Debug)]
pub(crate) struct StepCgroup {
    dirs: Vec<PathBuf>,
    /// The directory with the memory controller's files, and its version.
    memory: (PathBuf, Version),
}

impl StepCgroup {
    /// Makes a cgroup with `limits` for one step; `None` where cgroups are
    /// not available (see [`unavailable_notice`]).
    pub(crate) fn create(limits: &CgroupLimits) -> Result<Option<StepCgroup>, CgroupError> {
        let Support::Available { pids, memory } = support() else {
            return Ok(None);
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        make(pids, memory, &name, limits).map(Some)
    }

    /// The directories the step's processes must join.
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the kernel killed a process of the step for want of memory
    /// (over `--memory`, or over a limit builder itself runs under).
    pub(crate) fn oom_killed(&self) -> bool {
        let (dir, version) = &self.memory;
        let file = match version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("oom_kill "))
            .any(|count| count.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            remove(dir);
        }
    }
}

/// Makes `name` under the parents and writes the limits.
fn make(
    pids: &Parent,
    memory: &Parent,
    name: &str,
    limits: &CgroupLimits,
) -> Result<StepCgroup, CgroupError> {
    let pids_dir = pids.dir.join(name);
    let memory_dir = memory.dir.join(name);
    let mut cgroup = StepCgroup {
        dirs: Vec::new(),
        memory: (memory_dir.clone(), memory.version),
    };
    for dir in [&pids_dir, &memory_dir] {
        if !cgroup.dirs.contains(dir) {
            std::fs::create_dir(dir).map_err(io("creating the step's cgroup", dir))?;
            cgroup.dirs.push(dir.clone());
        }
    }
    let max = |value: Option<u64>| value.map_or("max".to_owned(), |v| v.to_string());
    write(&pids_dir.join("pids.max"), &max(limits.pids))?;
    if let Some(bytes) = limits.memory {
        match memory.version {
            Version::V1 => {
                write(
                    &memory_dir.join("memory.limit_in_bytes"),
                    &bytes.to_string(),
                )?;
                let swap = memory_dir.join("memory.memsw.limit_in_bytes");
                if swap.exists() {
                    write(&swap, &bytes.saturating_mul(2).to_string())?;
                }
            }
            Version::V2 => {
                write(&memory_dir.join("memory.max"), &bytes.to_string())?;
                let swap = memory_dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, &bytes.to_string())?;
                }
            }
        }
    }
    Ok(cgroup)
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io("writing", path))
}

/// Makes and removes one cgroup, so a host that lists the controllers but
/// refuses builder's writes is found before any step.
fn probe(pids: &Parent, memory: &Parent) -> Result<(), CgroupError> {
    let name = format!("{PREFIX}{}-probe", std::process::id());
    make(pids, memory, &name, &CgroupLimits::default()).map(drop)
}

/// Kills what is left in a cgroup and removes it; a cgroup that will not
/// go is left for the next builder's [`remove_stale`].
fn remove(dir: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir(dir) {
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                kill_members(dir);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            _ => return,
        }
    }
}

/// SIGKILLs every process in the cgroup (only a cancelled step has any).
fn kill_members(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|line| line.trim().parse().ok()) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Removes the step cgroups of builders that are gone (killed before they
/// could remove their own).
fn remove_stale(parents: &[&Parent]) {
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent.dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                remove(&entry.path());
            }
        }
    }
}

/// Finds where the `pids` and `memory` step cgroups go, or says why not.
fn detect() -> Result<(Parent, Parent), String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|err| format!("reading /proc/self/cgroup: {err}"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|err| format!("reading /proc/self/mountinfo: {err}"))?;
    let mounts = parse_mounts(&mounts);
    let memberships = parse_memberships(&own);
    let v1 = |controller: &str| -> Option<Parent> {
        let path = memberships.iter().find_map(|(controllers, path)| {
            controllers
                .split(',')
                .any(|c| c == controller)
                .then_some(path)
        })?;
        let mount = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))?;
        Some(Parent {
            dir: under_mount(mount, path),
            version: Version::V1,
        })
    };
    let (pids, memory) = (v1("pids"), v1("memory"));
    if let (Some(pids), Some(memory)) = (&pids, &memory) {
        return Ok((pids.clone(), memory.clone()));
    }
    let v2 = v2_parent(&mounts, &memberships)?;
    Ok((pids.unwrap_or_else(|| v2.clone()), memory.unwrap_or(v2)))
}

/// The v2 parent: builder's own cgroup if the controllers can be enabled
/// for its children, else (as root) `builder/` under the root.
fn v2_parent(mounts: &[Mount], memberships: &[(String, String)]) -> Result<Parent, String> {
    let Some(mount) = mounts.iter().find(|m| m.fstype == "cgroup2") else {
        return Err("no cgroup v2 hierarchy is mounted and cgroup v1 lacks pids or memory".into());
    };
    let Some((_, path)) = memberships
        .iter()
        .find(|(controllers, _)| controllers.is_empty())
    else {
        return Err("/proc/self/cgroup names no cgroup v2 membership".into());
    };
    let own = under_mount(mount, path);
    let controllers = std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !has("pids") || !has("memory") {
        return Err(format!(
            "the pids and memory controllers are not available in builder's cgroup v2 {} \
             (a hybrid host with them on cgroup v1 only, or a cgroup not delegated to this user)",
            own.display()
        ));
    }
    if enable_controllers(&own)
        .or_else(|_| move_into_a_leaf(&own))
        .is_ok()
    {
        return Ok(Parent {
            dir: own,
            version: Version::V2,
        });
    }
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "builder's cgroup {} is not a delegated subtree it can use (start builder with \
             `systemd-run --user --scope -p Delegate=yes`)",
            own.display()
        ));
    }
    let root = mount.point.clone();
    let base = root.join("builder");
    let made = enable_controllers(&root)
        .and_then(|()| match std::fs::create_dir(&base) {
            Err(err) if err.kind() != ErrorKind::AlreadyExists => Err(err),
            _ => Ok(()),
        })
        .and_then(|()| enable_controllers(&base));
    made.map_err(|err| format!("setting up {}: {err}", base.display()))?;
    Ok(Parent {
        dir: base,
        version: Version::V2,
    })
}

/// Where builder is alone in its (delegated) v2 cgroup, as when started by
/// `systemd-run --user --scope -p Delegate=yes`, moves it into a leaf
/// child, so that the controllers can be enabled for the children (a v2
/// cgroup with processes cannot), as rootless Podman does.
fn move_into_a_leaf(own: &Path) -> std::io::Result<()> {
    let me = std::process::id().to_string();
    let procs = std::fs::read_to_string(own.join("cgroup.procs"))?;
    if procs.lines().any(|pid| pid.trim() != me) {
        return Err(std::io::Error::other("other processes share the cgroup"));
    }
    let leaf = own.join(format!("{PREFIX}{me}-self"));
    match std::fs::create_dir(&leaf) {
        Err(err) if err.kind() != ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    std::fs::write(leaf.join("cgroup.procs"), &me)?;
    enable_controllers(own)
}

/// Lets the children of a v2 cgroup have `pids` and `memory` limits.
fn enable_controllers(dir: &Path) -> std::io::Result<()> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file)?;
    let on = |c: &str| enabled.split_whitespace().any(|x| x == c);
    if on("pids") && on("memory") {
        return Ok(());
    }
    std::fs::write(&file, "+pids +memory")
}

/// One line of `/proc/self/mountinfo`, the fields used here.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The mounted directory of the filesystem (not `/` in a cgroup
    /// namespace's view of an outer hierarchy).
    root: String,
    point: PathBuf,
    fstype: String,
    /// Super options (v1 hierarchies list their controllers there).
    options: String,
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let fstype = after.next()?.to_owned();
            let _source = after.next()?;
            Some(Mount {
                root: unescape(fields.get(3)?),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fstype,
                options: after.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u8, |n, b| n.wrapping_mul(8) + (b - b'0')));
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/self/cgroup` as (controllers, path) pairs; v2's controllers are
/// empty.
fn parse_memberships(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount`.
fn under_mount(mount: &Mount, path: &str) -> PathBuf {
    let relative = Path::new(path)
        .strip_prefix(&mount.root)
        .unwrap_or(Path::new(path));
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    mount.point.join(relative)
}

/// Moves the calling process (the helper, before it makes namespaces) into
/// the step's cgroup.
pub(crate) fn join(dirs: &[PathBuf]) -> std::io::Result<()> {
    let pid = std::process::id().to_string();
    for dir in dirs {
        std::fs::write(dir.join("cgroup.procs"), &pid).map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!("joining the step's cgroup {}: {err}", dir.display()),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 cgroup's interface files as plain files (the decisions only
    /// read and write them).
    fn cgroup_files(procs: &str, subtree: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), procs).unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), subtree).unwrap();
        dir
    }

    #[test]
    fn builder_alone_in_its_cgroup_moves_into_a_leaf_and_enables_the_controllers() {
        let me = std::process::id();
        let alone = cgroup_files(&format!("{me}\n"), "");
        move_into_a_leaf(alone.path()).unwrap();
        let leaf = alone.path().join(format!("builder-{me}-self"));
        assert_eq!(
            std::fs::read_to_string(leaf.join("cgroup.procs")).unwrap(),
            me.to_string()
        );
        assert_eq!(
            std::fs::read_to_string(alone.path().join("cgroup.subtree_control")).unwrap(),
            "+pids +memory"
        );
        // Others in the cgroup: builder does not move (nor could they).
        let shared = cgroup_files(&format!("1\n{me}\n"), "");
        assert!(move_into_a_leaf(shared.path()).is_err());
        assert!(!shared.path().join(format!("builder-{me}-self")).exists());
        // Controllers already on: nothing is written.
        let enabled = cgroup_files("", "memory pids\n");
        enable_controllers(enabled.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(enabled.path().join("cgroup.subtree_control")).unwrap(),
            "memory pids\n"
        );
    }

    #[test]
    fn mountinfo_and_memberships_of_a_hybrid_host() {
        let mounts = parse_mounts(
            "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
             50 31 0:40 /docker/x /mnt/a\\040b rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].options, "rw,pids");
        assert_eq!(mounts[1].fstype, "cgroup2");
        assert_eq!(mounts[2].point, Path::new("/mnt/a b"));
        let own = parse_memberships("8:pids:/a/b\n4:memory:/docker/x/y\n0::/\n");
        assert_eq!(own[0], ("pids".into(), "/a/b".into()));
        assert_eq!(own[2], (String::new(), "/".into()));
        assert_eq!(
            under_mount(&mounts[0], "/a/b"),
            Path::new("/sys/fs/cgroup/pids/a/b")
        );
        assert_eq!(
            under_mount(&mounts[2], "/docker/x/y"),
            Path::new("/mnt/a b/y")
        );
        assert_eq!(
            under_mount(&mounts[1], "/"),
            Path::new("/sys/fs/cgroup/unified")
        );
    }
}
