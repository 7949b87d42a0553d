//! The step's resource limits (RLIMITs): the same for every step whatever
//! limits builder's caller runs with, as a daemon's containers get theirs
//! from the daemon and not from the client, with `--ulimit` over them.
//!
//! The defaults are what Docker gives a RUN step on a stock install (the
//! daemon's systemd unit, and Docker 25's `nofile`): no process or core
//! size limit to raise, 1024 open files (hard 524288), an 8 MiB stack
//! (hard unlimited) and 8 MiB of locked memory; the rest as the kernel
//! starts. Root sets them exactly. Without `CAP_SYS_RESOURCE` (rootless, or
//! a root whose container lacks it) a hard limit cannot be raised past the
//! one builder was started with: defaults are lowered to it, a `--ulimit`
//! above it is an error.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A resource `--ulimit` can limit (Docker's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Address space (bytes).
    As,
    /// Core file size (bytes).
    Core,
    /// CPU time (seconds).
    Cpu,
    /// Data segment size (bytes).
    Data,
    /// File size (bytes).
    Fsize,
    /// File locks.
    Locks,
    /// Locked memory (bytes).
    Memlock,
    /// POSIX message queues (bytes).
    Msgqueue,
    /// Nice ceiling.
    Nice,
    /// Open files.
    Nofile,
    /// Processes of the user.
    Nproc,
    /// Resident set (bytes; ignored by Linux).
    Rss,
    /// Real-time priority.
    Rtprio,
    /// Real-time CPU time (microseconds).
    Rttime,
    /// Pending signals.
    Sigpending,
    /// Stack size (bytes).
    Stack,
}

const RESOURCES: [(Resource, &str); 16] = [
    (Resource::As, "as"),
    (Resource::Core, "core"),
    (Resource::Cpu, "cpu"),
    (Resource::Data, "data"),
    (Resource::Fsize, "fsize"),
    (Resource::Locks, "locks"),
    (Resource::Memlock, "memlock"),
    (Resource::Msgqueue, "msgqueue"),
    (Resource::Nice, "nice"),
    (Resource::Nofile, "nofile"),
    (Resource::Nproc, "nproc"),
    (Resource::Rss, "rss"),
    (Resource::Rtprio, "rtprio"),
    (Resource::Rttime, "rttime"),
    (Resource::Sigpending, "sigpending"),
    (Resource::Stack, "stack"),
];

impl Resource {
    fn name(self) -> &'static str {
        RESOURCES
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("?", |(_, name)| name)
    }

    fn kernel(self) -> rustix::process::Resource {
        use rustix::process::Resource as R;
        match self {
            Resource::As => R::As,
            Resource::Core => R::Core,
            Resource::Cpu => R::Cpu,
            Resource::Data => R::Data,
            Resource::Fsize => R::Fsize,
            Resource::Locks => R::Locks,
            Resource::Memlock => R::Memlock,
            Resource::Msgqueue => R::Msgqueue,
            Resource::Nice => R::Nice,
            Resource::Nofile => R::Nofile,
            Resource::Nproc => R::Nproc,
            Resource::Rss => R::Rss,
            Resource::Rtprio => R::Rtprio,
            Resource::Rttime => R::Rttime,
            Resource::Sigpending => R::Sigpending,
            Resource::Stack => R::Stack,
        }
    }
}

/// One limit: soft and hard values, `None` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Which resource.
    pub resource: Resource,
    /// The soft limit (what the step gets).
    pub soft: Option<u64>,
    /// The hard limit (how far the step may raise the soft one).
    pub hard: Option<u64>,
}

/// Why a `--ulimit` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UlimitError {
    /// Not `NAME=SOFT[:HARD]`.
    #[error("expected NAME=SOFT[:HARD], such as nofile=1024:2048")]
    Form,
    /// An unknown resource name.
    #[error(
        "unknown ulimit {0:?} (one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)"
    )]
    Name(String),
    /// A value that is not a number or -1.
    #[error("{0:?} is not a number (or -1 for unlimited)")]
    Value(String),
    /// The soft limit is above the hard one.
    #[error("the soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        /// The soft value as given.
        soft: String,
        /// The hard value as given.
        hard: String,
    },
}

impl FromStr for Ulimit {
    type Err = UlimitError;

    /// Docker's `NAME=SOFT[:HARD]` (a missing hard limit is the soft one;
    /// -1 is unlimited).
    fn from_str(value: &str) -> Result<Ulimit, UlimitError> {
        let (name, limits) = value.split_once('=').ok_or(UlimitError::Form)?;
        let resource = RESOURCES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(r, _)| *r)
            .ok_or_else(|| UlimitError::Name(name.to_owned()))?;
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let number = |text: &str| match text {
            "-1" => Ok(None),
            _ => text
                .parse::<u64>()
                .map(Some)
                .map_err(|_| UlimitError::Value(text.to_owned())),
        };
        let (soft_text, hard_text) = (soft, hard);
        let (soft, hard) = (number(soft)?, number(hard)?);
        // Unlimited (`None`) is above every number.
        if soft.unwrap_or(u64::MAX) > hard.unwrap_or(u64::MAX) {
            return Err(UlimitError::SoftAboveHard {
                soft: soft_text.to_owned(),
                hard: hard_text.to_owned(),
            });
        }
        Ok(Ulimit {
            resource,
            soft,
            hard,
        })
    }
}

impl fmt::Display for Ulimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: Option<u64>| v.map_or("-1".to_owned(), |v| v.to_string());
        write!(
            f,
            "{}={}:{}",
            self.resource.name(),
            value(self.soft),
            value(self.hard)
        )
    }
}

const MIB: u64 = 1 << 20;

/// The limits every step starts with (see the module doc).
const DEFAULTS: [(Resource, Option<u64>, Option<u64>); 14] = [
    (Resource::As, None, None),
    (Resource::Core, Some(0), None),
    (Resource::Cpu, None, None),
    (Resource::Data, None, None),
    (Resource::Fsize, None, None),
    (Resource::Locks, None, None),
    (Resource::Memlock, Some(8 * MIB), Some(8 * MIB)),
    (Resource::Msgqueue, Some(819_200), Some(819_200)),
    (Resource::Nice, Some(0), Some(0)),
    (Resource::Nofile, Some(1024), Some(524_288)),
    (Resource::Nproc, None, None),
    (Resource::Rtprio, Some(0), Some(0)),
    (Resource::Rttime, None, None),
    (Resource::Stack, Some(8 * MIB), None),
];

/// Sets the calling process's limits: the defaults, then `ulimits` (the
/// last one of a resource wins). Called by the step's pid 1 while it still
/// holds its capabilities.
///
/// `pids_fallback` stands in for a cgroup's pids limit where a rootless
/// step gets no cgroup: as the default `nproc`, which in the step's own
/// user namespace counts only the step's processes and threads.
pub(crate) fn apply(ulimits: &[Ulimit], pids_fallback: Option<u64>) -> Result<(), String> {
    for (resource, soft, hard) in DEFAULTS {
        if ulimits.iter().any(|u| u.resource == resource) {
            continue;
        }
        let (soft, hard) = match pids_fallback {
            Some(pids) if resource == Resource::Nproc => (Some(pids), Some(pids)),
            _ => (soft, hard),
        };
        set(resource, soft, hard, true)?;
    }
    for ulimit in ulimits {
        set(ulimit.resource, ulimit.soft, ulimit.hard, false)
            .map_err(|err| format!("--ulimit {ulimit}: {err}"))?;
    }
    Ok(())
}

/// Sets one limit; where the hard limit cannot be raised (no
/// `CAP_SYS_RESOURCE`) a default is lowered to the current one.
fn set(
    resource: Resource,
    soft: Option<u64>,
    hard: Option<u64>,
    lower_to_fit: bool,
) -> Result<(), String> {
    let wanted = rustix::process::Rlimit {
        current: soft,
        maximum: hard,
    };
    match rustix::process::setrlimit(resource.kernel(), wanted) {
        Err(rustix::io::Errno::PERM) if lower_to_fit => {
            let now = rustix::process::getrlimit(resource.kernel());
            let hard = min(hard, now.maximum);
            let fitted = rustix::process::Rlimit {
                current: min(soft, hard),
                maximum: hard,
            };
            rustix::process::setrlimit(resource.kernel(), fitted)
                .map_err(|err| format!("setting RLIMIT_{}: {err}", resource.name()))
        }
        Err(rustix::io::Errno::PERM) => {
            let now = rustix::process::getrlimit(resource.kernel()).maximum;
            Err(format!(
                "above the hard limit builder was started with ({}), which only a process \
                 with CAP_SYS_RESOURCE may raise",
                now.map_or("unlimited".to_owned(), |n| n.to_string())
            ))
        }
        Err(err) => Err(format!("setting RLIMIT_{}: {err}", resource.name())),
        Ok(()) => Ok(()),
    }
}

/// The smaller of two limits (`None` is unlimited).
fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_takes_them() {
        let nofile: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!(
            nofile,
            Ulimit {
                resource: Resource::Nofile,
                soft: Some(1024),
                hard: Some(2048)
            }
        );
        assert_eq!(nofile.to_string(), "nofile=1024:2048");
        let nproc: Ulimit = "nproc=30".parse().unwrap();
        assert_eq!((nproc.soft, nproc.hard), (Some(30), Some(30)));
        let core: Ulimit = "core=-1".parse().unwrap();
        assert_eq!((core.soft, core.hard), (None, None));
        assert_eq!(
            "nofile=10:5".parse::<Ulimit>(),
            Err(UlimitError::SoftAboveHard {
                soft: "10".into(),
                hard: "5".into()
            })
        );
        assert!(matches!(
            "files=1".parse::<Ulimit>(),
            Err(UlimitError::Name(_))
        ));
        assert!(matches!(
            "nofile=lots".parse::<Ulimit>(),
            Err(UlimitError::Value(_))
        ));
        assert_eq!("nofile".parse::<Ulimit>(), Err(UlimitError::Form));
    }
}
