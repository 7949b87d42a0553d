//! Compiling a [`Profile`] into the BPF programs a step installs, with
//! seccompiler.
//!
//! seccompiler gives a program one action on a match and one otherwise, so
//! a profile becomes a stack of programs, which the kernel runs all of,
//! keeping the strictest result (and, among equal kinds of result, the one
//! of the program installed last):
//!
//! 1. the allow-list: calls of the `SCMP_ACT_ALLOW` rules are allowed,
//!    everything else gets the default action. Like runc, it first answers
//!    ENOSYS to calls newer than any the profile names, so that libc falls
//!    back to older calls instead of failing on EPERM;
//! 2. one program per other action (`SCMP_ACT_ERRNO` with ENOSYS, …):
//!    its calls get that action, everything else is allowed.
//!
//! seccompiler checks calls one after the other; each program is made of
//! seccompiler's programs for 32 calls each, behind a dispatch on the call
//! number, which makes installing the filter 4× faster (see `program`).
//!
//! Calls of another architecture than the host's (i386 or x32 on x86_64)
//! kill the process.

use super::SeccompError;
use super::profile::{Action, Arg, Condition, Op, Profile, Rule};
use super::syscalls;
use crate::sandbox::capabilities;
use rustix::thread::CapabilitySet;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use std::collections::BTreeMap;

/// What a profile's `includes` and `excludes` are checked against.
#[derive(Debug, Clone)]
pub(super) struct Host {
    arch: TargetArch,
    /// The architecture as Go names it (what profiles use).
    go_arch: &'static str,
    /// The capabilities the step holds.
    caps: CapabilitySet,
    /// `(major, minor)` of the running kernel.
    kernel: (u32, u32),
}

impl Host {
    /// This machine, for a step holding `caps`.
    pub fn current(caps: CapabilitySet) -> Result<Host, SeccompError> {
        let (arch, go_arch) = match std::env::consts::ARCH {
            "x86_64" => (TargetArch::x86_64, "amd64"),
            "aarch64" => (TargetArch::aarch64, "arm64"),
            other => return Err(SeccompError::UnsupportedArch(other)),
        };
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let kernel = kernel_version(&release).ok_or_else(|| SeccompError::KernelVersion {
            version: release.into_owned(),
        })?;
        Ok(Host {
            arch,
            go_arch,
            caps,
            kernel,
        })
    }
}

/// `MAJOR.MINOR` at the start of a version (`6.1.0-18-amd64`, `4.8`).
fn kernel_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// Calls and their argument rules for one action: `None` matches every
/// use of the call, `Some(rules)` the uses any rule matches.
type Calls = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// The programs to install, in order.
pub(super) fn compile(profile: &Profile, host: &Host) -> Result<Vec<BpfProgram>, SeccompError> {
    compile_in_chunks(profile, host, CALLS_PER_CHUNK)
}

fn compile_in_chunks(
    profile: &Profile,
    host: &Host,
    chunk: usize,
) -> Result<Vec<BpfProgram>, SeccompError> {
    let default = action(
        profile.default_action,
        profile.default_errno_ret,
        "defaultAction",
    )?;
    // Keyed by the kernel's return value, so each action is one program.
    let mut groups: BTreeMap<u32, (SeccompAction, Calls)> = BTreeMap::new();
    let mut newest: Option<i64> = None;
    for rule in &profile.syscalls {
        let first = rule.all_names().next().unwrap_or("(no name)");
        if !applies(rule, host)? {
            continue;
        }
        let action = action(rule.action, rule.errno_ret, first)?;
        let conditions = rule
            .args
            .iter()
            .flatten()
            .map(|arg| condition(arg, first))
            .collect::<Result<Vec<_>, _>>()?;
        let (_, calls) = groups
            .entry(u32::from(action.clone()))
            .or_insert_with(|| (action, Calls::new()));
        for number in rule.all_names().filter_map(syscalls::number) {
            newest = newest.max(Some(number));
            add(calls, number, &conditions)?;
        }
    }
    let allowed = groups
        .remove(&u32::from(SeccompAction::Allow))
        .map(|(_, calls)| calls)
        .unwrap_or_default();
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        let base = program(allowed, default, SeccompAction::Allow, host.arch, chunk)?;
        programs.push(match newest {
            Some(newest) => enosys_above(newest, host.arch, base)?,
            None => base,
        });
    }
    for (_, (action, calls)) in groups {
        if calls.is_empty() {
            continue;
        }
        programs.push(program(
            calls,
            SeccompAction::Allow,
            action,
            host.arch,
            chunk,
        )?);
    }
    Ok(programs)
}

/// Whether the rule's `includes` all hold and none of its `excludes` does.
fn applies(rule: &Rule, host: &Host) -> Result<bool, SeccompError> {
    let holds_cap =
        |name: &String| capabilities::named(name).is_some_and(|c| host.caps.contains(c));
    let kernel_at_least = |min: &Option<String>| -> Result<Option<bool>, SeccompError> {
        min.as_deref()
            .map(|v| {
                kernel_version(v)
                    .map(|v| host.kernel >= v)
                    .ok_or_else(|| SeccompError::KernelVersion { version: v.into() })
            })
            .transpose()
    };
    let arch = |list: &[String]| list.iter().any(|a| a == host.go_arch);
    let none = Condition::default();
    let includes = rule.includes.as_ref().unwrap_or(&none);
    let excludes = rule.excludes.as_ref().unwrap_or(&none);
    let included = (includes.arches.is_empty() || arch(&includes.arches))
        && includes.caps.iter().all(holds_cap)
        && kernel_at_least(&includes.min_kernel)?.unwrap_or(true);
    let excluded = arch(&excludes.arches)
        || excludes.caps.iter().any(holds_cap)
        || kernel_at_least(&excludes.min_kernel)?.unwrap_or(false);
    Ok(included && !excluded)
}

/// seccompiler's action for a profile's; ERRNO and TRACE default to EPERM,
/// as with Docker.
fn action(action: Action, errno: Option<u32>, call: &str) -> Result<SeccompAction, SeccompError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno => SeccompAction::Errno(errno),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Trace => SeccompAction::Trace(errno),
        Action::Log => SeccompAction::Log,
        Action::Notify => {
            return Err(SeccompError::Notify { call: call.into() });
        }
    })
}

fn condition(arg: &Arg, call: &str) -> Result<SeccompCondition, SeccompError> {
    let (op, value) = match arg.op {
        Op::Ne => (SeccompCmpOp::Ne, arg.value),
        Op::Lt => (SeccompCmpOp::Lt, arg.value),
        Op::Le => (SeccompCmpOp::Le, arg.value),
        Op::Eq => (SeccompCmpOp::Eq, arg.value),
        Op::Ge => (SeccompCmpOp::Ge, arg.value),
        Op::Gt => (SeccompCmpOp::Gt, arg.value),
        Op::MaskedEq => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
    };
    SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value).map_err(|_| {
        SeccompError::ArgIndex {
            call: call.into(),
            index: arg.index,
        }
    })
}

/// Adds one rule's use of a call: unconditional uses win over conditional ones.
fn add(
    calls: &mut Calls,
    number: i64,
    conditions: &[SeccompCondition],
) -> Result<(), SeccompError> {
    let entry = calls.entry(number).or_insert_with(|| Some(Vec::new()));
    match entry {
        None => {}
        Some(_) if conditions.is_empty() => *entry = None,
        Some(rules) => rules.push(SeccompRule::new(conditions.to_vec())?),
    }
    Ok(())
}

/// Calls per seccompiler program: seccompiler checks calls one after the
/// other, and the kernel runs a new filter once per call number when it
/// is installed (to learn which calls it always allows), so a long list
/// makes every step slower to start.
const CALLS_PER_CHUNK: usize = 32;

/// One program for `calls`: seccompiler's for each run of `chunk` calls,
/// behind a dispatch on the call number.
fn program(
    calls: Calls,
    mismatch: SeccompAction,
    on_match: SeccompAction,
    arch: TargetArch,
    chunk: usize,
) -> Result<BpfProgram, SeccompError> {
    let calls: Vec<(i64, Vec<SeccompRule>)> = calls
        .into_iter()
        .map(|(number, rules)| (number, rules.unwrap_or_default()))
        .collect();
    let chunks = calls
        .chunks(chunk.max(1))
        .map(|chunk| {
            let last = chunk.last().map_or(0, |(number, _)| *number);
            let filter = SeccompFilter::new(
                chunk.iter().cloned().collect(),
                mismatch.clone(),
                on_match.clone(),
                arch,
            )?;
            Ok((last, BpfProgram::try_from(filter)?))
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    match chunks.len() {
        0 => Ok(BpfProgram::try_from(SeccompFilter::new(
            Default::default(),
            mismatch,
            on_match,
            arch,
        )?)?),
        1 => Ok(chunks
            .into_iter()
            .next()
            .map(|(_, p)| p)
            .unwrap_or_default()),
        _ => dispatch(chunks),
    }
}

/// Joins whole programs, each for the calls up to its number, behind
/// `nr > last_0 ? (nr > last_1 ? … : chunk_1) : chunk_0`; every chunk checks
/// the architecture itself.
fn dispatch(chunks: Vec<(i64, BpfProgram)>) -> Result<BpfProgram, SeccompError> {
    let tests = chunks.len() - 1;
    // Loading nr, two instructions per test, and the jump to the last chunk.
    let head = 1 + 2 * tests + 1;
    let mut program = vec![insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0)];
    let mut start = head;
    let mut starts = Vec::with_capacity(chunks.len());
    for (_, chunk) in &chunks {
        starts.push(start);
        start += chunk.len();
    }
    let jump = |from: usize, to: usize| {
        u32::try_from(to - from - 1)
            .map(|k| insn(libc::BPF_JMP | libc::BPF_JA, 0, 0, k))
            .map_err(|_| SeccompError::TooLarge)
    };
    for (i, (last, _)) in chunks.iter().take(tests).enumerate() {
        let last = u32::try_from(*last).map_err(|_| SeccompError::TooLarge)?;
        // Above this chunk's calls: on to the next test; else into the chunk.
        program.push(insn(
            libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K,
            1,
            0,
            last,
        ));
        program.push(jump(program.len(), starts[i])?);
    }
    program.push(jump(program.len(), starts[tests])?);
    program.extend(chunks.into_iter().flat_map(|(_, chunk)| chunk));
    if program.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLarge);
    }
    Ok(program)
}

/// The most instructions the kernel takes in one program.
const MAX_INSTRUCTIONS: usize = 4096;

/// Puts before `program` a check answering ENOSYS to calls numbered above
/// `newest` (calls of another architecture go on to `program`'s own check).
fn enosys_above(
    newest: i64,
    arch: TargetArch,
    program: BpfProgram,
) -> Result<BpfProgram, SeccompError> {
    const ARCH_OFFSET: u32 = 4;
    const NR_OFFSET: u32 = 0;
    let audit_arch = match arch {
        TargetArch::x86_64 => 62 | 0xC000_0000,
        TargetArch::aarch64 => 183 | 0xC000_0000,
        TargetArch::riscv64 => 243 | 0xC000_0000,
    };
    let newest = u32::try_from(newest).map_err(|_| SeccompError::TooLarge)?;
    let load = |offset| insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, offset);
    let prefix = [
        load(ARCH_OFFSET),
        // Another architecture: skip the next 3 to `program`.
        insn(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            3,
            audit_arch,
        ),
        load(NR_OFFSET),
        insn(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, 0, 1, newest),
        insn(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
    ];
    let whole: BpfProgram = prefix.into_iter().chain(program).collect();
    if whole.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLarge);
    }
    Ok(whole)
}

fn insn(code: u32, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter {
        // BPF opcodes fit in 16 bits; libc spells them as u32.
        code: code as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_read_as_major_and_minor() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("5"), Some((5, 0)));
        assert_eq!(kernel_version("x"), None);
    }

    fn host(caps: CapabilitySet, kernel: (u32, u32)) -> Host {
        Host {
            kernel,
            ..Host::current(caps).unwrap()
        }
    }

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn includes_and_excludes_follow_dockers_rules() {
        let admin = host(CapabilitySet::SYS_ADMIN, (6, 1));
        let plain = host(CapabilitySet::CHOWN, (4, 4));
        let needs_admin = rule(
            r#"{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}"#,
        );
        assert!(applies(&needs_admin, &admin).unwrap());
        assert!(!applies(&needs_admin, &plain).unwrap());
        let without_admin = rule(
            r#"{"names":["clone3"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_ADMIN"]}}"#,
        );
        assert!(!applies(&without_admin, &admin).unwrap());
        assert!(applies(&without_admin, &plain).unwrap());
        let new_kernels = rule(
            r#"{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}}"#,
        );
        assert!(applies(&new_kernels, &admin).unwrap());
        assert!(!applies(&new_kernels, &plain).unwrap());
        let s390 =
            rule(r#"{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["s390x"]}}"#);
        assert!(!applies(&s390, &admin).unwrap());
        let bad =
            rule(r#"{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}"#);
        assert!(matches!(
            applies(&bad, &admin),
            Err(SeccompError::KernelVersion { .. })
        ));
    }

    #[test]
    fn one_program_per_action_and_the_allow_list_first() {
        let profile = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":40,"op":"SCMP_CMP_NE"}]},
                {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                {"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let programs = compile(&profile, &host(CapabilitySet::empty(), (6, 1))).unwrap();
        assert_eq!(programs.len(), 2);
        // The allow-list answers ENOSYS above the newest call named (clone3).
        assert_eq!(programs[0][3].k, libc::SYS_clone3 as u32);
        assert_eq!(programs[0][4].k, libc::SECCOMP_RET_ERRNO | 38);
        let allow_all = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        assert!(
            compile(&allow_all, &host(CapabilitySet::empty(), (6, 1)))
                .unwrap()
                .is_empty()
        );
    }

    /// What the kernel answers for call `nr` with `args`: every program
    /// runs, the strictest action wins, the newest program among equals.
    fn verdict(programs: &[BpfProgram], nr: i64, args: [u64; 6]) -> u32 {
        let mut data = vec![0u8; 64];
        data[..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        let audit_arch: u32 = if cfg!(target_arch = "x86_64") {
            62 | 0xC000_0000
        } else {
            183 | 0xC000_0000
        };
        data[4..8].copy_from_slice(&audit_arch.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let action = |ret: u32| (ret & 0xffff_0000) as i32;
        programs
            .iter()
            .rev()
            .map(|program| run(program, &data))
            .reduce(|kept, ret| {
                if action(ret) < action(kept) {
                    ret
                } else {
                    kept
                }
            })
            .unwrap_or(libc::SECCOMP_RET_ALLOW)
    }

    /// A classic BPF interpreter for the instructions seccompiler emits.
    fn run(program: &[sock_filter], data: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &program[pc];
            pc += 1;
            let code = u32::from(i.code);
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = i.k as usize;
                    a = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => {
                    let taken = match c & 0xf0 {
                        0x10 => a == i.k,
                        0x20 => a > i.k,
                        0x30 => a >= i.k,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    #[test]
    fn dockers_profile_answers_as_docker_does_in_chunks_or_not() {
        let profile = Profile::docker_default().unwrap();
        let host = host(capabilities::DOCKER_DEFAULT, (6, 1));
        let chunked = compile(&profile, &host).unwrap();
        let whole = compile_in_chunks(&profile, &host, usize::MAX).unwrap();
        assert!(
            chunked[0].len() > whole[0].len(),
            "the allow-list is chunked"
        );
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let allow = libc::SECCOMP_RET_ALLOW;
        let newuser = libc::CLONE_NEWUSER as u64;
        let sigchld = libc::SIGCHLD as u64;
        for (nr, arg0, expected) in [
            (libc::SYS_getppid, 0, allow),
            (libc::SYS_read, 0, allow),
            (libc::SYS_clone, sigchld, allow),
            (libc::SYS_clone, newuser | sigchld, eperm),
            (libc::SYS_clone3, 0, enosys),
            (libc::SYS_unshare, 0, eperm),
            (libc::SYS_mount, 0, eperm),
            (libc::SYS_keyctl, 0, eperm),
            (libc::SYS_add_key, 0, eperm),
            (libc::SYS_io_uring_setup, 1, eperm),
            (libc::SYS_perf_event_open, 0, eperm),
            (libc::SYS_socket, libc::AF_INET as u64, allow),
            (libc::SYS_socket, libc::AF_VSOCK as u64, eperm),
            (libc::SYS_personality, 8, allow),
            (libc::SYS_personality, 0xffff_ffff, allow),
            (libc::SYS_personality, 6, eperm),
            (libc::SYS_ptrace, 0, allow),
            (libc::SYS_chroot, 0, allow),
            (libc::SYS_mseal, 0, enosys),
        ] {
            let args = [arg0, 0, 0, 0, 0, 0];
            assert_eq!(
                verdict(&chunked, nr, args),
                expected,
                "call {nr} ({arg0:#x})"
            );
        }
        // The same answers for every call number and a spread of arguments.
        for nr in 0..=470 {
            for arg0 in [0, 8, 40, newuser | sigchld, 0xffff_ffff, 1 << 32 | 40] {
                let args = [arg0, 0, 0, 0, 0, 0];
                assert_eq!(
                    verdict(&chunked, nr, args),
                    verdict(&whole, nr, args),
                    "call {nr} ({arg0:#x})"
                );
            }
        }
    }

    #[test]
    fn notify_and_bad_argument_indexes_are_refused() {
        let host = host(CapabilitySet::empty(), (6, 1));
        let notify = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            compile(&notify, &host),
            Err(SeccompError::Notify { .. })
        ));
        let index = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert!(matches!(
            compile(&index, &host),
            Err(SeccompError::ArgIndex { index: 6, .. })
        ));
    }
}
