//! Blobs damaged on disk in the store: a pull fetches one of the wrong size
//! again; a push refuses to send one whose bytes do not hash to its digest
//! (the registry commits nothing) and removes it; a build that unpacks one
//! names it, removes it, and the next build fetches it again (a damaged
//! config, read whole, is fetched again at once).

mod support;

use support::build::{Home, can_build, stderr_of};
use support::cli::builder;
use support::image::BaseImage;
use support::registry::{Registry, http_status};

/// The store file of blob `digest` under `home`.
fn blob_file(home: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    home.join("store/blobs/sha256").join(hex)
}

/// Flips a byte in the middle of a file: same size, other bytes.
fn flip_a_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

/// `builder ARGS…` against `home`: exit code and stderr.
fn run(home: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = builder(home).args(args).output().unwrap();
    (output.status.code().unwrap_or(-1), stderr_of(&output))
}

#[test]
fn a_pull_fetches_again_a_stored_blob_of_the_wrong_size() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let home = tempfile::tempdir().unwrap();
    assert_eq!(run(home.path(), &["pull", &image.reference]).0, 0);
    let file = blob_file(home.path(), &image.layer);
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, &good[..good.len() / 2]).unwrap();

    let (code, stderr) = run(home.path(), &["pull", &image.reference]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), good);
}

#[test]
fn a_push_refuses_a_corrupt_blob_and_the_registry_gets_nothing() {
    let (Some(source), Some(target)) = (Registry::start(), Registry::start()) else {
        return;
    };
    let image = BaseImage::busybox(&source);
    let home = tempfile::tempdir().unwrap();
    assert_eq!(run(home.path(), &["pull", &image.reference]).0, 0);
    let copy = format!("{}/copy:v1", target.host());
    assert_eq!(run(home.path(), &["tag", &image.reference, &copy]).0, 0);
    let file = blob_file(home.path(), &image.layer);
    flip_a_byte(&file);

    let (code, stderr) = run(home.path(), &["push", &copy]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("blob {} in the store is corrupt", image.layer)),
        "{stderr}"
    );
    assert!(stderr.contains(&copy), "{stderr}");
    let blob_url = format!("/v2/copy/blobs/{}", image.layer);
    assert_eq!(http_status(&target.host(), &blob_url), Some(404));
    assert!(!file.exists(), "the corrupt blob is removed");

    // A pull fetches it again; the push then goes through.
    assert_eq!(run(home.path(), &["pull", &image.reference]).0, 0);
    let (code, stderr) = run(home.path(), &["push", &copy]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(http_status(&target.host(), &blob_url), Some(200));
}

#[test]
fn a_build_names_a_corrupt_layer_and_the_next_build_fetches_it_again() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let home = Home::new();
    assert_eq!(run(home.dir.path(), &["pull", &image.reference]).0, 0);
    let file = blob_file(home.dir.path(), &image.layer);
    flip_a_byte(&file);
    let context = home.context(
        "corrupt",
        &format!("FROM {}\nRUN echo hello > /greeting\n", image.reference),
    );

    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("blob {} in the store is corrupt", image.layer)),
        "{stderr}"
    );
    assert!(stderr.contains("corrupt/Dockerfile:2"), "{stderr}");
    assert!(!file.exists(), "the corrupt blob is removed");

    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        image.blobs[&image.layer],
        "fetched again"
    );

    // A damaged config is found when the base is read, and fetched again.
    let config = &image.configs[support::image::host_arch()];
    let config_file = blob_file(home.dir.path(), config);
    flip_a_byte(&config_file);
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read(&config_file).unwrap(), image.blobs[config]);
}
