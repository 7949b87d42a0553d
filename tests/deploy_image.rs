//! The builder image (deploy/Dockerfile, built by deploy/build-image.sh
//! with builder itself): its entrypoint is builder, and builder, its shell
//! and its CA certificates work inside it — a second build runs them in a
//! RUN step on the image's own root filesystem.

mod support;

use std::path::Path;
use std::process::Command;
use support::build::{Home, can_build, stderr_of};

#[test]
fn the_builder_image_runs_builder_from_its_entrypoint() {
    if !can_build() {
        return;
    }
    if !Path::new("/bin/busybox").exists()
        || Command::new("ldd")
            .arg("/bin/busybox")
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!(
            "SKIPPED: the image needs a static /bin/busybox (apt-get install busybox-static)"
        );
        return;
    }
    let home = Home::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The binary this test run built (debug); zstd, as the debug build's
    // gzip is slow on a 30 MB binary.
    let out = Command::new("sh")
        .arg(repo.join("deploy/build-image.sh"))
        .args([
            "-t",
            "builder:test",
            "--compression",
            "zstd",
            "--progress",
            "plain",
        ])
        .env("BUILDER_BIN", env!("CARGO_BIN_EXE_builder"))
        .env("HOME", home.dir.path())
        .env("DOCKER_CONFIG", home.path("docker"))
        .env("BUILDER_ROOT", home.path("store"))
        .env("TMPDIR", home.dir.path())
        .output()
        .expect("run deploy/build-image.sh");
    assert!(out.status.success(), "{}", stderr_of(&out));

    let out = support::cli::builder(home.dir.path())
        .args(["inspect", "builder:test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = &shown["config"]["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/builder"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["help"]));
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(shown["config"]["os"], "linux");

    // The staging directory is gone: nothing left in TMPDIR but the store.
    let left: Vec<_> = std::fs::read_dir(home.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("builder-image."))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let context = home.context(
        "uses",
        "FROM builder:test\n\
         RUN builder --version > report.txt \
          && sh -c 'echo shell works' >> report.txt \
          && echo \"$(id -u):$(id -g) $HOME $(stat -c %u $HOME)\" >> report.txt \
          && { [ ! -f /etc/ssl/certs/ca-certificates.crt ] \
               || head -c 27 /etc/ssl/certs/ca-certificates.crt >> report.txt; }\n",
    );
    let out = home
        .build(&["--network", "none", "-o"])
        .arg(format!("type=local,dest={}", home.path("out").display()))
        .arg(&context)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The step runs in /workspace as the image's user, builder (1000).
    let report = std::fs::read_to_string(home.path("out/workspace/report.txt")).unwrap();
    let mut expected = format!(
        "builder {}\nshell works\n1000:1000 /home/builder 1000\n",
        env!("CARGO_PKG_VERSION")
    );
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        expected.push_str("-----BEGIN CERTIFICATE-----");
    }
    assert_eq!(report, expected);
}
