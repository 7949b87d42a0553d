//! Stages built on registry images, as BuildKit builds them (cases after
//! BuildKit's `dockerfile_test.go` tests of FROM and `COPY --from` an
//! image; each checked against BuildKit 0.8 with its busybox image): the
//! base's config is inherited (ENV appended to, CMD kept unless ENTRYPOINT
//! is set), FROM takes a build arg, and COPY --from reads an image. The
//! base is pushed to a registry the test starts. `--from` takes no variables. Needs root; skipped
//! otherwise.

mod support;

use serde_json::json;
use support::build::{Home, can_build};
use support::image::BaseImage;
use support::registry::Registry;

/// Stages on `$BASE`, and one copying from `base` (`--from` takes no
/// variables, as in BuildKit).
fn dockerfile(base: &str) -> String {
    format!(
        "ARG BASE\nFROM $BASE AS one\nENV X=1\n\
         FROM $BASE AS two\nENTRYPOINT [\"/bin/echo\"]\n\
         FROM scratch AS three\nCOPY --from={base} /bin/busybox /bb\n"
    )
}

#[test]
fn a_registry_base_gives_its_config_and_files() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context("from-registry", &dockerfile(&base.reference));
    let arg = format!("BASE={}", base.reference);
    let build = |target: &str| home.built(&context, &["--build-arg", &arg, "--target", target]);
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    let one = build("one");
    assert_eq!(one.runtime()["Env"], json!([path, "X=1"]));
    assert_eq!(one.runtime()["Cmd"], json!(["sh"]));
    assert_eq!(one.mode("/bin/busybox"), 0o755);

    let two = build("two");
    assert_eq!(two.runtime()["Entrypoint"], json!(["/bin/echo"]));
    assert!(
        two.runtime().get("Cmd").is_none_or(|cmd| cmd.is_null()),
        "{}",
        two.runtime()
    );
}

#[test]
fn copy_from_an_image_reads_its_files() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context("copy-from-image", &dockerfile(&base.reference));
    let arg = format!("BASE={}", base.reference);
    let image = home.built(&context, &["--build-arg", &arg]);
    assert_eq!(image.list("/"), ["bb"]);
    assert_eq!(image.mode("/bb"), 0o755);
    assert_eq!(image.owner("/bb"), (0, 0));
    assert_eq!(
        image.node("/bb").kind,
        support::built::Kind::File(std::fs::read("/bin/busybox").unwrap())
    );
}
