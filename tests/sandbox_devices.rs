//! RUN steps run as root without a user namespace and keep Docker's
//! CAP_MKNOD, but builder has no devices cgroup: what keeps them off the
//! host's memory and disks is that every mount they can write to, or that
//! holds image or context files, is `nodev`. A node a step makes (on `/`,
//! `/dev`, `/dev/shm`, a cache or a tmpfs mount), ships in a base layer or
//! in an archive context, cannot be opened; the curated `/dev` still works;
//! the host's kernel files in `/proc` and `/sys` are masked or read-only as
//! Docker has them; `--security=insecure` keeps all of it as
//! `docker run --privileged` does. Needs root (and Debian's docker-registry
//! for the base image); skipped otherwise.

mod support;

use std::path::{Path, PathBuf};
use support::build::{Home, can_build, stderr_of};
use support::image::BaseImage;
use support::registry::Registry;

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Shell that tries to read 4 bytes from each node named in `$NODES` and
/// appends `<node>: opened` or the error `head` printed to `/results`.
const TRY_OPEN: &str = "for n in $NODES; do \
     if head -c 4 $n > /dev/null 2> /err; then echo \"$n: opened\"; else echo \"$n: $(cat /err)\"; fi; \
     done >> /results; rm -f /err";

/// Builds `context` to a local directory and returns it; the build must
/// pass. `snapshotter` picks the RUN rootfs: an overlay, or the copy path's
/// plain directory.
fn build_out(home: &Home, context: &Path, snapshotter: &str, extra: &[&str]) -> PathBuf {
    let out = home.path(&format!("out-{snapshotter}"));
    let mut args = vec!["-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(context.to_str().unwrap());
    let output = home
        .build(&args)
        .env("BUILDER_SNAPSHOTTER", snapshotter)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    out
}

/// The lines of `/results`, each of which must report EACCES.
fn assert_all_refused(out: &Path, nodes: &[&str]) {
    let results = std::fs::read_to_string(out.join("results")).unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines.len(), nodes.len(), "{results}");
    for (line, node) in lines.iter().zip(nodes) {
        assert!(
            line.starts_with(&format!("{node}: ")) && line.ends_with("Permission denied"),
            "{node} must not open: {results}"
        );
    }
}

#[test]
fn nodes_a_step_makes_cannot_be_opened_anywhere() {
    if !can_build() {
        return;
    }
    let nodes = [
        "/zero",
        "/dev/zero2",
        "/dev/shm/zero",
        "/cache/zero",
        "/tmpfs/zero",
    ];
    let dockerfile = format!(
        "{BASE}RUN --mount=type=cache,target=/cache --mount=type=tmpfs,target=/tmpfs \
         NODES='{nodes}'; for n in $NODES; do mknod $n c 1 5 || exit 1; done; {TRY_OPEN}; \
         rm -f $NODES\n",
        nodes = nodes.join(" ")
    );
    for snapshotter in ["overlay", "copy"] {
        // A home each: the second build must run the step, not reuse it.
        let home = Home::new();
        let context = home.context("made", &dockerfile);
        let out = build_out(&home, &context, snapshotter, &[]);
        // mknod itself succeeded (the loop exits otherwise); opening did not.
        assert_all_refused(&out, &nodes);
    }
}

/// Appends a world-readable character device `zero` (1:5, the harmless
/// /dev/zero; /dev/mem or a disk would be the attack).
fn append_device(tar: &mut tar::Builder<Vec<u8>>) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_path("zero").unwrap();
    header.set_mode(0o666);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_device_major(1).unwrap();
    header.set_device_minor(5).unwrap();
    header.set_size(0);
    header.set_cksum();
    tar.append(&header, std::io::empty()).unwrap();
}

#[test]
fn a_device_node_in_a_base_layer_cannot_be_opened() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let mut layer = tar::Builder::new(Vec::new());
    append_device(&mut layer);
    let base = BaseImage::busybox_with_layer(&registry, "device", layer.into_inner().unwrap());
    let home = Home::new();
    let dockerfile = format!(
        "FROM {}\nRUN test -c /zero && NODES=/zero && {TRY_OPEN}\n",
        base.reference
    );
    let context = home.context("base", &dockerfile);
    let out = build_out(&home, &context, "overlay", &[]);
    assert_all_refused(&out, &["/zero"]);
}

#[test]
fn a_device_node_in_an_archive_context_cannot_be_opened() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "FROM scratch AS nodes\nCOPY zero /zero\n\
         {BASE}COPY zero /copied\n\
         RUN --mount=type=bind,from=nodes,target=/stage --mount=type=bind,target=/ctx,rw \
         NODES=/copied && {TRY_OPEN} && grep -E ' /(stage|ctx) ' /proc/mounts > /binds\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    append_device(&mut tar);
    let mut header = tar::Header::new_gnu();
    header.set_path("Dockerfile").unwrap();
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(dockerfile.len() as u64);
    header.set_cksum();
    tar.append(&header, dockerfile.as_bytes()).unwrap();
    tar.append_path_with_name("/bin/busybox", "busybox")
        .unwrap();
    let archive = home.path("ctx.tar");
    std::fs::write(&archive, tar.into_inner().unwrap()).unwrap();
    let out = build_out(&home, &archive, "overlay", &[]);
    assert_all_refused(&out, &["/copied"]);
    // Bound trees leave nodes out, and are nodev besides.
    let binds = std::fs::read_to_string(out.join("binds")).unwrap();
    assert_eq!(binds.lines().count(), 2, "{binds}");
    for line in binds.lines() {
        let options = line.split(' ').nth(3).unwrap_or_default();
        assert!(options.split(',').any(|o| o == "nodev"), "{binds}");
    }
}

#[test]
fn the_curated_dev_still_works() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN head -c 4 /dev/zero | wc -c > /zero \
         && head -c 4 /dev/urandom | wc -c > /urandom && head -c 4 /dev/random | wc -c > /random \
         && echo gone > /dev/null && wc -c < /dev/null > /null \
         && ! (echo full > /dev/full) 2> /full \
         && echo shared > /dev/shm/f && cat /dev/shm/f > /shm \
         && test -c /dev/tty && exec 3<> /dev/ptmx && ls /dev/pts > /pts\n"
    );
    let context = home.context("dev", &dockerfile);
    let out = build_out(&home, &context, "overlay", &[]);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("zero").trim(), "4");
    assert_eq!(read("urandom").trim(), "4");
    assert_eq!(read("random").trim(), "4");
    assert_eq!(read("null").trim(), "0");
    assert!(
        read("full").contains("No space left on device"),
        "{}",
        read("full")
    );
    assert_eq!(read("shm"), "shared\n");
    // Opening the ptmx made a pty in the step's own devpts.
    assert_eq!(
        read("pts").split_whitespace().collect::<Vec<_>>(),
        ["0", "ptmx"]
    );
}

#[test]
fn host_kernel_files_are_masked_or_read_only() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN wc -c < /proc/keys > /keys && ls -A /sys/firmware | wc -l > /firmware \
         && ! (echo x > /proc/sys/kernel/domainname) 2> /procsys \
         && cat /proc/sys/kernel/ostype > /ostype\n"
    );
    let context = home.context("proc", &dockerfile);
    let out = build_out(&home, &context, "overlay", &[]);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("keys").trim(), "0", "/proc/keys is empty");
    assert_eq!(read("firmware").trim(), "0", "/sys/firmware is empty");
    assert!(
        read("procsys").contains("Read-only file system"),
        "{}",
        read("procsys")
    );
    // Readable still.
    assert_eq!(read("ostype"), "Linux\n");
}

#[test]
fn an_insecure_step_keeps_devices_and_kernel_files() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN --security=insecure mknod /zero c 1 5 && head -c 4 /zero | wc -c > /opened \
         && rm /zero && wc -c < /proc/keys > /keys && grep ' /proc/sys ' /proc/mounts | wc -l > /ro\n"
    );
    let context = home.context("insecure", &dockerfile);
    let out = build_out(
        &home,
        &context,
        "overlay",
        &["--allow", "security.insecure"],
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("opened").trim(), "4");
    assert_ne!(read("keys").trim(), "0", "/proc/keys is the kernel's");
    assert_eq!(read("ro").trim(), "0", "/proc/sys is not remounted");
}
