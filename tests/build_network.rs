//! The network of RUN steps in real builds, as root and as an unprivileged
//! user: a default step has a network namespace of its own (loopback and
//! `tap0`), reaches other hosts through slirp4netns' NAT, and reaches
//! neither the services on the host's 127.0.0.1 nor the host's abstract
//! unix sockets; `--network=host` (with its entitlement) reaches both. A
//! cached step starts no slirp4netns: it builds without one installed.
//! Needs root (the rootless half drops to uid 65534); skipped otherwise.

mod support;

use predicates::str::contains;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::build::{Home, can_build, give_to_nobody};
use support::http::{Response, TestServer};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Who runs the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    Root,
    Nobody,
}

/// `builder build ARGS… -o OUT CONTEXT` as `who`; the output directory.
fn build(home: &Home, who: As, context: &Path, args: &[&str]) -> (Output, PathBuf) {
    let out = home.path(&format!(
        "out-{}",
        context.file_name().unwrap().to_str().unwrap()
    ));
    let mut command = match who {
        As::Root => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_builder"));
            command
                .env("BUILDER_ROOT", home.path("store"))
                .args(["build", "--progress", "plain"]);
            command
        }
        As::Nobody => {
            give_to_nobody(home.dir.path());
            home.build_as_nobody()
        }
    };
    command
        .args(args)
        .args(["-o", out.to_str().unwrap(), context.to_str().unwrap()]);
    (command.output().unwrap(), out)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A home the unprivileged user can enter.
fn home_for(who: As) -> Home {
    let home = Home::new();
    if who == As::Nobody {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    home
}

/// The interface names in a `/proc/net/dev`.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|line| Some(line.split(':').next()?.trim().to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn default_steps_reach_neither_the_hosts_loopback_services_nor_its_abstract_sockets() {
    if !can_build() {
        return;
    }
    let server = TestServer::start(|_| Response::new(200).body("a host-only service\n"));
    let socket_name = format!("builder-test-{}-abstract", std::process::id());
    let _abstract =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(socket_name.as_bytes()).unwrap())
            .unwrap();
    let probe = |suffix: &str| {
        format!(
            "(wget -q -O /tcp{suffix} http://{}/ || echo unreachable > /tcp{suffix}); \
             grep -c @{socket_name} /proc/net/unix > /unix{suffix}; cat /proc/net/dev > /netdev{suffix}; \
             readlink /proc/self/ns/net > /netns{suffix}",
            server.host()
        )
    };
    // The gateway slirp4netns gives the step would lead to the host's
    // loopback, were it not disabled.
    let port = server.host().rsplit(':').next().unwrap().to_owned();
    let dockerfile = format!(
        "{BASE}RUN {}; (wget -q -O /gateway http://10.0.2.2:{port}/ || echo unreachable > /gateway)\n\
         RUN --network=host {}\n",
        probe(""),
        probe("-host")
    );
    for who in [As::Root, As::Nobody] {
        let home = home_for(who);
        let context = home.context("probe", &dockerfile);
        let (built, out) = build(&home, who, &context, &["--allow", "network.host"]);
        assert!(
            built.status.success(),
            "{who:?}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        assert_eq!(read(out.join("tcp")), "unreachable\n", "{who:?}");
        assert_eq!(read(out.join("gateway")), "unreachable\n", "{who:?}");
        assert_eq!(read(out.join("unix")), "0\n", "{who:?}");
        assert_eq!(
            interfaces(&read(out.join("netdev"))),
            ["lo", "tap0"],
            "{who:?}"
        );
        // The host's network, granted: both are there.
        assert_eq!(
            read(out.join("tcp-host")),
            "a host-only service\n",
            "{who:?}"
        );
        assert_eq!(read(out.join("unix-host")), "1\n", "{who:?}");
        // The same namespace, not merely the same interfaces (others'
        // veth pairs come and go on a busy host).
        let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
        let host_netns = format!("{}\n", host_netns.display());
        assert_ne!(read(out.join("netns")), host_netns, "{who:?}");
        assert_eq!(read(out.join("netns-host")), host_netns, "{who:?}");
    }
}

/// Two network namespaces of the test's own joined by a veth pair: `host`,
/// where the build runs, and `outside`, a machine `host` routes to
/// directly (10.251.0.2). Deleted when dropped.
struct Lan {
    host: String,
    outside: String,
}

impl Lan {
    const HOST_ADDRESS: &str = "10.251.0.1/30";
    const OUTSIDE_ADDRESS: &str = "10.251.0.2";

    fn new(tag: &str) -> Lan {
        let prefix = format!("builder-test-{}-{tag}", std::process::id());
        let lan = Lan {
            host: format!("{prefix}-host"),
            outside: format!("{prefix}-outside"),
        };
        for name in [&lan.host, &lan.outside] {
            ip(&["netns", "add", name]);
        }
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            &lan.host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lan.outside,
        ]);
        for (ns, address) in [
            (&lan.host, Self::HOST_ADDRESS.to_owned()),
            (&lan.outside, format!("{}/30", Self::OUTSIDE_ADDRESS)),
        ] {
            ip(&["-n", ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// Runs `f` on a thread of its own that has entered namespace `name`
    /// (what it binds and spawns lives there).
    fn inside<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
        let netns = std::fs::File::open(Path::new("/run/netns").join(name)).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        netns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in [&self.host, &self.outside] {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}: {status}");
}

#[test]
fn default_steps_reach_another_host_through_nat() {
    if !can_build() {
        return;
    }
    for who in [As::Root, As::Nobody] {
        let lan = Lan::new(&format!("{who:?}").to_lowercase());
        let server = Lan::inside(&lan.outside, || {
            let listener =
                std::net::TcpListener::bind(format!("{}:0", Lan::OUTSIDE_ADDRESS)).unwrap();
            TestServer::serve(listener, |_| Response::new(200).body("from outside\n"))
        });
        let home = home_for(who);
        let dockerfile = format!("{BASE}RUN wget -q -O /got http://{}/\n", server.host());
        let context = home.context("outbound", &dockerfile);
        let (built, out) = Lan::inside(&lan.host, || build(&home, who, &context, &[]));
        assert!(
            built.status.success(),
            "{who:?}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        assert_eq!(read(out.join("got")), "from outside\n", "{who:?}");
    }
}

#[test]
fn a_cached_step_starts_no_network_helper() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("cached", &format!("{BASE}RUN echo ran > /ran\n"));
    let context = context.to_str().unwrap();
    home.build(&[context]).assert().success();

    // With no slirp4netns to be found, the rebuild still succeeds: every
    // step is a cache hit, and nothing network-related is set up for one.
    let no_tools = home.path("no-tools");
    std::fs::create_dir(&no_tools).unwrap();
    home.build(&[context])
        .env("PATH", &no_tools)
        .assert()
        .success()
        .stderr(contains("0 steps run, 3 cached"));
    // A step that does run needs it, and says so.
    home.build(&["--no-cache", context])
        .env("PATH", &no_tools)
        .assert()
        .code(1)
        .stderr(contains("slirp4netns, which is not in PATH"))
        .stderr(contains("--network none"));
    home.build(&["--no-cache", "--network", "none", context])
        .env("PATH", &no_tools)
        .assert()
        .success();
}
