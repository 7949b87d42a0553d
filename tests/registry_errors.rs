//! What a user sees when a registry says no: the registry, the HTTP status
//! and the registry's error code, or the host that cannot be reached; and a
//! non-zero exit.

mod support;

use predicates::str::contains;
use support::cli::builder;
use support::http::{Response, Stall, TestServer};
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

/// A fake registry on 127.0.0.1: `/v2/` answers, `app:latest` is a manifest
/// whose config is `config`; `answer` serves the manifest (`true`) and the
/// config blob (`false`).
fn stalling_registry(answer: fn(bool, Vec<u8>) -> Response) -> (TestServer, String) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = builder::digest::sha256(config).to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
    })
    .to_string();
    let blob_path = format!("/v2/app/blobs/{config_digest}");
    let server = TestServer::start(move |req| match req.path() {
        "/v2/" => Response::new(200),
        "/v2/app/manifests/latest" => answer(true, manifest.clone().into_bytes())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        path if path == blob_path => answer(false, config.to_vec()),
        _ => Response::new(404),
    });
    (server, config_digest)
}

/// `builder pull HOST/app:latest` with a short idle timeout: exit code and
/// stderr. The command timeout only turns a hang into a failure.
fn pull_stalling(server: &TestServer) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let output = builder(home.path())
        .env("BUILDER_REGISTRY_IDLE_TIMEOUT", "0.3")
        .args(["pull", &format!("{}/app:latest", server.host())])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_registry_that_accepts_and_never_answers_is_given_up_naming_the_phase() {
    let (server, _) = stalling_registry(|manifest, body| {
        let r = Response::new(200).body(body);
        if manifest {
            r.stall(Stall::BeforeHead)
        } else {
            r
        }
    });
    let (code, stderr) = pull_stalling(&server);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{0}/app:latest: registry {0} sent nothing for 0.3 s while resolving manifest latest",
            server.host()
        )),
        "{stderr}"
    );
}

#[test]
fn a_registry_that_stalls_mid_blob_is_given_up_naming_the_blob() {
    let (server, config_digest) = stalling_registry(|manifest, body| {
        let half = body.len() / 2;
        let r = Response::new(200).body(body);
        if manifest {
            r
        } else {
            r.stall(Stall::AfterBody(half))
        }
    });
    let (code, stderr) = pull_stalling(&server);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "registry {} sent nothing for 0.3 s while fetching blob {config_digest}",
            server.host()
        )),
        "{stderr}"
    );
}

#[test]
fn a_bad_idle_timeout_is_named() {
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .env("BUILDER_REGISTRY_IDLE_TIMEOUT", "soon")
        .args(["pull", "127.0.0.1:1/app"])
        .assert()
        .failure()
        .stderr(contains(
            "BUILDER_REGISTRY_IDLE_TIMEOUT=\"soon\" is not a number of seconds greater than 0",
        ));
}

#[test]
fn a_registry_that_takes_a_blob_and_never_answers_is_given_up_naming_the_push() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let server = TestServer::start(|req| match (req.method.as_str(), req.path()) {
        ("GET", "/v2/") => Response::new(200),
        ("HEAD", _) => Response::new(404),
        ("POST", "/v2/copy/blobs/uploads/") => {
            Response::new(202).header("Location", "/v2/copy/blobs/uploads/session")
        }
        // The whole blob arrives; no answer ever comes.
        ("PUT", "/v2/copy/blobs/uploads/session") => Response::new(201).stall(Stall::BeforeHead),
        _ => Response::new(404),
    });
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["pull", &image.reference])
        .assert()
        .success();
    let copy = format!("{}/copy:v1", server.host());
    builder(home.path())
        .args(["tag", &image.reference, &copy])
        .assert()
        .success();
    builder(home.path())
        .env("BUILDER_REGISTRY_IDLE_TIMEOUT", "0.3")
        .args(["push", &copy])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .failure()
        .stderr(contains(format!(
            "{copy}: registry {} sent nothing for 0.3 s while pushing blob sha256:",
            server.host()
        )));
}
