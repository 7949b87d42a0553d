//! The registry commands end to end through the real binary: pull tags the
//! image in the store, inspect shows it from there, push sends it under a
//! new name, and skopeo reads that back unchanged.

mod support;

use predicates::str::contains;
use support::cli::builder;
use support::image::BaseImage;
use support::registry::Registry;

#[test]
fn pull_inspect_push_round_trip() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["pull", &image.reference])
        .assert()
        .success()
        .stdout(contains(format!("Digest: {}", image.digest)));

    let out = builder(home.path())
        .args(["inspect", &image.reference])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let shown: serde_json::Value = serde_json::from_slice(&out).expect("inspect prints JSON");
    assert_eq!(shown["digest"], image.digest.as_str());
    assert_eq!(
        shown["manifest"]["layers"][0]["digest"],
        image.layer.as_str()
    );
    assert_eq!(shown["config"]["config"]["Cmd"][0], "sh");

    let copy = format!("{}/copy:v2", registry.host());
    builder(home.path())
        .args(["push", &image.reference, &copy])
        .assert()
        .success()
        .stdout(contains(format!("Digest: {}", image.digest)))
        // Plain progress lines (stderr is not a terminal here).
        .stderr(contains("mounted from busybox"));
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{copy}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], image.digest.as_str());

    builder(home.path())
        .args(["push", &format!("{}/never-pulled:x", registry.host())])
        .assert()
        .failure()
        .stderr(contains("no such image in the local store"));
}
