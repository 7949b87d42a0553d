//! Multi-platform builds (`--platform A,B`): one build per platform, one
//! OCI index as the result (in the store, pushed, in `-o type=oci`), one
//! directory per platform in `-o type=local`; FROM picks each platform's
//! manifest from a base index; the TARGET*/BUILD* args take each build's
//! values; RUN steps run on the build platform only (the cross-compilation
//! idiom), once when the platforms share them; cache keys keep platforms
//! apart; bad platforms are refused. Needs root (and, for the registry
//! tests, Debian's docker-registry and skopeo); skipped otherwise.

mod support;

use predicates::str::contains;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::build::{Home, can_build, layout_blob, stderr_of};
use support::cli::builder;
use support::image::{BaseImage, host_arch, other_arch};
use support::registry::Registry;

/// `linux/<arch>`.
fn linux(arch: &str) -> String {
    format!("linux/{arch}")
}

/// The platforms of an index document, in order.
fn index_platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// The top index of an OCI layout directory written by `-o type=oci`, and
/// each platform's (manifest, config).
fn layout_index(layout: &Path) -> (Value, BTreeMap<String, (Value, Value)>) {
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{top}"
    );
    let index: Value =
        serde_json::from_slice(&layout_blob(layout, entry["digest"].as_str().unwrap())).unwrap();
    let mut images = BTreeMap::new();
    for (platform, m) in index_platforms(&index)
        .into_iter()
        .zip(index["manifests"].as_array().unwrap())
    {
        let manifest: Value =
            serde_json::from_slice(&layout_blob(layout, m["digest"].as_str().unwrap())).unwrap();
        let config: Value = serde_json::from_slice(&layout_blob(
            layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        images.insert(platform, (manifest, config));
    }
    (index, images)
}

/// The files of a gzip layer blob of a layout, with their contents.
fn layer_files(layout: &Path, digest: &str) -> BTreeMap<String, String> {
    let blob = layout_blob(layout, digest);
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&blob[..]));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.insert(entry.path().unwrap().display().to_string(), text);
        }
    }
    files
}

/// Step numbers of plain progress by what they show, and how each ended
/// (`DONE` or `CACHED`).
fn step_outcomes(stderr: &str) -> Vec<(String, &'static str)> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in stderr.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') {
            continue;
        }
        if rest.starts_with('[') {
            names.insert(id.to_owned(), rest.to_owned());
        } else if rest == "CACHED" || rest.starts_with("DONE") {
            let outcome = if rest == "CACHED" { "CACHED" } else { "DONE" };
            out.push((names.get(id).cloned().unwrap_or_default(), outcome));
        }
    }
    out
}

/// How the steps whose progress name contains `text` ended.
fn outcomes_of(stderr: &str, text: &str) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = step_outcomes(stderr)
        .into_iter()
        .filter(|(name, _)| name.contains(text))
        .map(|(_, outcome)| outcome)
        .collect();
    found.sort();
    found
}

#[test]
fn cross_compiled_images_for_two_platforms_are_pushed_as_one_index() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::marked_index(&registry, "base");
    let (host, other) = (host_arch(), other_arch());
    let home = Home::new();
    let dockerfile = format!(
        "FROM --platform=$BUILDPLATFORM {base} AS build\n\
         ARG TARGETARCH TARGETPLATFORM TARGETOS TARGETVARIANT BUILDARCH BUILDPLATFORM\n\
         RUN echo \"$TARGETARCH $TARGETPLATFORM $TARGETOS [$TARGETVARIANT] $BUILDARCH $BUILDPLATFORM\" > /out\n\
         FROM {base}\n\
         ARG TARGETARCH\n\
         LABEL arch=$TARGETARCH\n\
         COPY --from=build /out /built-for\n",
        base = base.reference
    );
    let context = home.context("cross", &dockerfile);
    let target = format!("{}/app:multi", registry.host());
    let (out, layout) = (home.path("out"), home.path("layout"));
    let output = home
        .build(&[
            "--platform",
            &format!("{},{}", linux(host), linux(other)),
            "-t",
            &target,
            "--push",
            "-o",
            &format!("type=local,dest={}", out.display()),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stderr(contains(format!("pushed {target}")))
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    // TARGETARCH differs: the build stage's RUN runs for each target.
    assert_eq!(
        outcomes_of(&stderr, "build 2/2] RUN"),
        ["DONE", "DONE"],
        "{stderr}"
    );

    // type=local: one directory per platform, as buildx writes them.
    for arch in [host, other] {
        let dir = out.join(format!("linux_{arch}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("built-for")).unwrap(),
            format!("{arch} linux/{arch} linux [] {host} linux/{host}\n"),
            "{arch}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("etc/base-arch")).unwrap(),
            format!("{arch}\n"),
            "the {arch} image is on the base's {arch} manifest"
        );
    }

    // The registry has an index of both; each platform reads back.
    let raw: Value = serde_json::from_slice(&registry.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]))
    .unwrap();
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    assert_eq!(index_platforms(&raw), [linux(host), linux(other)]);
    let config: Value = serde_json::from_slice(&registry.skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--override-arch",
        other,
        &format!("docker://{target}"),
    ]))
    .unwrap();
    assert_eq!(config["architecture"], other);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Labels"]["arch"], other);
    let copied = home.path("copied");
    registry.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--override-arch",
        other,
        &format!("docker://{target}"),
        &format!("oci:{}:x", copied.display()),
    ]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(copied.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(&layout_blob(
        &copied,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        3,
        "busybox, the base's marker, the COPY: {manifest}"
    );
    let copy_layer = layer_files(&copied, layers[2]["digest"].as_str().unwrap());
    assert_eq!(
        copy_layer["built-for"],
        format!("{other} linux/{other} linux [] {host} linux/{host}\n")
    );

    // type=oci: the same index, each manifest with its platform's config.
    let (written, images) = layout_index(&layout);
    assert_eq!(written, raw, "the layout holds the pushed index");
    for arch in [host, other] {
        let (_, config) = &images[&linux(arch)];
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Labels"]["arch"], arch);
    }

    // -t names the index in the store.
    builder(home.dir.path())
        .args(["images"])
        .assert()
        .success()
        .stdout(contains(format!("{},{}", linux(host), linux(other))));
}

#[test]
fn a_step_the_platforms_share_runs_once_and_variants_reach_the_config() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "shared",
        "FROM --platform=$BUILDPLATFORM scratch AS tools\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo tools > /tools\"]\n\
         FROM tools AS build\n\
         ARG TARGETARCH TARGETVARIANT\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $TARGETARCH $TARGETVARIANT > /arch\"]\n\
         FROM scratch\n\
         COPY --from=build /arch /tools /\n",
    );
    let host = linux(host_arch());
    let (layout, archive) = (home.path("layout"), home.path("fs.tar"));
    let output = home
        .build(&[
            "--platform",
            &format!("{host},linux/arm/v7"),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            "-o",
            &format!("type=tar,dest={}", archive.display()),
            context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    // The tools stage reads no TARGET* arg: its steps are done once.
    assert_eq!(
        outcomes_of(&stderr, "tools 3/3] RUN"),
        ["CACHED", "DONE"],
        "{stderr}"
    );
    assert_eq!(
        outcomes_of(&stderr, "tools 2/3] COPY"),
        ["CACHED", "DONE"],
        "{stderr}"
    );
    assert_eq!(
        outcomes_of(&stderr, "build 2/2] RUN"),
        ["DONE", "DONE"],
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("[{host} tools 3/3] RUN")),
        "{stderr}"
    );
    assert!(stderr.contains("[linux/arm/v7 build 2/2] RUN"), "{stderr}");

    // type=tar: one directory per platform, as buildx writes it.
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut entries: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    entries.sort();
    let dir = host.replace('/', "_");
    assert_eq!(
        entries,
        [
            format!("{dir}/"),
            format!("{dir}/arch"),
            format!("{dir}/tools"),
            "linux_arm_v7/".to_owned(),
            "linux_arm_v7/arch".to_owned(),
            "linux_arm_v7/tools".to_owned(),
        ]
    );

    let (index, images) = layout_index(&layout);
    assert_eq!(
        index_platforms(&index),
        [host.clone(), "linux/arm/v7".to_owned()]
    );
    let (manifest, config) = &images["linux/arm/v7"];
    assert_eq!(config["architecture"], "arm");
    assert_eq!(config["variant"], "v7");
    assert_eq!(config["os"], "linux");
    let files = layer_files(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
    assert_eq!(files["arch"], "arm v7\n");
    assert_eq!(files["tools"], "tools\n");
    let (manifest, config) = &images[&host];
    assert_eq!(config["architecture"], host_arch());
    assert!(config.get("variant").is_none(), "{config}");
    let files = layer_files(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
    assert_eq!(files["arch"], format!("{}\n", host_arch()));
}

#[test]
fn cache_records_of_one_platform_never_serve_another() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("cache", "FROM scratch\nCOPY busybox /bin/busybox\n");
    let build = |platform: &str| {
        let layout = home.path(&format!("layout-{}", platform.replace('/', "_")));
        let output = home
            .build(&[
                "--platform",
                platform,
                "-o",
                &format!("type=oci,tar=false,dest={}", layout.display()),
                context.to_str().unwrap(),
            ])
            .assert()
            .success()
            .get_output()
            .clone();
        let (_, config) = support::build::layout_image(&layout);
        (outcomes_of(&stderr_of(&output), "COPY busybox"), config)
    };
    let (host, other) = (linux(host_arch()), linux(other_arch()));
    let (first, _) = build(&host);
    assert_eq!(first, ["DONE"]);
    let (second, config) = build(&other);
    assert_eq!(second, ["DONE"], "the {host} record does not serve {other}");
    assert_eq!(config["architecture"], other_arch());
    let (third, config) = build(&host);
    assert_eq!(third, ["CACHED"], "each platform keeps its own record");
    assert_eq!(config["architecture"], host_arch());
}

#[test]
fn bad_platform_lists_are_usage_errors_naming_the_flag() {
    let home = Home::new();
    let context = home.context("bad", "FROM scratch\nCOPY busybox /\n");
    let ctx = context.to_str().unwrap();
    for (platforms, message) in [
        ("linux//amd64", "empty component"),
        ("linux/amd65", "unknown architecture"),
        ("plan10/amd64", "unknown operating system"),
        ("linux/arm64,linux/aarch64", "listed twice"),
        ("linux/amd64,", "empty component"),
    ] {
        home.build(&["--platform", platforms, ctx])
            .assert()
            .code(2)
            .stderr(contains("--platform"))
            .stderr(contains(message));
    }
    let archive = home.path("image.tar");
    home.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
        ctx,
    ])
    .assert()
    .code(2)
    .stderr(contains("-o type=docker holds one platform's image"))
    .stderr(contains("type=oci"));
    assert!(!archive.exists());
}

#[test]
fn a_base_without_the_platform_names_what_it_has() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let index = BaseImage::marked_index(&registry, "base");
    let single = BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context(
        "missing",
        &format!("FROM {}\nCOPY busybox /b\n", index.reference),
    );
    home.build(&["--platform", "linux/s390x", context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("no manifest for platform linux/s390x"))
        .stderr(contains(format!(
            "the index has: {}, {}",
            linux(host_arch()),
            linux(other_arch())
        )));
    let context = home.context(
        "single",
        &format!("FROM {}\nCOPY busybox /b\n", single.reference),
    );
    home.build(&[
        "--platform",
        &linux(other_arch()),
        context.to_str().unwrap(),
    ])
    .assert()
    .code(1)
    .stderr(contains(format!(
        "the image is for {} only, not {}",
        linux(host_arch()),
        linux(other_arch())
    )));
}

#[test]
fn pull_keeps_an_index_and_push_sends_all_of_it() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::marked_index(&registry, "base");
    let (host, other) = (linux(host_arch()), linux(other_arch()));
    let copy = format!("{}/copy:1", registry.host());

    // This machine's platform only: the index is kept, the other absent.
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["pull", "--progress", "quiet", &base.reference])
        .assert()
        .success()
        .stdout(contains(format!("Digest: {}", base.digest)));
    builder(home.path())
        .args(["images"])
        .assert()
        .success()
        .stdout(contains(format!("{host},{other} (absent)")));
    builder(home.path())
        .args(["push", "--progress", "quiet", &base.reference, &copy])
        .assert()
        .code(1)
        .stderr(contains(format!(
            "the stored index lists {other}, which is not in the store"
        )))
        .stderr(contains("--all-platforms"));

    // Every platform: the index goes back whole, each gzip layer as
    // pulled; a push compresses the uncompressed ones (the marker layers),
    // as BuildKit's export does.
    builder(home.path())
        .args([
            "pull",
            "--progress",
            "quiet",
            "--all-platforms",
            &base.reference,
        ])
        .assert()
        .success();
    builder(home.path())
        .args(["images"])
        .assert()
        .success()
        .stdout(contains(format!("{host},{other}\n")));
    builder(home.path())
        .args(["inspect", "--platform", &other, &base.reference])
        .assert()
        .success()
        .stdout(contains(format!("\"architecture\": \"{}\"", other_arch())));
    builder(home.path())
        .args(["push", "--progress", "quiet", &base.reference, &copy])
        .assert()
        .success();
    let raw = registry.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{copy}"),
    ]);
    let sent: Value = serde_json::from_slice(&raw).unwrap();
    let pulled: Value = serde_json::from_slice(&base.blobs[&base.digest]).unwrap();
    let entries = |index: &Value| index["manifests"].as_array().unwrap().clone();
    assert_eq!(entries(&sent).len(), entries(&pulled).len());
    for (sent, pulled) in entries(&sent).iter().zip(&entries(&pulled)) {
        assert_eq!(sent["platform"], pulled["platform"]);
        let manifest = |digest: &Value, raw: Option<&Vec<u8>>| -> Value {
            let bytes = raw.cloned().unwrap_or_else(|| {
                registry.skopeo(&[
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    &format!(
                        "docker://{}@{}",
                        copy.trim_end_matches(":1"),
                        digest.as_str().unwrap()
                    ),
                ])
            });
            serde_json::from_slice(&bytes).unwrap()
        };
        let sent = manifest(&sent["digest"], None);
        let pulled = manifest(
            &pulled["digest"],
            base.blobs.get(pulled["digest"].as_str().unwrap()),
        );
        assert_eq!(sent["config"], pulled["config"]);
        let layers = |m: &Value| m["layers"].as_array().unwrap().clone();
        assert_eq!(layers(&sent).len(), layers(&pulled).len());
        for (sent, pulled) in layers(&sent).iter().zip(&layers(&pulled)) {
            if pulled["mediaType"] == "application/vnd.oci.image.layer.v1.tar" {
                assert_eq!(
                    sent["mediaType"],
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                );
            } else {
                assert_eq!(sent, pulled, "a compressed layer is sent as pulled");
            }
        }
    }
    let config: Value = serde_json::from_slice(&registry.skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--override-arch",
        other_arch(),
        &format!("docker://{copy}"),
    ]))
    .unwrap();
    assert_eq!(config["architecture"], other_arch());

    // --platform on pull takes a list too.
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args([
            "pull",
            "--progress",
            "quiet",
            "--platform",
            &format!("{host},{other}"),
            &base.reference,
        ])
        .assert()
        .success();
    builder(home.path())
        .args(["images"])
        .assert()
        .success()
        .stdout(contains(format!("{host},{other}\n")));
}
