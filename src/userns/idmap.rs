//! User and group ID maps of a rootless user namespace (a RUN step's, or
//! the one layers are unpacked in), written by the parent for a helper's
//! new user namespace.
//!
//! By default one ID is mapped (`0 <uid> 1`): the invoking user becomes root
//! inside. When `/etc/subuid` and `/etc/subgid` grant the user a range and the
//! setuid `newuidmap`/`newgidmap` tools are installed, inside IDs `1..` map to
//! that range as well, so `USER 1000` and `chown` work as with Podman.

use crate::layer::owners::{IdRange, OwnerMap};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Which IDs exist inside the user namespace the parent will map: inside IDs
/// `0..uids` and `0..gids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdMapSummary {
    /// Number of mapped user IDs, starting at 0.
    pub uids: u32,
    /// Number of mapped group IDs, starting at 0.
    pub gids: u32,
    /// Whether `setgroups(2)` stays allowed (false for a single-ID map, where
    /// the kernel requires `deny` before an unprivileged gid_map write).
    pub setgroups: bool,
}

/// A range of subordinate IDs granted in `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubIdRange {
    /// First outside ID of the range.
    pub start: u32,
    /// Number of IDs.
    pub count: u32,
}

/// How the helper's user namespace is mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdMap {
    /// Inside 0 is the invoking user and group; nothing else is mapped.
    Single {
        /// The invoking user's effective uid.
        uid: u32,
        /// The invoking user's effective gid.
        gid: u32,
    },
    /// Inside 0 is the invoking user, inside `1..=count` the subordinate range.
    Range {
        /// The invoking user's effective uid.
        uid: u32,
        /// The invoking user's effective gid.
        gid: u32,
        /// From `/etc/subuid`.
        subuid: SubIdRange,
        /// From `/etc/subgid`.
        subgid: SubIdRange,
        /// The setuid tool that writes a range into `uid_map`.
        newuidmap: PathBuf,
        /// The setuid tool that writes a range into `gid_map`.
        newgidmap: PathBuf,
    },
}

/// Why the maps could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    /// Writing a `/proc/<pid>/…` map file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The proc file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `newuidmap`/`newgidmap` could not be run or refused the map.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// The tool's path.
        tool: PathBuf,
        /// Its exit status, or why it could not start.
        status: String,
        /// What it printed.
        stderr: String,
    },
}

impl IdMap {
    /// Chooses the map for the current (unprivileged) user: a range when the
    /// system grants one and the tools exist, otherwise the single-ID map.
    pub(crate) fn detect() -> IdMap {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let name = user_name(uid);
        let subuid = read_sub_ids(Path::new("/etc/subuid"), uid, name.as_deref());
        let subgid = read_sub_ids(Path::new("/etc/subgid"), uid, name.as_deref());
        let tools = (find_in_path("newuidmap"), find_in_path("newgidmap"));
        match (subuid, subgid, tools) {
            (Some(subuid), Some(subgid), (Some(newuidmap), Some(newgidmap))) => IdMap::Range {
                uid,
                gid,
                subuid,
                subgid,
                newuidmap,
                newgidmap,
            },
            _ => IdMap::Single { uid, gid },
        }
    }

    /// How files the namespace's users own on disk are recorded in layers.
    pub(crate) fn owner_map(&self) -> OwnerMap {
        let own = |id| {
            Some(IdRange {
                inside: 0,
                outside: id,
                count: 1,
            })
        };
        let sub = |range: &SubIdRange| {
            Some(IdRange {
                inside: 1,
                outside: range.start,
                count: range.count,
            })
        };
        match self {
            IdMap::Single { uid, gid } => OwnerMap::single(*uid, *gid),
            IdMap::Range {
                uid,
                gid,
                subuid,
                subgid,
                ..
            } => OwnerMap::Namespace {
                uids: [own(*uid), sub(subuid)],
                gids: [own(*gid), sub(subgid)],
            },
        }
    }

    /// Which inside IDs the helper may switch to.
    pub(crate) fn summary(&self) -> IdMapSummary {
        match self {
            IdMap::Single { .. } => IdMapSummary {
                uids: 1,
                gids: 1,
                setgroups: false,
            },
            IdMap::Range { subuid, subgid, .. } => IdMapSummary {
                uids: subuid.count.saturating_add(1),
                gids: subgid.count.saturating_add(1),
                setgroups: true,
            },
        }
    }

    /// Writes the maps of the user namespace of process `pid`.
    pub(crate) async fn apply(&self, pid: u32) -> Result<(), IdMapError> {
        let map = self.clone();
        tokio::task::spawn_blocking(move || map.apply_blocking(pid))
            .await
            .map_err(|err| IdMapError::Write {
                path: PathBuf::from(format!("/proc/{pid}")),
                source: std::io::Error::other(err),
            })?
    }

    /// [`IdMap::apply`] for callers outside an async runtime.
    pub(crate) fn apply_blocking(&self, pid: u32) -> Result<(), IdMapError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        match self {
            IdMap::Single { uid, gid } => {
                write_proc(&proc_dir.join("uid_map"), &format!("0 {uid} 1\n"))?;
                // An unprivileged gid_map write requires setgroups to be denied,
                // or a process could drop a group that restricts it.
                write_proc(&proc_dir.join("setgroups"), "deny")?;
                write_proc(&proc_dir.join("gid_map"), &format!("0 {gid} 1\n"))
            }
            IdMap::Range {
                uid,
                gid,
                subuid,
                subgid,
                newuidmap,
                newgidmap,
            } => {
                run_map_tool(newuidmap, pid, *uid, *subuid)?;
                run_map_tool(newgidmap, pid, *gid, *subgid)
            }
        }
    }
}

fn write_proc(path: &Path, content: &str) -> Result<(), IdMapError> {
    std::fs::write(path, content).map_err(|source| IdMapError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn run_map_tool(tool: &Path, pid: u32, id: u32, range: SubIdRange) -> Result<(), IdMapError> {
    let output = std::process::Command::new(tool)
        .args([
            pid.to_string(),
            "0".into(),
            id.to_string(),
            "1".into(),
            "1".into(),
            range.start.to_string(),
            range.count.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| IdMapError::Tool {
            tool: tool.to_path_buf(),
            status: err.to_string(),
            stderr: String::new(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(IdMapError::Tool {
            tool: tool.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// The login name of `uid` from `/etc/passwd` (subuid files may name users
/// either way).
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

fn read_sub_ids(path: &Path, uid: u32, name: Option<&str>) -> Option<SubIdRange> {
    parse_sub_ids(&std::fs::read_to_string(path).ok()?, uid, name)
}

/// Finds the first `/etc/subuid`-format entry for the user, by name or uid.
fn parse_sub_ids(content: &str, uid: u32, name: Option<&str>) -> Option<SubIdRange> {
    let uid = uid.to_string();
    content.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        if owner != uid && Some(owner) != name {
            return None;
        }
        let start = fields.next()?.parse().ok()?;
        let count = fields.next()?.parse().ok()?;
        (count > 0).then_some(SubIdRange { start, count })
    })
}

/// The first `tool` in the directories of `PATH`.
pub(crate) fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_users_range_by_name_or_uid() {
        let file = "# comment\nalice:100000:65536\n1001:200000:1000\nbob:bad:1\n";
        assert_eq!(
            parse_sub_ids(file, 1000, Some("alice")),
            Some(SubIdRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_sub_ids(file, 1001, None),
            Some(SubIdRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_sub_ids(file, 1002, Some("bob")), None);
        assert_eq!(parse_sub_ids(file, 1003, Some("carol")), None);
    }

    #[test]
    fn a_range_maps_root_plus_the_subordinate_ids() {
        let range = IdMap::Range {
            uid: 1000,
            gid: 1000,
            subuid: SubIdRange {
                start: 100000,
                count: 65536,
            },
            subgid: SubIdRange {
                start: 100000,
                count: 100,
            },
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        };
        assert_eq!(
            range.summary(),
            IdMapSummary {
                uids: 65537,
                gids: 101,
                setgroups: true
            }
        );
        let single = IdMap::Single {
            uid: 1000,
            gid: 1000,
        };
        assert_eq!(
            single.summary(),
            IdMapSummary {
                uids: 1,
                gids: 1,
                setgroups: false
            }
        );
    }
}
