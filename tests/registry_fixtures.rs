//! The test harness itself: a real registry in each auth mode accepts the
//! busybox fixture from skopeo, so failures elsewhere are builder's.

mod support;

use std::process::Command;
use support::image::{BaseImage, host_arch};
use support::registry::Registry;

fn skopeo_inspect(registry: &Registry, reference: &str, raw: bool) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(if raw { &["--raw"][..] } else { &[][..] })
        .args(registry.skopeo_creds("--creds"))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo inspect");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

#[test]
fn open_registry_serves_the_busybox_fixture() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let info = skopeo_inspect(&registry, &image.reference, false);
    assert_eq!(info["Digest"], image.digest.as_str());
    assert_eq!(info["Architecture"], host_arch());
    assert_eq!(info["Layers"][0], image.layer.as_str());
}

#[test]
fn htpasswd_registry_takes_the_fixture_with_credentials() {
    let Some(registry) = Registry::with_htpasswd("alice", "s3cret") else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let info = skopeo_inspect(&registry, &image.reference, false);
    assert_eq!(info["Digest"], image.digest.as_str());
}

#[test]
fn token_registry_takes_a_multi_platform_index_with_credentials() {
    let Some(registry) = Registry::with_token_auth("bob", "hunter2") else {
        return;
    };
    let image = BaseImage::busybox_index(&registry, "multi");
    let raw = skopeo_inspect(&registry, &image.reference, true);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(2));
}
