//! Push and pull throughput of builder against `skopeo copy`, for one image
//! with a 200 MB random layer on local docker-registry instances.
//!
//! `cargo bench --bench registry_push_pull` (optionally `BENCH_LAYER_MB=N`).
//! Each push goes to a fresh registry so neither tool can skip or mount the
//! blob; each pull goes into an empty store or directory.

#[path = "../tests/support/mod.rs"]
mod support;

use builder::digest::sha256;
use builder::image::Reference;
use builder::progress::ProgressSender;
use builder::registry::{Client, PullOptions, PushOptions, pull, push};
use builder::store::Store;
use serde_json::json;
use std::time::{Duration, Instant};
use support::registry::Registry;

fn main() {
    let Some(source) = Registry::start() else {
        return;
    };
    let mb: usize = std::env::var("BENCH_LAYER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let layout = tempfile::tempdir().expect("temp dir");
    let size = write_layout(layout.path(), mb << 20);
    let oci = format!("oci:{}:latest", layout.path().display());
    let src = format!("{}/bench:latest", source.host());
    source.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci,
        &format!("docker://{src}"),
    ]);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");

    // Pull.
    let out = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    source.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &format!("oci:{}:latest", out.path().display()),
    ]);
    let skopeo_pull = t.elapsed();
    let root = tempfile::tempdir().expect("temp dir");
    let store = Store::open(root.path()).expect("store");
    let client = Client::new(&source.host(), None, &[]).expect("client");
    let reference = Reference::parse(&src).expect("reference");
    let t = Instant::now();
    let pulled = rt
        .block_on(pull(
            &client,
            &store,
            &reference,
            &PullOptions::default(),
            &ProgressSender::discard(),
            None,
        ))
        .expect("builder pull");
    let builder_pull = t.elapsed();

    // Push, each to a fresh registry.
    let skopeo_dest = Registry::start().expect("registry");
    let t = Instant::now();
    skopeo_dest.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci,
        &format!("docker://{}/bench:latest", skopeo_dest.host()),
    ]);
    let skopeo_push = t.elapsed();
    let builder_dest = Registry::start().expect("registry");
    let to = Client::new(&builder_dest.host(), None, &[]).expect("client");
    let target =
        Reference::parse(&format!("{}/bench:latest", builder_dest.host())).expect("reference");
    let t = Instant::now();
    rt.block_on(push(
        &to,
        &store,
        &pulled.manifest,
        &target,
        &PushOptions::default(),
        &ProgressSender::discard(),
    ))
    .expect("builder push");
    let builder_push = t.elapsed();

    println!("image with one {mb} MiB random layer ({size} bytes in all)");
    report("pull", "skopeo copy", size, skopeo_pull);
    report("pull", "builder", size, builder_pull);
    report("push", "skopeo copy", size, skopeo_push);
    report("push", "builder", size, builder_push);
}

fn report(what: &str, tool: &str, bytes: u64, took: Duration) {
    let mbs = bytes as f64 / (1 << 20) as f64 / took.as_secs_f64();
    println!(
        "{what} {tool:12} {:>8.2} s {:>9.1} MiB/s",
        took.as_secs_f64(),
        mbs
    );
}

/// An OCI layout with one random, incompressible layer; returns the total
/// size of its blobs.
fn write_layout(dir: &std::path::Path, layer_size: usize) -> u64 {
    let mut layer = vec![0u8; layer_size];
    fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15).fill(&mut layer);
    let layer_digest = sha256(&layer).to_string();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("config");
    let config_digest = sha256(&config).to_string();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("manifest");
    let manifest_digest = sha256(&manifest).to_string();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blob dir");
    let total = (layer.len() + config.len() + manifest.len()) as u64;
    for (d, b) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).expect("write blob");
    }
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]})
        .to_string(),
    )
    .expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    total
}
