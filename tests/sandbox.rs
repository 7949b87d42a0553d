//! The RUN sandbox, with real namespaces: each test runs the real `builder`
//! binary as the helper on a busybox rootfs and checks what a RUN step would
//! see and leave behind. Needs root (as CI runs); skipped otherwise.

mod support;

use builder::sandbox::seccomp::SeccompFilter;
use builder::sandbox::{
    BindMount, EnvVar, Network, Outcome, Rootfs, Sandbox, SandboxError, SecretBytes, SecretEnv,
    SecretFile, Security, Spec, Stream, User,
};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// A busybox rootfs as the single lower layer, with fresh upper and work dirs.
struct Fixture {
    root: PathBuf,
    /// Owns (and removes) `root`, unless the fixture belongs to another process.
    _tmp: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let lower = tmp.path().join("lower");
        fs::create_dir(&lower).unwrap();
        support::busybox::rootfs(&lower);
        fs::create_dir(tmp.path().join("upper")).unwrap();
        fs::create_dir(tmp.path().join("work")).unwrap();
        Fixture {
            root: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        }
    }

    /// The fixture another process made at `root`.
    fn at(root: PathBuf) -> Fixture {
        Fixture { root, _tmp: None }
    }

    fn lower(&self) -> PathBuf {
        self.root.join("lower")
    }

    fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }

    /// A spec running `sh -c script` as root with the host network.
    fn spec(&self, script: &str) -> Spec {
        Spec {
            rootfs: Rootfs::Overlay {
                lower: vec![self.lower()],
                upper: self.upper(),
                work: self.root.join("work"),
            },
            mounts: vec![],
            tmpfs: vec![],
            secrets: vec![],
            secret_env: vec![],
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![EnvVar {
                name: "PATH".into(),
                value: "/usr/sbin:/usr/bin:/sbin:/bin".into(),
            }],
            user: User::default(),
            cwd: "/".into(),
            network: Network::Host,
            hostname: "buildstep".into(),
            hosts: "127.0.0.1 localhost buildstep\n".into(),
            resolv_conf: "nameserver 192.0.2.53\n".into(),
            security: Security::default(),
            shm_size: 64 << 20,
            seccomp: Some(SeccompFilter::docker_default().unwrap()),
            cgroup: Default::default(),
            ulimits: vec![],
            emulation: None,
            isolation: Default::default(),
        }
    }

    /// Names in the upper directory, sorted.
    fn upper_entries(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.upper().join(dir))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// What a step printed and how it ended.
struct Ran {
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

fn sandbox() -> Sandbox {
    Sandbox::with_helper(env!("CARGO_BIN_EXE_builder"))
}

fn try_run(spec: &Spec) -> Result<Ran, SandboxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let outcome = runtime.block_on(sandbox().run(spec, |stream, line| match stream {
        Stream::Stdout => stdout.extend_from_slice(line),
        Stream::Stderr => stderr.extend_from_slice(line),
    }))?;
    Ok(Ran {
        outcome,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    })
}

fn run(spec: &Spec) -> Ran {
    try_run(spec).unwrap_or_else(|err| panic!("sandbox failed: {err}"))
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED: the sandbox tests need root (CI runs them as root)");
        false
    }
}

/// Host pids whose command line contains `needle` as one argument.
fn host_pids_with_arg(needle: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg == needle.as_bytes())
            })
        })
        .collect()
}

#[test]
fn echo_prints_to_stdout_and_exits_zero() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("echo hi"));
    assert_eq!(ran.outcome, Outcome::Exited(0));
    assert_eq!(ran.stdout, "hi\n");
    assert_eq!(ran.stderr, "");
}

#[test]
fn exit_code_is_reported_exactly() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("exit 3"));
    assert_eq!(ran.outcome, Outcome::Exited(3));
}

#[test]
fn stderr_is_kept_apart_from_stdout() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("echo out; echo err >&2; echo out2"));
    assert_eq!(ran.stdout, "out\nout2\n");
    assert_eq!(ran.stderr, "err\n");
}

#[test]
fn a_step_killed_by_a_signal_reports_the_signal() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("");
    spec.argv = vec!["sleep".into(), "4242001".into()];
    let killer = std::thread::spawn(|| {
        loop {
            if let Some(pid) = host_pids_with_arg("4242001").first() {
                rustix::process::kill_process(
                    rustix::process::Pid::from_raw(*pid).unwrap(),
                    rustix::process::Signal::KILL,
                )
                .unwrap();
                return;
            }
            std::thread::yield_now();
        }
    });
    let ran = run(&spec);
    killer.join().unwrap();
    assert_eq!(ran.outcome, Outcome::Signaled(9));
}

#[test]
fn the_shell_is_pid_1_and_sees_only_its_own_processes() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("echo $$; ps -o pid,comm; true"));
    let lines: Vec<Vec<&str>> = ran
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["1"],
            vec!["PID", "COMMAND"],
            vec!["1", "sh"],
            vec!["2", "ps"]
        ]
    );
}

#[test]
fn host_files_are_not_visible() {
    if !is_root() {
        return;
    }
    let host_file = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    let path = host_file.path().display();
    let ran = run(&Fixture::new().spec(&format!("test -e {path} && echo visible; ls /")));
    assert!(!ran.stdout.contains("visible"));
    assert_eq!(
        ran.stdout.split_whitespace().collect::<Vec<_>>(),
        ["bin", "dev", "etc", "proc", "sys"]
    );
}

#[test]
fn writes_go_to_the_upper_directory_only() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let ran = run(&fixture.spec("echo data > /new.txt && echo more >> /etc/passwd"));
    assert_eq!(ran.outcome, Outcome::Exited(0));
    assert_eq!(
        fs::read_to_string(fixture.upper().join("new.txt")).unwrap(),
        "data\n"
    );
    assert!(
        fs::read_to_string(fixture.upper().join("etc/passwd"))
            .unwrap()
            .ends_with("more\n")
    );
    assert!(!fixture.lower().join("new.txt").exists());
    assert!(
        !fs::read_to_string(fixture.lower().join("etc/passwd"))
            .unwrap()
            .contains("more")
    );
}

#[test]
fn deleting_a_lower_file_leaves_a_whiteout() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let ran = run(&fixture.spec("rm /etc/group && test ! -e /etc/group"));
    assert_eq!(ran.outcome, Outcome::Exited(0));
    let meta = fs::symlink_metadata(fixture.upper().join("etc/group")).unwrap();
    assert!(meta.file_type().is_char_device() && meta.rdev() == 0);
    assert!(fixture.lower().join("etc/group").exists());
}

#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("tail -n +3 /proc/net/dev | cut -d: -f1; ip link show lo");
    spec.network = Network::None;
    let ran = run(&spec);
    let mut lines = ran.stdout.lines();
    assert_eq!(lines.next().map(str::trim), Some("lo"));
    let link = lines.next().unwrap();
    assert!(link.contains("lo:") && link.contains(",UP"), "{link}");
}

#[test]
fn host_network_is_the_hosts_namespace() {
    if !is_root() {
        return;
    }
    // The host's network namespace itself (comparing interface lists
    // races with veth pairs that other tests and daemons make).
    let ran = run(&Fixture::new().spec("readlink /proc/self/ns/net"));
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(ran.stdout, format!("{}\n", host.display()));
}

#[test]
fn hostname_hosts_and_resolv_conf_are_the_specs_and_leave_nothing_behind() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let ran =
        run(&fixture
            .spec("hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf; touch /etc/new"));
    assert_eq!(
        ran.stdout,
        "buildstep\nbuildstep\n127.0.0.1 localhost buildstep\nnameserver 192.0.2.53\n"
    );
    // /etc was copied up for `new`; the mountpoints never reach the layer.
    assert_eq!(fixture.upper_entries(""), ["etc"]);
    assert_eq!(fixture.upper_entries("etc"), ["new"]);
    let (upper_etc, lower_etc) = (
        fs::metadata(fixture.upper().join("etc")).unwrap(),
        fs::metadata(fixture.lower().join("etc")).unwrap(),
    );
    assert_eq!(upper_etc.mode(), lower_etc.mode());
}

#[test]
fn a_step_that_changes_nothing_leaves_an_empty_upper_directory() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    run(&fixture.spec("cat /etc/hosts > /dev/null; ls /proc /sys /dev > /dev/null"));
    assert_eq!(fixture.upper_entries(""), Vec::<String>::new());
}

#[test]
fn root_gets_dockers_default_capabilities_and_seccomp_filter_without_no_new_privs() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status"));
    assert_eq!(
        ran.stdout,
        "CapInh:\t0000000000000000\n\
         CapPrm:\t00000000a80425fb\n\
         CapEff:\t00000000a80425fb\n\
         CapBnd:\t00000000a80425fb\n\
         CapAmb:\t0000000000000000\n\
         NoNewPrivs:\t0\n\
         Seccomp:\t2\n\
         Seccomp_filters:\t2\n"
    );
}

#[test]
fn a_background_process_does_not_outlive_the_step() {
    if !is_root() {
        return;
    }
    let ran = run(&Fixture::new().spec("sleep 4242002 >/dev/null 2>&1 & echo started"));
    assert_eq!(ran.stdout, "started\n");
    assert_eq!(host_pids_with_arg("4242002"), Vec::<i32>::new());
}

#[test]
fn the_user_and_groups_are_applied() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("id -u; id -g; id -G; grep Cap[EP] /proc/self/status");
    spec.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10, 20],
    };
    let ran = run(&spec);
    assert_eq!(
        ran.stdout,
        "1000\n1000\n1000 10 20\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    );
}

#[test]
fn a_missing_working_directory_is_created() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("pwd");
    spec.cwd = "/app/src".into();
    let ran = run(&spec);
    assert_eq!(ran.stdout, "/app/src\n");
    assert!(fixture.upper().join("app/src").is_dir());
}

#[test]
fn bind_mounts_are_visible_and_read_only_when_asked() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let shared = tempfile::tempdir().unwrap();
    fs::write(shared.path().join("in.txt"), "from host\n").unwrap();
    let mut spec = fixture.spec(
        "cat /mnt/ro/in.txt; touch /mnt/ro/x 2>/dev/null || echo refused; echo w > /mnt/rw/out.txt",
    );
    let (ro, rw) = (shared.path().to_path_buf(), tempfile::tempdir().unwrap());
    spec.mounts = vec![
        BindMount {
            source: ro,
            target: "/mnt/ro".into(),
            readonly: true,
        },
        BindMount {
            source: rw.path().to_path_buf(),
            target: "/mnt/rw".into(),
            readonly: false,
        },
    ];
    let ran = run(&spec);
    assert_eq!(ran.stdout, "from host\nrefused\n");
    assert_eq!(
        fs::read_to_string(rw.path().join("out.txt")).unwrap(),
        "w\n"
    );
    assert!(!shared.path().join("x").exists());
}

#[test]
fn secrets_are_read_only_files_on_a_tmpfs_and_replace_variables() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec(
        "cat /run/secrets/tok; echo; stat -c '%a %u %g' /run/secrets/tok; \
         stat -f -c %T /run/secrets/tok; \
         (echo x >> /run/secrets/tok) 2>/dev/null || echo refused; echo \"$TOKEN\"",
    );
    spec.env.push(EnvVar {
        name: "TOKEN".into(),
        value: "plain".into(),
    });
    spec.secrets = vec![SecretFile {
        target: "/run/secrets/tok".into(),
        data: SecretBytes::new(b"file-secret".to_vec()),
        mode: 0o440,
        uid: 3,
        gid: 4,
    }];
    spec.secret_env = vec![SecretEnv {
        name: "TOKEN".into(),
        value: SecretBytes::new(b"env-secret".to_vec()),
    }];
    let ran = run(&spec);
    assert_eq!(
        ran.stdout, "file-secret\n440 3 4\ntmpfs\nrefused\nenv-secret\n",
        "{}",
        ran.stderr
    );
    // The mountpoint was made outside the step's upper directory, so
    // nothing of the secret (not even its empty target) is there.
    assert!(!fixture.upper().join("run").exists());
}

#[test]
fn a_secret_runs_only_when_its_mode_is_executable() {
    if !is_root() {
        return;
    }
    let script = |mode| SecretFile {
        target: "/run/tool".into(),
        data: SecretBytes::new(b"#!/bin/sh\nexit 0\n".to_vec()),
        mode,
        uid: 0,
        gid: 0,
    };
    for (mode, expected) in [(0o500, "ran\n"), (0o400, "refused\n")] {
        let fixture = Fixture::new();
        let mut spec = fixture.spec("/run/tool 2>/dev/null && echo ran || echo refused");
        spec.secrets = vec![script(mode)];
        assert_eq!(run(&spec).stdout, expected, "mode {mode:o}");
    }
}

#[test]
fn a_missing_program_is_a_setup_error_not_an_exit_code() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("");
    spec.argv = vec!["no-such-program".into()];
    match try_run(&spec) {
        Err(SandboxError::Setup(message)) => {
            assert!(
                message.contains("\"no-such-program\": executable file not found"),
                "{message}"
            )
        }
        Err(other) => panic!("expected a setup error, got {other}"),
        Ok(ran) => panic!("expected a setup error, got {:?}", ran.outcome),
    }
}

#[test]
fn a_plain_directory_rootfs_keeps_only_the_steps_changes() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let root = fixture.lower();
    let mut spec = fixture.spec("echo x > /made.txt; cat /etc/hosts");
    spec.rootfs = Rootfs::Directory(root.clone());
    let ran = run(&spec);
    assert_eq!(ran.stdout, "127.0.0.1 localhost buildstep\n");
    let mut names: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bin", "etc", "made.txt"]);
    assert!(!root.join("etc/hosts").exists());
}

#[test]
fn an_overlay_the_kernel_refuses_is_reported_as_overlay_unavailable() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.spec("echo never");
    // An upper directory that does not exist: overlayfs refuses it.
    if let Rootfs::Overlay { upper, .. } = &mut spec.rootfs {
        *upper = fixture.root.join("no-such-upper");
    }
    match try_run(&spec) {
        Err(SandboxError::OverlayUnavailable(reason)) => {
            assert!(reason.contains("overlay"), "{reason}");
        }
        Err(other) => panic!("expected OverlayUnavailable, got {other}"),
        Ok(ran) => panic!("the step ran: {:?} {}", ran.outcome, ran.stderr),
    }
    // A failure that is not the overlay's stays a setup failure.
    let mut spec = fixture.spec("echo never");
    spec.argv = vec!["/no/such/program".to_owned()];
    assert!(matches!(try_run(&spec), Err(SandboxError::Setup(_))));
}

/// Where `rootless_step_runs_unprivileged` tells its uid-65534 re-run of this
/// test binary to find the fixture.
const ROOTLESS_FIXTURE: &str = "BUILDER_TEST_ROOTLESS_FIXTURE";

#[test]
fn rootless_step_runs_unprivileged() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let nobody = 65534;
    for entry in walk(&fixture.root) {
        std::os::unix::fs::lchown(&entry, Some(nobody), Some(nobody)).unwrap();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["rootless_inner", "--exact", "--ignored", "--nocapture"])
        .env(ROOTLESS_FIXTURE, &fixture.root)
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .uid(nobody)
        .gid(nobody)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    if stderr.contains("SKIPPED") {
        eprintln!("{stderr}");
        return;
    }
    assert!(stdout.contains("1 passed"), "{stdout}");
    let upper = fixture.upper();
    assert_eq!(
        fs::read_to_string(upper.join("made.txt")).unwrap(),
        "by nobody\n"
    );
    let whiteout = fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert!(!upper.join("etc/hosts").exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// The unprivileged half of `rootless_step_runs_unprivileged`.
#[test]
#[ignore = "run as uid 65534 by rootless_step_runs_unprivileged"]
fn rootless_inner() {
    let dir = PathBuf::from(
        std::env::var_os(ROOTLESS_FIXTURE).expect("started by rootless_step_runs_unprivileged"),
    );
    assert_eq!(rustix::process::geteuid().as_raw(), 65534);
    let fixture = Fixture::at(dir);
    let spec = fixture.spec(
        "echo hi; id -u; echo $$; hostname; cat /etc/resolv.conf; echo by nobody > /made.txt; rm /etc/group",
    );
    match try_run(&spec) {
        Ok(ran) => {
            assert_eq!(ran.outcome, Outcome::Exited(0), "{}", ran.stderr);
            assert_eq!(ran.stdout, "hi\n0\n1\nbuildstep\nnameserver 192.0.2.53\n");
        }
        Err(SandboxError::Setup(message)) if message.contains("unsharing the user namespace") => {
            eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces: {message}");
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn dropping_the_run_kills_every_process_of_the_step() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let spec = fixture.spec("sleep 4242004 & sleep 4242005");
    let step_is_running =
        || !host_pids_with_arg("4242004").is_empty() && !host_pids_with_arg("4242005").is_empty();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sandbox = sandbox();
        let run = sandbox.run(&spec, |_, _| {});
        tokio::pin!(run);
        while !step_is_running() {
            tokio::select! {
                ended = &mut run => panic!("the step ended on its own: {ended:?}"),
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
        // Leaving the block drops the run: the cancellation under test.
    });
    while !host_pids_with_arg("4242004").is_empty() || !host_pids_with_arg("4242005").is_empty() {
        std::thread::yield_now();
    }
}

#[test]
fn the_helper_subcommand_is_hidden_and_refuses_to_run_by_hand() {
    let help = assert_cmd::Command::new(env!("CARGO_BIN_EXE_builder"))
        .arg("--help")
        .assert()
        .success();
    assert!(!String::from_utf8_lossy(&help.get_output().stdout).contains("sandbox"));
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_builder"))
        .arg("__sandbox")
        .assert()
        .code(125)
        .stderr(predicates::str::contains(
            "is run by builder itself, with a status pipe on fd 3",
        ));
}
