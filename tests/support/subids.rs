//! A user with a subordinate ID range (`/etc/subuid`, `/etc/subgid`) for
//! rootless builds through `newuidmap`/`newgidmap`: made where missing and
//! left in place (later runs reuse it).

use std::path::Path;
use std::process::Command;

/// The test user's name.
pub const USER: &str = "builder-subids";
/// First host ID of its range (far from what `useradd` hands out).
pub const SUB_START: u32 = 3_000_000;
/// Size of its range.
pub const SUB_COUNT: u32 = 65_536;

/// The test user's uid and gid, after making it and its ranges where
/// missing; `None` (with a SKIPPED message) without `uidmap` installed.
pub fn subid_user() -> Option<(u32, u32)> {
    if !Path::new("/usr/bin/newuidmap").exists() || !Path::new("/usr/bin/newgidmap").exists() {
        eprintln!("SKIPPED: newuidmap/newgidmap are not installed (Debian: uidmap)");
        return None;
    }
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
    };
    if id("-u").is_none() {
        let made = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", USER])
            .output()
            .expect("run useradd");
        // Exit code 9: another test process made it first.
        assert!(
            made.status.success() || made.status.code() == Some(9),
            "useradd: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let content = std::fs::read_to_string(file).unwrap_or_default();
        if !content.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let mut all = content;
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&format!("{USER}:{SUB_START}:{SUB_COUNT}\n"));
            std::fs::write(file, all).unwrap();
        }
    }
    Some((id("-u")?, id("-g")?))
}

/// Gives every entry under `dir` (and `dir`) to `uid`:`gid`.
pub fn give_to(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if !std::fs::symlink_metadata(dir).unwrap().is_dir() {
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        give_to(&entry.unwrap().path(), uid, gid);
    }
}
