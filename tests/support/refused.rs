//! Running `builder` where namespaces and mounts are refused, as in an
//! unprivileged container (docker's default seccomp profile and
//! capabilities, a Kubernetes pod): a seccomp filter, installed in the
//! child between fork and exec, answers EPERM to `unshare`, `setns`,
//! `clone` with a namespace flag, `mount`, `umount2` and `pivot_root`
//! (`clone3` answers ENOSYS, so libc falls back to `clone`). builder runs
//! as it is; nothing in it knows about the filter.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// What the filter still allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every namespace and every mount are refused.
    All,
    /// A user namespace alone may be made (a host that allows unprivileged
    /// user namespaces but no mount: `unshare(CLONE_NEWUSER)` works, the
    /// rest does not).
    AllButUserNamespaces,
}

const NAMESPACES: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The filter's programs: clone3's answer, then the rest.
fn programs(refused: Refused) -> Vec<BpfProgram> {
    let flags: Vec<u64> = NAMESPACES
        .iter()
        .filter(|&&flag| refused == Refused::All || flag != libc::CLONE_NEWUSER)
        .map(|&flag| flag as u64)
        .collect();
    let any_flag = |arg: u8| -> Vec<SeccompRule> {
        flags
            .iter()
            .map(|&flag| {
                SeccompRule::new(vec![
                    SeccompCondition::new(
                        arg,
                        SeccompCmpArgLen::Qword,
                        SeccompCmpOp::MaskedEq(flag),
                        flag,
                    )
                    .unwrap(),
                ])
                .unwrap()
            })
            .collect()
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in [
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_setns,
    ] {
        rules.insert(call, Vec::new());
    }
    rules.insert(libc::SYS_unshare, any_flag(0));
    rules.insert(libc::SYS_clone, any_flag(0));
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let program: BpfProgram = filter.try_into().unwrap();
    // clone3 passes its flags in memory, out of a filter's reach: ENOSYS
    // makes libc use clone.
    let enosys = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    // The kernel runs every program installed and takes the strictest answer.
    vec![enosys.try_into().unwrap(), program]
}

/// Makes `cmd` run under the filter, as `uid` (with its gid and no
/// supplementary groups) when given. The test must run as root: the
/// filter is installed before the switch, without `no_new_privs`, so
/// setuid helpers (`newuidmap`) keep working.
pub fn refusing(cmd: &mut Command, refused: Refused, uid: Option<u32>) {
    let programs = programs(refused);
    // SAFETY: the closure runs between fork and exec and makes only system
    // calls (seccomp, setgroups, setresgid, setresuid) on memory prepared
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for program in &programs {
                let fprog = libc::sock_fprog {
                    len: program.len() as u16,
                    filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &raw const fprog,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(uid) = uid {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
