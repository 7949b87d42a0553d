//! Limits of RUN steps as root: each step in a cgroup of its own with a
//! pids limit (`BUILDER_PIDS_LIMIT`) that stops a fork bomb and
//! `--memory`'s limit, removed after the step; RLIMITs that do not come
//! from builder's caller, and `--ulimit` over them. Needs root; the cgroup
//! tests skip (with a message) where builder says steps get no cgroup.

mod support;

use std::os::unix::process::CommandExt;
use support::build::{Home, can_build, stderr_of, step_cgroups_of};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// A step that starts 100 sleeping processes, then says so.
const HUNDRED_PROCESSES: &str = "RUN i=0; while [ $i -lt 100 ]; do sleep 300 & i=$((i+1)); done; \
     echo \"started $i\"\n";

/// Whether the build said its steps get no cgroup (and so the test skips).
fn no_cgroup(stderr: &str) -> bool {
    let said = stderr.contains("steps run without a cgroup of their own");
    if said {
        eprintln!("SKIPPED: no cgroups for steps here: {stderr}");
    }
    said
}

/// The output lines of the build's steps (`#N 0.123 line` → `line`).
fn step_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('#')?;
            let (_, rest) = rest.split_once(' ')?;
            let (time, text) = rest.split_once(' ')?;
            time.parse::<f64>().ok().map(|_| text.to_owned())
        })
        .collect()
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_the_cgroup_goes_with_the_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "bomb",
        &format!("{BASE}RUN cat /proc/self/cgroup\n{HUNDRED_PROCESSES}"),
    );
    let output = home
        .build(&[context.to_str().unwrap()])
        .env("BUILDER_PIDS_LIMIT", "30")
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    if no_cgroup(&stderr) {
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("started 100"),
        "100 processes started: {stderr}"
    );
    assert!(
        stderr.contains("Resource temporarily unavailable"),
        "fork failed with EAGAIN: {stderr}"
    );
    // The earlier step was in a cgroup of its own, gone after the build.
    let memberships: Vec<String> = step_lines(&stderr)
        .into_iter()
        .filter(|line| line.contains(":/") && line.contains("/builder-"))
        .collect();
    assert!(!memberships.is_empty(), "{stderr}");
    let pid = memberships[0]
        .rsplit_once("/builder-")
        .and_then(|(_, rest)| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .unwrap();
    let left = step_cgroups_of(pid);
    assert!(left.is_empty(), "step cgroups left: {left:?}");
}

#[test]
fn memory_limits_a_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // dd fills a 256 MiB buffer: over the limit (and its swap) of 32 MiB;
    // the shell that started it fails with it.
    let context = home.context(
        "memory",
        &format!(
            "{BASE}RUN echo small\nRUN dd if=/dev/zero of=/dev/null bs=256M count=1 && echo done\n"
        ),
    );
    let output = home
        .build(&["--memory", "32m", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    if no_cgroup(&stderr) {
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        step_lines(&stderr).contains(&"small".to_owned()),
        "the small step ran: {stderr}"
    );
    assert!(
        stderr.contains(
            "the command ran out of memory (--memory 32 MiB): the kernel killed a process of it"
        ),
        "the big step was killed: {stderr}"
    );
    // Without the flag the same step runs.
    home.build(&[context.to_str().unwrap()]).assert().success();
}

#[test]
fn steps_get_their_own_rlimits_not_the_callers_and_ulimit_sets_them() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "rlimits",
        &format!(
            "{BASE}RUN echo \"nofile $(ulimit -n) $(ulimit -Hn) stack $(ulimit -s) core $(ulimit -c)\"\n"
        ),
    );
    // The caller lowered nofile and raised the stack's soft limit.
    let mut command = support::cli::process(home.dir.path());
    command
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--progress", "plain"])
        .arg(&context);
    // SAFETY: only setrlimit runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            use rustix::process::{Resource, Rlimit, setrlimit};
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(256),
                    maximum: Some(4096),
                },
            )?;
            setrlimit(
                Resource::Stack,
                Rlimit {
                    current: None,
                    maximum: None,
                },
            )?;
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    // Without CAP_SYS_RESOURCE (some containers' root) no hard limit rises.
    let hard = if may_raise_hard_limits() {
        524288
    } else {
        4096
    };
    assert!(
        step_lines(&stderr).contains(&format!("nofile 1024 {hard} stack 8192 core 0")),
        "{stderr}"
    );

    let output = home
        .build(&[
            "--ulimit",
            "nofile=2048:4096",
            "--ulimit",
            "stack=16777216",
            context.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        step_lines(&stderr).contains(&"nofile 2048 4096 stack 16384 core 0".to_owned()),
        "{stderr}"
    );

    // A hard limit builder cannot grant is an error, not a lower limit.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if let Some(hard) = hard.filter(|_| !may_raise_hard_limits()) {
        let ulimit = format!("nofile=1024:{}", hard + 1);
        let output = home
            .build(&["--ulimit", &ulimit, context.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "--ulimit {ulimit}: above the hard limit builder was started with ({hard})"
            )),
            "{stderr}"
        );
    }
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of CapEff).
fn may_raise_hard_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    effective & (1 << 24) != 0
}

#[test]
fn ulimit_nproc_limits_a_users_processes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // An unlikely uid, so no other process on the host counts against it.
    let context = home.context(
        "nproc",
        &format!("{BASE}USER 51234:51234\n{HUNDRED_PROCESSES}"),
    );
    let output = home
        .build(&["--ulimit", "nproc=30:30", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("started 100"), "{stderr}");
    // Without the flag the same step starts all of them.
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("started 100"), "{stderr}");
}

#[test]
fn bad_ulimit_and_memory_values_are_usage_errors() {
    let home = Home::new();
    for (flag, value, says) in [
        ("--ulimit", "nofile=2048:1024", "above the hard limit"),
        ("--ulimit", "files=10", "unknown ulimit"),
        ("--ulimit", "nofile", "NAME=SOFT[:HARD]"),
        ("--memory", "1m", "minimum memory limit"),
        ("--memory", "lots", "expected a size"),
    ] {
        let output = home.build(&[flag, value, "."]).output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
