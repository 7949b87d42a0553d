//! What a user sees when a registry says no: the registry, the HTTP status
//! and the registry's error code, or the host that cannot be reached; and a
//! non-zero exit.

mod support;

use predicates::str::contains;
use support::cli::builder;
use support::image::BaseImage;
use support::registry::{Registry, free_port};

#[test]
fn a_missing_tag_names_the_reference_status_and_code() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let _image = BaseImage::busybox(&registry);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/busybox:no-such-tag", registry.host());
    builder(home.path())
        .args(["pull", &reference])
        .assert()
        .failure()
        .stderr(contains(format!(
            "{reference}: registry answered 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)"
        )));
}

#[test]
fn a_registry_that_is_down_is_named() {
    let home = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    builder(home.path())
        .args(["pull", &format!("{host}/app:latest")])
        .assert()
        .failure()
        .stderr(contains(format!("cannot reach registry {host}")))
        .stderr(contains("Connection refused"));
}

#[test]
fn an_invalid_platform_is_refused_before_any_network() {
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["pull", "--platform", "linux//amd64", "127.0.0.1:1/app"])
        .assert()
        .failure()
        .stderr(contains("invalid platform \"linux//amd64\""));
}
