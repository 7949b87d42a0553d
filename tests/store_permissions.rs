//! What builds leave in the store (unpacked layers with setuid programs,
//! cache mounts) is out of reach of other local users: a build must not
//! hand them a setuid-root program on the host.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::build::{Home, can_build};

/// Every path named `name` under `dir`, at any depth (not following links).
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    found
}

#[test]
fn another_user_cannot_reach_a_builds_setuid_programs_in_the_store() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // The home is open to everyone, as /var/lib is: only the store's own
    // permissions stand between other users and its content.
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let context = home.context(
        "suid",
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN --mount=type=cache,target=/cache [\"/bin/busybox\", \"sh\", \"-c\", \
         \"/bin/busybox cp /bin/busybox /suid && /bin/busybox chmod 4755 /suid && \
         /bin/busybox cp /suid /cache/suid\"]\n",
    );
    let built = home.build(&[context.to_str().unwrap()]).output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let store = home.path("store");
    for dir in ["snapshots", "tmp", "cache-mounts"] {
        let mode = std::fs::metadata(store.join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "store/{dir} is {:o}", mode & 0o777);
    }
    let programs = find(&store, "suid");
    assert!(
        programs.len() >= 2,
        "the snapshot and the cache mount both hold the program: {programs:?}"
    );
    for program in programs {
        let mode = std::fs::metadata(&program).unwrap().permissions().mode();
        assert_eq!(mode & 0o4000, 0o4000, "{} is setuid", program.display());
        let reached = Command::new("/bin/busybox")
            .args(["stat", "-c", "%a"])
            .arg(&program)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(
            !reached.status.success(),
            "uid 65534 reached {}: {}",
            program.display(),
            String::from_utf8_lossy(&reached.stdout)
        );
        assert!(
            String::from_utf8_lossy(&reached.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&reached.stderr)
        );
    }
}
