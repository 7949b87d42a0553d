//! A busybox root filesystem made from the host's static `/bin/busybox`
//! (Debian's `busybox-static`), with its applet links and a minimal
//! `/etc/passwd` and `/etc/group`: the base tests run steps on.

use std::fs;
use std::path::Path;

/// Fills the existing directory `root` with the busybox rootfs: `/bin`
/// with busybox and one symlink per applet, and `/etc/passwd` (root and
/// `user` 1000:1000) and `/etc/group` (root, user, `ten` 10).
pub fn rootfs(root: &Path) {
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nten:x:10:\n",
    )
    .unwrap();
}
