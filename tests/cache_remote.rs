//! A build cache shared through a registry (or an OCI layout directory):
//! two stores stand for two CI runners. Runner A builds with `--cache-to`,
//! runner B, with an empty store, builds with `--cache-from` and gets every
//! step from the cache, the same image, and only the bytes it needs.
//! Needs root (sandboxed RUN steps) and Debian's docker-registry for the
//! registry tests; skipped otherwise.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::build::{Home, can_build, stderr_of};
use support::registry::{Registry, free_port};

/// A CI-style Dockerfile: tools, a RUN, then the app copied on top and
/// a RUN over it. A hit on any of its steps reads no parent's files.
const FLAT: &str = "FROM scratch\n\
    COPY busybox /bin/\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo tools > /tools\"]\n\
    WORKDIR /app\n\
    COPY app.sh ./\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat app.sh > copy\"]\n\
    CMD [\"/app/app.sh\"]\n";

/// Two stages: `build` makes an artifact the final stage copies.
const STAGES: &str = "FROM scratch AS tools\n\
    COPY busybox /bin/busybox\n\
    FROM tools AS build\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo built > /artifact\"]\n\
    FROM tools\n\
    COPY --from=build /artifact /artifact\n\
    COPY app.sh /app.sh\n";

fn context(home: &Home, name: &str, dockerfile: &str, app: &str) -> PathBuf {
    let dir = home.context(name, dockerfile);
    std::fs::write(dir.join("app.sh"), app).unwrap();
    dir
}

/// `image sha256:…` of the build's summary.
/// The image ID (config digest) of the summary's `image … (id …)` line:
/// the same image whatever store it is in (the local manifest names the
/// layers as that store keeps them: uncompressed when built there,
/// compressed when a cache gave them).
fn id_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("image "))
        .and_then(|l| l.split_once("(id "))
        .map(|(_, id)| id.trim_end_matches(')').to_owned())
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"))
}

fn run(home: &Home, args: &[&str]) -> String {
    let output = home.build(args).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "build failed:\n{stderr}");
    stderr
}

fn login(home: &Home, registry: &Registry) {
    let (user, password) = registry.credentials.clone().unwrap();
    support::cli::builder(home.dir.path())
        .args(["login", "-u", &user, "--password-stdin", &registry.host()])
        .write_stdin(password)
        .assert()
        .success();
}

/// The layer digests of `reference`'s manifest, as the registry has it.
fn registry_layers(registry: &Registry, reference: &str) -> Vec<String> {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    let creds = registry.skopeo_creds("--creds");
    args.extend(creds.iter().map(String::as_str));
    let target = format!("docker://{reference}");
    args.push(&target);
    let manifest: Value = serde_json::from_slice(&registry.skopeo(&args)).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn stored_blob(home: &Home, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    home.path("store/blobs/sha256").join(hex).is_file()
}

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// The manifest and cache config of a local cache directory.
fn local_cache(dir: &Path) -> (Value, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let manifest: Value =
        serde_json::from_slice(&layout_blob(dir, entry["digest"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&layout_blob(
        dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    (manifest, config)
}

fn record_keys(config: &Value) -> Vec<String> {
    config["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_second_runner_builds_from_the_registry_cache_and_pulls_no_layer() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::with_htpasswd("ci", "s3cret") else {
        return;
    };
    let host = registry.host();
    let cache = format!("{host}/cache/app:main");
    let (a, b) = (Home::new(), Home::new());
    login(&a, &registry);
    login(&b, &registry);

    let context_a = context(&a, "src", FLAT, "#!/bin/sh\necho v1\n");
    let image_a = format!("{host}/app:a");
    let stderr_a = run(
        &a,
        &[
            "-t",
            &image_a,
            "--push",
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            context_a.to_str().unwrap(),
        ],
    );
    assert!(
        stderr_a.contains(&format!("exported cache {cache}: 5 step records")),
        "{stderr_a}"
    );

    // The cache is plain OCI content: an image manifest skopeo copies.
    let copied = a.path("copied");
    let mut args = vec!["copy", "--src-tls-verify=false"];
    let creds = registry.skopeo_creds("--src-creds");
    args.extend(creds.iter().map(String::as_str));
    let source = format!("docker://{cache}");
    let dest = format!("oci:{}:latest", copied.display());
    args.extend([source.as_str(), dest.as_str()]);
    registry.skopeo(&args);
    let (manifest, config) = local_cache(&copied);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.builder.cache.config.v1+json"
    );
    assert_eq!(record_keys(&config).len(), 5);

    // Runner B: its own checkout (another path) and an empty store.
    let context_b = context(&b, "checkout", FLAT, "#!/bin/sh\necho v1\n");
    let image_b = format!("{host}/app:b");
    let stderr_b = run(
        &b,
        &[
            "-t",
            &image_b,
            "--push",
            "--cache-from",
            &cache,
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            context_b.to_str().unwrap(),
        ],
    );
    assert_eq!(stderr_b.matches(" CACHED").count(), 5, "{stderr_b}");
    assert!(
        stderr_b.contains("0 steps run, 5 cached; 0 B pulled, 0 B pushed"),
        "{stderr_b}"
    );
    assert_eq!(id_of(&stderr_b), id_of(&stderr_a), "the same image");
    let layers = registry_layers(&registry, &image_b);
    assert_eq!(
        layers,
        registry_layers(&registry, &image_a),
        "the same layers pushed"
    );
    assert_eq!(layers.len(), 5);
    for layer in &layers {
        assert!(!stored_blob(&b, layer), "B fetched {layer}:\n{stderr_b}");
    }

    // An edit on B: the COPY runs again, and says why, against A's record.
    std::fs::write(context_b.join("app.sh"), "#!/bin/sh\necho v2\n").unwrap();
    let stderr_edit = run(&b, &["--cache-from", &cache, context_b.to_str().unwrap()]);
    assert!(
        stderr_edit.contains("cache miss: `app.sh` changed"),
        "{stderr_edit}"
    );
    assert!(
        stderr_edit.contains("2 steps run, 3 cached"),
        "{stderr_edit}"
    );
}

#[test]
fn keys_are_the_same_on_two_machines() {
    if !can_build() {
        return;
    }
    let (a, b) = (Home::new(), Home::new());
    let mut keys = Vec::new();
    for (home, name) in [(&a, "one"), (&b, "elsewhere/two")] {
        let dir = context(home, name, STAGES, "#!/bin/sh\necho same\n");
        let cache = home.path("cache");
        run(
            home,
            &[
                "--cache-to",
                &format!("type=local,dest={},mode=max", cache.display()),
                dir.to_str().unwrap(),
            ],
        );
        let (_, config) = local_cache(&cache);
        for record in config["records"].as_array().unwrap() {
            let text = record["inputs"].to_string();
            assert!(!text.contains(home.dir.path().to_str().unwrap()), "{text}");
        }
        keys.push(record_keys(&config));
    }
    assert_eq!(keys[0].len(), 4, "{keys:?}");
    assert_eq!(keys[0], keys[1]);
}

/// The media types and digests of a cache manifest's layers.
fn cache_layers(manifest: &Value) -> Vec<(String, String)> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let field = |k: &str| l[k].as_str().unwrap().to_owned();
            (field("mediaType"), field("digest"))
        })
        .collect()
}

#[test]
fn cache_to_takes_the_compression_attributes() {
    if !can_build() {
        return;
    }
    let a = Home::new();
    let dir = context(&a, "src", STAGES, "#!/bin/sh\necho levels\n");
    let (zstd, fast, default) = (a.path("zstd"), a.path("fast"), a.path("default"));
    let stderr_a = run(
        &a,
        &[
            "--cache-to",
            &format!(
                "type=local,dest={},compression=zstd,compression-level=12",
                zstd.display()
            ),
            "--cache-to",
            &format!("type=local,dest={},compression-level=1", fast.display()),
            "--cache-to",
            &format!("type=local,dest={}", default.display()),
            dir.to_str().unwrap(),
        ],
    );
    let layers = |dir: &Path| cache_layers(&local_cache(dir).0);
    let (zstd_layers, fast_layers, default_layers) =
        (layers(&zstd), layers(&fast), layers(&default));
    assert!(!zstd_layers.is_empty());
    for (media_type, _) in &zstd_layers {
        assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    for ((fast_type, fast_digest), (default_type, default_digest)) in
        fast_layers.iter().zip(&default_layers)
    {
        assert_eq!(fast_type, "application/vnd.oci.image.layer.v1.tar+gzip");
        assert_eq!(fast_type, default_type);
        assert_ne!(
            fast_digest, default_digest,
            "level 1 is not the default level"
        );
    }

    // Another runner reads the zstd cache (mode=min: the build stage's
    // RUN runs, on the zstd layer it unpacks): the same image.
    let b = Home::new();
    let dir = context(&b, "src", STAGES, "#!/bin/sh\necho levels\n");
    let stderr = run(
        &b,
        &[
            "--cache-from",
            &format!("type=local,src={}", zstd.display()),
            "-o",
            &format!("type=local,dest={}", b.path("fs").display()),
            dir.to_str().unwrap(),
        ],
    );
    assert!(stderr.contains("1 step run, 3 cached"), "{stderr}");
    assert_eq!(id_of(&stderr), id_of(&stderr_a));
}

#[test]
fn mode_min_leaves_out_the_other_stages_and_max_keeps_them() {
    if !can_build() {
        return;
    }
    let a = Home::new();
    let dir = context(&a, "src", STAGES, "#!/bin/sh\necho stages\n");
    let (min, max) = (a.path("min"), a.path("max"));
    let stderr_a = run(
        &a,
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
            dir.to_str().unwrap(),
        ],
    );
    let (_, min_config) = local_cache(&min);
    let (_, max_config) = local_cache(&max);
    assert_eq!(
        record_keys(&min_config).len(),
        3,
        "tools and the final stage"
    );
    assert_eq!(
        record_keys(&max_config).len(),
        4,
        "the build stage's RUN too"
    );

    for (cache, runs) in [
        (&min, "1 step run, 3 cached"),
        (&max, "0 steps run, 4 cached"),
    ] {
        let b = Home::new();
        let dir = context(&b, "src", STAGES, "#!/bin/sh\necho stages\n");
        let stderr = run(
            &b,
            &[
                "--cache-from",
                &format!("type=local,src={}", cache.display()),
                dir.to_str().unwrap(),
            ],
        );
        assert!(stderr.contains(runs), "{}: {stderr}", cache.display());
        assert_eq!(id_of(&stderr), id_of(&stderr_a));
    }
}

#[test]
fn an_inline_cache_travels_in_the_pushed_image() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = format!("{}/inline:1", registry.host());
    let a = Home::new();
    let dir = context(&a, "src", FLAT, "#!/bin/sh\necho inline\n");
    let stderr_a = run(
        &a,
        &[
            "-t",
            &image,
            "--push",
            "--cache-to",
            "type=inline",
            dir.to_str().unwrap(),
        ],
    );
    let b = Home::new();
    let dir = context(&b, "src", FLAT, "#!/bin/sh\necho inline\n");
    // With the inline cache again, B names the very image A pushed.
    let stderr_b = run(
        &b,
        &[
            "--cache-from",
            &image,
            "--cache-to",
            "type=inline",
            dir.to_str().unwrap(),
        ],
    );
    assert!(stderr_b.contains("0 steps run, 5 cached"), "{stderr_b}");
    assert_eq!(id_of(&stderr_b), id_of(&stderr_a));
    // An image without one is refused as a cache, with a warning.
    let plain = format!("{}/plain:1", registry.host());
    run(&a, &["-t", &plain, "--push", dir.to_str().unwrap()]);
    let stderr = run(&b, &["--cache-from", &plain, dir.to_str().unwrap()]);
    assert!(stderr.contains("without an inline cache"), "{stderr}");
}

#[test]
fn caches_that_cannot_be_read_are_warnings_and_exports_that_fail_are_errors() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = Home::new();
    let dir = context(&home, "src", FLAT, "#!/bin/sh\necho bad\n");
    let ctx = dir.to_str().unwrap();

    let missing = format!("{}/nothing:here", registry.host());
    let stderr = run(&home, &["--cache-from", &missing, ctx]);
    assert!(
        stderr.contains(&format!(
            "warning: --cache-from {missing}: not found; building without it"
        )),
        "{stderr}"
    );

    let nowhere = format!("127.0.0.1:{}/cache:x", free_port());
    let stderr = run(&home, &["--cache-from", &nowhere, ctx]);
    assert!(
        stderr.contains(&format!("warning: --cache-from {nowhere}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("cannot reach registry"), "{stderr}");

    let output = home
        .build(&["--cache-to", &format!("type=registry,ref={nowhere}"), ctx])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--cache-to {nowhere}: ")),
        "{stderr}"
    );

    let stderr = run(
        &home,
        &[
            "--cache-to",
            &format!("type=registry,ref={nowhere},ignore-error=true"),
            ctx,
        ],
    );
    assert!(stderr.contains("(ignore-error=true)"), "{stderr}");

    // A cache whose config is not a cache: refused, and every step runs.
    let cache = home.path("cache");
    run(
        &home,
        &[
            "--cache-to",
            &format!("type=local,dest={}", cache.display()),
            ctx,
        ],
    );
    let index_path = cache.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest: Value =
        serde_json::from_slice(&layout_blob(&cache, &manifest_digest)).unwrap();
    let config: Value = serde_json::from_slice(&layout_blob(
        &cache,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    // A record that claims another step's key.
    let mut forged = config.clone();
    forged["records"][0]["inputs"]["words"] = serde_json::json!(["echo", "forged"]);
    let forged_bytes = serde_json::to_vec(&forged).unwrap();
    let forged_digest = sha256(&forged_bytes);
    let write_blob = |digest: &str, bytes: &[u8]| {
        std::fs::write(
            cache
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap()
    };
    write_blob(&forged_digest, &forged_bytes);
    manifest["config"]["digest"] = Value::from(forged_digest);
    manifest["config"]["size"] = Value::from(forged_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let new_manifest = sha256(&manifest_bytes);
    write_blob(&new_manifest, &manifest_bytes);
    index["manifests"][0]["digest"] = Value::from(new_manifest);
    index["manifests"][0]["size"] = Value::from(manifest_bytes.len());
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let fresh = Home::new();
    let dir = context(&fresh, "src", FLAT, "#!/bin/sh\necho bad\n");
    let stderr = run(
        &fresh,
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            dir.to_str().unwrap(),
        ],
    );
    assert!(stderr.contains("refused: record sha256:"), "{stderr}");
    assert!(stderr.contains("does not match its inputs"), "{stderr}");
    assert!(stderr.contains("5 steps run, 0 cached"), "{stderr}");
}

#[test]
fn bad_cache_flags_are_usage_errors() {
    let home = Home::new();
    let dir = context(&home, "src", FLAT, "");
    for (flag, value, message) in [
        ("--cache-to", "type=s3,bucket=b", "unknown type \"s3\""),
        (
            "--cache-to",
            "type=registry,ref=r/x:y,mode=all",
            "mode=\"all\"",
        ),
        ("--cache-from", "type=local", "needs src=DIR"),
    ] {
        let output = home
            .build(&[flag, value, dir.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{value}: {stderr}");
    }
}

#[test]
fn a_cache_layer_that_does_not_match_its_digest_is_refused_and_its_step_runs() {
    if !can_build() {
        return;
    }
    let a = Home::new();
    let dir = context(&a, "src", FLAT, "#!/bin/sh\necho one\n");
    let cache = a.path("cache");
    run(
        &a,
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
            dir.to_str().unwrap(),
        ],
    );
    // The largest layer (busybox) is damaged in the cache.
    let (manifest, _) = local_cache(&cache);
    let busybox = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = cache
        .join("blobs/sha256")
        .join(busybox.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    // B edits app.sh: its COPY reads the layers below, busybox's first.
    let b = Home::new();
    let dir = context(&b, "src", FLAT, "#!/bin/sh\necho two\n");
    let stderr = run(
        &b,
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            dir.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains(&format!("warning: refused cache layer {busybox}")),
        "{stderr}"
    );
    // The build starts again: the COPY that made the layer runs, the
    // steps above it whose layers are sound still come from the cache.
    assert!(
        stderr.contains("#5 [2/6] COPY busybox /bin/\n#5 DONE"),
        "{stderr}"
    );
    assert!(stderr.contains("#6 CACHED"), "{stderr}");
    assert!(stderr.contains("cache miss: `app.sh` changed"), "{stderr}");
    assert!(stderr.contains("3 steps run, 2 cached"), "{stderr}");
}

/// A step that appends `x` to a counter in its cache mount and copies it
/// out; `stamp` above it changes between runners, so the RUN runs.
const COUNTER: &str = "FROM scratch\n\
    COPY busybox /bin/\n\
    COPY stamp /stamp\n\
    RUN --mount=type=cache,target=/cache [\"/bin/busybox\", \"sh\", \"-c\", \
    \"echo $(/bin/busybox cat /cache/n 2>/dev/null)x > /cache/n; /bin/busybox cp /cache/n /out\"]\n";

/// Builds `COUNTER` with `stamp` and `args`; returns stderr and `/out`.
fn count(home: &Home, stamp: &str, args: &[&str]) -> (String, String) {
    let dir = home.context("counter", COUNTER);
    std::fs::write(dir.join("stamp"), stamp).unwrap();
    let out = home.path("out");
    let _ = std::fs::remove_dir_all(&out);
    let output = format!("type=local,dest={}", out.display());
    let mut all = vec!["-o", &output];
    all.extend(args);
    all.push(dir.to_str().unwrap());
    let stderr = run(home, &all);
    let counter = std::fs::read_to_string(out.join("out")).unwrap();
    (stderr, counter.trim().to_owned())
}

#[test]
fn cache_mounts_travel_through_the_registry_with_mounts_true_and_local_ones_win() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::with_htpasswd("ci", "s3cret") else {
        return;
    };
    let cache = format!("{}/cache/mounts:main", registry.host());
    let (a, b) = (Home::new(), Home::new());
    login(&a, &registry);
    login(&b, &registry);

    let to = format!("type=registry,ref={cache},mounts=true");
    let (stderr, counter) = count(&a, "a", &["--cache-to", &to]);
    assert_eq!(counter, "x");
    assert!(stderr.contains("1 cache mounts"), "{stderr}");
    let layers = registry_layers(&registry, &cache);
    // The three steps' layers and the cache mount's.
    assert_eq!(layers.len(), 4, "{layers:?}");

    // Runner B: its RUN runs (another stamp) with A's cache content.
    let (stderr, counter) = count(&b, "b", &["--cache-from", &cache]);
    assert!(
        stderr.contains("cache mount \"/cache\": seeded from --cache-from"),
        "{stderr}"
    );
    assert_eq!(counter, "xx", "{stderr}");

    // B's own cache directory now wins over the imported one.
    let (stderr, counter) = count(&b, "c", &["--cache-from", &cache]);
    assert!(!stderr.contains("seeded"), "{stderr}");
    assert_eq!(counter, "xxx", "{stderr}");
}

#[test]
fn cache_mounts_in_a_local_cache_only_with_mounts_true_and_a_bad_blob_is_refused() {
    if !can_build() {
        return;
    }
    let a = Home::new();
    let plain = a.path("plain");
    let with_mounts = a.path("with-mounts");
    let (_, counter) = count(
        &a,
        "a",
        &[
            "--cache-to",
            &format!("type=local,dest={}", plain.display()),
        ],
    );
    assert_eq!(counter, "x");
    let (manifest, config) = local_cache(&plain);
    assert!(config.get("mounts").is_none(), "{config}");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);

    // Without mounts=true, runner B starts with an empty cache.
    let b = Home::new();
    let from_plain = format!("type=local,src={}", plain.display());
    let (stderr, counter) = count(&b, "b", &["--cache-from", &from_plain]);
    assert_eq!(counter, "x", "{stderr}");

    let (stderr, _) = count(
        &a,
        "a2",
        &[
            "--cache-to",
            &format!("type=local,dest={},mounts=true", with_mounts.display()),
        ],
    );
    assert!(stderr.contains("1 cache mounts"), "{stderr}");
    let (manifest, config) = local_cache(&with_mounts);
    let mounts = config["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{config}");
    assert_eq!(mounts[0]["id"], "/cache");
    let blob = mounts[0]["layer"]["digest"].as_str().unwrap().to_owned();
    let listed = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["digest"] == blob.as_str());
    assert!(listed, "{manifest}");

    let from = format!("type=local,src={}", with_mounts.display());
    let c = Home::new();
    let (stderr, counter) = count(&c, "c", &["--cache-from", &from]);
    assert_eq!(counter, "xxx", "A's cache held xx:\n{stderr}");

    // A damaged mount blob: refused, and the step starts empty.
    let path = with_mounts
        .join("blobs/sha256")
        .join(blob.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let d = Home::new();
    let (stderr, counter) = count(&d, "d", &["--cache-from", &from]);
    assert!(
        stderr.contains("warning: cache mount \"/cache\": its imported content is refused"),
        "{stderr}"
    );
    assert_eq!(counter, "x", "{stderr}");
}

/// The layers an inline cache's records name (`digest` beside `diff_id`).
fn inline_layers(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(digest)), true) =
                (map.get("digest"), map.contains_key("diff_id"))
            {
                out.push(digest.clone());
            }
            map.values().for_each(|v| inline_layers(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| inline_layers(v, out)),
        _ => {}
    }
}

/// An inline cache names the layers as the image is pushed: with
/// `compression=zstd` on the pushing output (and gzip from
/// `--compression`), its records name the zstd layers the registry has,
/// and a build elsewhere that exports the image from that cache gets
/// every layer.
#[test]
fn an_inline_cache_names_the_layers_as_its_output_compresses_them() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = format!("{}/inline-zstd:1", registry.host());
    let a = Home::new();
    let dir = context(&a, "src", FLAT, "#!/bin/sh\necho zstd\n");
    run(
        &a,
        &[
            "--cache-to",
            "type=inline",
            "-o",
            &format!("type=registry,name={image},compression=zstd"),
            dir.to_str().unwrap(),
        ],
    );
    let pushed = registry_layers(&registry, &image);
    let raw = registry.skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    let config: Value = serde_json::from_slice(&raw).unwrap();
    let mut named = Vec::new();
    inline_layers(&config["builder.cache.v1"], &mut named);
    assert!(!named.is_empty(), "{config}");
    for digest in &named {
        assert!(pushed.contains(digest), "{digest} is not in {pushed:?}");
    }

    let b = Home::new();
    let dir = context(&b, "src", FLAT, "#!/bin/sh\necho zstd\n");
    let out = b.path("out.tar");
    let stderr = run(
        &b,
        &[
            "--cache-from",
            &image,
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
    );
    assert!(stderr.contains("0 steps run, 5 cached"), "{stderr}");
}
