//! A build stores its layers uncompressed and compresses nothing; a push
//! or an OCI export compresses them once (the store remembers each
//! variant), deterministically, so every push of the same image sends the
//! same bytes under the same manifest digest. An output's
//! `compression=`, `compression-level=` and `force-compression=` choose
//! how its layers are sent. Needs root (builds) and,
//! for pushes, Debian's docker-registry; skipped otherwise.

mod support;

use builder::image::Reference;
use builder::layer::compress::{Codec, Compression, decompress, write_compressed};
use builder::store::Store;
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use support::build::{Home, can_build, layout_blob, layout_image, stderr_of};
use support::built::BUSYBOX;
use support::cli::builder;
use support::image::BaseImage;
use support::registry::Registry;

const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The busybox base plus a RUN layer over 1 MiB (so its compression is
/// reported).
fn context(home: &Home) -> std::path::PathBuf {
    home.context(
        "lazy",
        &format!("{BUSYBOX}RUN dd if=/dev/zero of=/big bs=1024 count=2048 && echo hi > /hi\n"),
    )
}

/// The stored manifest `name` points to.
fn stored_manifest(home: &Home, name: &str) -> Value {
    let store = Store::open(home.path("store")).unwrap();
    let target = store
        .refs()
        .get(&Reference::parse(name).unwrap())
        .unwrap()
        .expect("the image is named in the store");
    serde_json::from_slice(&store.blobs().read(target.digest()).unwrap()).unwrap()
}

/// Every blob file of the store, by name.
fn store_blobs(home: &Home) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.path("store/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_gzip(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == [0x1f, 0x8b])
}

/// The SHA-256 of what `blob` (of `media_type`) decompresses to.
fn diff_id_of(blob: &[u8], media_type: &str) -> String {
    let mut tar = Vec::new();
    decompress(blob, media_type)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    builder::digest::sha256(&tar).to_string()
}

/// A blob of the test registry, read from its storage.
fn registry_blob(registry: &Registry, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    let path = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest `reference` names in the registry, and its config.
fn pushed(registry: &Registry, reference: &str) -> (Value, Value) {
    let raw = registry.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = serde_json::from_slice(&registry_blob(registry, config_digest)).unwrap();
    (manifest, config)
}

/// Each layer of `manifest` has `media_type` and decompresses to the
/// diff ID `config` lists for it; `blob` reads a layer's bytes.
fn assert_layers(
    manifest: &Value,
    config: &Value,
    media_type: &str,
    blob: impl Fn(&str) -> Vec<u8>,
) {
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    assert!(!layers.is_empty());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(layer["mediaType"], media_type, "{manifest}");
        let bytes = blob(layer["digest"].as_str().unwrap());
        assert_eq!(layer["size"], bytes.len() as u64);
        assert_eq!(diff_id_of(&bytes, media_type), diff_id.as_str().unwrap());
    }
}

/// `builder push ARGS…` in `home`; returns its stdout and stderr.
fn push(home: &Home, args: &[&str]) -> (String, String) {
    let output = builder(home.dir.path())
        .args(["push", "--progress", "plain"])
        .args(args)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "push {args:?}: {stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

/// The `Digest: …` line `builder push` prints.
fn digest_line(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {stdout:?}"))
        .to_owned()
}

#[test]
fn a_tagged_build_compresses_nothing_and_an_oci_export_gets_gzip_layers() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = context(&home);
    let output = home
        .build(&["-t", "app:1", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("exporting layer"), "{stderr}");

    let manifest = stored_manifest(&home, "app:1");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    for layer in layers {
        assert_eq!(layer["mediaType"], PLAIN, "{manifest}");
    }
    for name in store_blobs(&home) {
        let path = home.path("store/blobs/sha256").join(&name);
        assert!(!is_gzip(&path), "blob {name} is gzip: a build compressed");
    }
    assert!(!home.path("store/variants").exists());

    // The same build with an OCI export: every step cached, the layers
    // compressed for the export, each reported.
    let layout = home.path("layout");
    let output = home
        .build(&[
            "-t",
            "app:1",
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("exported layer "), "{stderr}");
    let (exported, config) = layout_image(&layout);
    assert_layers(&exported, &config, GZIP, |d| layout_blob(&layout, d));
    // The local image is unchanged: only the export's manifest names gzip.
    assert_eq!(stored_manifest(&home, "app:1"), manifest);
    assert_eq!(exported["config"], manifest["config"]);

    // The compressor is the one a build ran before layers were kept
    // plain: compressing the stored tar as a step's layer was compressed
    // gives the exported bytes.
    let store = Store::open(home.path("store")).unwrap();
    for (plain, sent) in layers.iter().zip(exported["layers"].as_array().unwrap()) {
        let digest = plain["digest"].as_str().unwrap().parse().unwrap();
        let tar = std::fs::read(store.blobs().path(&digest).unwrap()).unwrap();
        let (blob, digests) = write_compressed(Vec::new(), Compression::Gzip, |out| {
            out.write_all(&tar)
                .map_err(|source| builder::layer::LayerError::Write {
                    action: "test",
                    source,
                })
        })
        .unwrap();
        assert_eq!(digests.digest.to_string(), sent["digest"].as_str().unwrap());
        assert_eq!(blob, layout_blob(&layout, sent["digest"].as_str().unwrap()));
    }

    // umoci reads the layout's image by its tag (and checks its blobs).
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("the export names its image")
        .to_owned();
    let stat = std::process::Command::new("umoci")
        .args(["stat", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .output()
        .expect("run umoci");
    assert!(
        stat.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&stat.stderr)
    );
    let inspected = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .expect("run skopeo");
    assert!(
        inspected.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let read: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(read, exported);
}

#[test]
fn pushes_compress_each_layer_once_and_send_the_same_manifest() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = Home::new();
    let context = context(&home);
    let first = format!("{}/app:1", registry.host());
    let output = home
        .build(&["-t", &first, "--push", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("exported layer "), "{stderr}");
    let (manifest, config) = pushed(&registry, &first);
    assert_layers(&manifest, &config, GZIP, |d| registry_blob(&registry, d));
    for layer in stored_manifest(&home, &first)["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], PLAIN);
    }

    // Pushed again under another name: nothing compressed, nothing new
    // stored, the same manifest.
    let blobs_before = store_blobs(&home);
    let second = format!("{}/app:2", registry.host());
    let (stdout, stderr) = push(&home, &[&first, &second]);
    assert!(!stderr.contains("exporting layer"), "{stderr}");
    assert!(!stderr.contains("exported layer"), "{stderr}");
    assert_eq!(store_blobs(&home), blobs_before);
    let (again, _) = pushed(&registry, &second);
    assert_eq!(again, manifest);
    let raw = registry.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{first}"),
    ]);
    assert_eq!(
        digest_line(&stdout),
        builder::digest::sha256(&raw).to_string()
    );

    // zstd on request: the plain layers compressed once more, as zstd.
    let zstd = format!("{}/app:zstd", registry.host());
    let (_, stderr) = push(&home, &["--compression", "zstd", &first, &zstd]);
    assert!(stderr.contains("exported layer "), "{stderr}");
    let (manifest_zstd, config_zstd) = pushed(&registry, &zstd);
    assert_eq!(config_zstd, config);
    assert_layers(&manifest_zstd, &config_zstd, ZSTD, |d| {
        registry_blob(&registry, d)
    });

    // A prune keeps the variants of a named image; --all drops them, and
    // the next push makes the same bytes again.
    builder(home.dir.path())
        .args(["prune", "-f"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_dir(home.path("store/variants/gzip5m"))
            .unwrap()
            .count(),
        3
    );
    let (_, stderr) = push(&home, &[&first, &second]);
    assert!(!stderr.contains("exported layer"), "{stderr}");
    builder(home.dir.path())
        .args(["prune", "-f", "--all"])
        .assert()
        .success();
    for kind in ["gzip5m", "zstd3"] {
        let dir = home.path("store/variants").join(kind);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{kind}");
    }
    for name in store_blobs(&home) {
        let path = home.path("store/blobs/sha256").join(&name);
        assert!(!is_gzip(&path), "blob {name} outlived prune --all");
    }
    let (stdout, stderr) = push(&home, &[&first, &second]);
    assert!(stderr.contains("exported layer "), "{stderr}");
    assert_eq!(
        digest_line(&stdout),
        builder::digest::sha256(&raw).to_string()
    );

    // Untagged, its plain layers and their variants go on the next prune.
    builder(home.dir.path())
        .args(["rmi", &first])
        .assert()
        .success();
    builder(home.dir.path())
        .args(["prune", "-f", "--all"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_dir(home.path("store/variants/gzip5m"))
            .unwrap()
            .count(),
        0
    );
}

/// The layer digests of `manifest`.
fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn output_attributes_choose_each_pushs_compression_and_level() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = Home::new();
    let context = context(&home);
    let host = registry.host();
    let name = |tag: &str| format!("{host}/app:{tag}");
    let out = |tag: &str, attrs: &str| format!("type=registry,name={},{attrs}", name(tag));
    let outputs = [
        out("zstd", "compression=zstd,compression-level=19"),
        out("gzip1", "compression-level=1"),
        out("gzip9", "compression=gzip,compression-level=9"),
        out("default", "force-compression=false"),
        out("plain", "compression=uncompressed"),
    ];
    let mut args: Vec<&str> = outputs.iter().flat_map(|o| ["-o", o.as_str()]).collect();
    args.push(context.to_str().unwrap());
    let output = home.build(&args).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let blob = |d: &str| registry_blob(&registry, d);

    let (zstd, config) = pushed(&registry, &name("zstd"));
    assert_layers(&zstd, &config, ZSTD, blob);
    // skopeo fetches the zstd image back, checking each blob's digest.
    let copied = home.path("copied");
    registry.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", name("zstd")),
        &format!("oci:{}", copied.display()),
    ]);
    let (copied_manifest, _) = layout_image(&copied);
    assert_eq!(copied_manifest, zstd);

    let (gzip1, _) = pushed(&registry, &name("gzip1"));
    let (gzip9, _) = pushed(&registry, &name("gzip9"));
    let (default, _) = pushed(&registry, &name("default"));
    for manifest in [&gzip1, &gzip9, &default] {
        assert_layers(manifest, &config, GZIP, blob);
    }
    // Each level its own bytes: the memo of the default level's blobs
    // hands none of them to another level.
    assert_ne!(layer_digests(&gzip1), layer_digests(&default));
    assert_ne!(layer_digests(&gzip9), layer_digests(&default));
    assert_ne!(layer_digests(&gzip1), layer_digests(&gzip9));

    let (plain, _) = pushed(&registry, &name("plain"));
    assert_layers(&plain, &config, PLAIN, blob);
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(layer_digests(&plain), diff_ids);

    // The level is the compressor's: the stored tars compressed at level
    // 1 now are the bytes pushed.
    let store = Store::open(home.path("store")).unwrap();
    let stored = stored_manifest(&home, &name("gzip1"));
    let level1 = Codec::with_level(Compression::Gzip, 1).unwrap();
    for (plain, sent) in layer_digests(&stored).iter().zip(layer_digests(&gzip1)) {
        let tar = store.blobs().read(&plain.parse().unwrap()).unwrap();
        let (_, digests) = write_compressed(Vec::new(), level1, |out| {
            out.write_all(&tar)
                .map_err(|source| builder::layer::LayerError::Write {
                    action: "test",
                    source,
                })
        })
        .unwrap();
        assert_eq!(digests.digest.to_string(), sent);
    }

    // The same level again (every step cached): the same manifest.
    let again = out("gzip1-again", "compression-level=1");
    let output = home
        .build(&["-o", &again, context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(pushed(&registry, &name("gzip1-again")).0, gzip1);
}

#[test]
fn force_compression_recompresses_a_pulled_base_layer() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context(
        "forced",
        &format!("FROM {}\nRUN echo hi > /hi\n", base.reference),
    );
    let host = registry.host();
    let kept = format!("{host}/app:kept");
    let forced = format!("{host}/app:forced");
    let output = home
        .build(&[
            "-o",
            &format!("type=registry,name={kept},compression=zstd"),
            "-o",
            &format!("type=image,push=true,name={forced},compression=zstd,force-compression=true"),
            context.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");

    // Without force, as BuildKit: the base layer goes as it was pulled.
    let (manifest, config) = pushed(&registry, &kept);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    assert_eq!(layers[0]["digest"], base.layer.as_str());
    assert_eq!(layers[0]["mediaType"], GZIP);
    assert_eq!(layers[1]["mediaType"], ZSTD);

    // Forced: every layer zstd, each decompressing to its diff ID.
    let (manifest, forced_config) = pushed(&registry, &forced);
    assert_eq!(forced_config, config);
    assert_layers(&manifest, &config, ZSTD, |d| registry_blob(&registry, d));
}

/// A registry that refuses a layer streamed while it is compressed (a
/// `PATCH` of no announced length) still gets the image: the layer goes
/// up again from the store once compressed, in one `PUT`.
#[test]
fn a_layer_whose_streamed_upload_is_refused_goes_up_from_the_store() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use support::http::{Response, TestServer};
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("refused", "FROM scratch\nCOPY busybox /bin/busybox\n");
    let output = home
        .build(&["-t", "refused:1", context.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));

    // A registry in memory, as far as a push needs one; it answers a
    // streamed PATCH with 400, as a registry without stream uploads.
    let blobs: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let manifests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let streamed = Arc::new(Mutex::new(0));
    let server = TestServer::start({
        let (blobs, manifests, streamed) = (blobs.clone(), manifests.clone(), streamed.clone());
        move |req| {
            let path = req.path();
            match req.method.as_str() {
                "GET" if path == "/v2/" => Response::new(200),
                "HEAD" => match path.rsplit_once("/blobs/") {
                    Some((_, digest)) if blobs.lock().unwrap().contains_key(digest) => {
                        Response::new(200)
                    }
                    _ => Response::new(404),
                },
                "POST" => Response::new(202).header("Location", "/v2/app/blobs/uploads/1"),
                "PATCH" => {
                    *streamed.lock().unwrap() += 1;
                    Response::new(400).json(&serde_json::json!({"errors": [
                        {"code": "BLOB_UPLOAD_INVALID", "message": "no stream uploads here"}
                    ]}))
                }
                "PUT" if path.contains("/blobs/uploads/") => {
                    let digest = req.query("digest").pop().unwrap_or_default();
                    if builder::digest::sha256(&req.body).to_string() != digest {
                        return Response::new(400);
                    }
                    blobs.lock().unwrap().insert(digest, req.body.clone());
                    Response::new(201)
                }
                "PUT" if path.contains("/manifests/") => {
                    manifests.lock().unwrap().push(req.body.clone());
                    Response::new(201)
                }
                _ => Response::new(404),
            }
        }
    });
    let target = format!("{}/app:1", server.host());
    let (stdout, stderr) = push(&home, &["refused:1", &target]);
    assert!(stderr.contains("exported layer "), "{stderr}");
    assert_eq!(
        *streamed.lock().unwrap(),
        1,
        "the layer was first sent as it was compressed"
    );
    let manifests = manifests.lock().unwrap();
    let manifest: Value = serde_json::from_slice(manifests.last().unwrap()).unwrap();
    assert_eq!(
        digest_line(&stdout),
        builder::digest::sha256(manifests.last().unwrap()).to_string()
    );
    let blobs = blobs.lock().unwrap();
    let config: Value =
        serde_json::from_slice(&blobs[manifest["config"]["digest"].as_str().unwrap()]).unwrap();
    assert_layers(&manifest, &config, GZIP, |d| blobs[d].clone());
}
