//! Pulling from a real registry (docker-registry) and from test servers
//! that misbehave: what lands in the store is byte for byte what skopeo
//! pushed, the platform is chosen from an index, wrong bytes are refused and
//! a cut connection is survived.

mod support;

use builder::image::PlatformSpec;
use builder::image::Reference;
use builder::progress::ProgressSender;
use builder::registry::{Client, Credential, PullOptions, pull};
use builder::store::Store;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::http::{Response, TestServer};
use support::image::{BaseImage, busybox_rootfs_tar, host_arch};
use support::registry::Registry;

fn reference(s: &str) -> Reference {
    Reference::parse(s).expect("valid reference")
}

async fn pull_into(
    store: &Store,
    registry: &str,
    credential: Option<Credential>,
    image: &str,
    options: &PullOptions,
) -> Result<builder::registry::PulledImage, builder::registry::RegistryError> {
    let client = Client::new(registry, credential, &[]).expect("client");
    pull(
        &client,
        store,
        &reference(image),
        options,
        &ProgressSender::discard(),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pulled_blobs_are_byte_for_byte_what_skopeo_pushed() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let pulled = pull_into(
        &store,
        &registry.host(),
        None,
        &image.reference,
        &PullOptions::default(),
    )
    .await
    .expect("pull busybox");
    assert_eq!(pulled.manifest.to_string(), image.digest);
    assert_eq!(pulled.layers.len(), 1);
    for (digest, bytes) in &image.blobs {
        let stored = std::fs::read(store.blobs().path(&digest.parse().unwrap()).unwrap())
            .unwrap_or_else(|e| panic!("{digest} not in the store: {e}"));
        assert!(&stored == bytes, "{digest} differs from what skopeo pushed");
    }
    // A second pull finds everything present and changes nothing.
    let again = pull_into(
        &store,
        &registry.host(),
        None,
        &image.reference,
        &PullOptions::default(),
    )
    .await
    .expect("second pull");
    assert_eq!(again, pulled);
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_is_chosen_from_an_index_behind_bearer_auth() {
    let Some(registry) = Registry::with_token_auth("bob", "hunter2") else {
        return;
    };
    let image = BaseImage::busybox_index(&registry, "multi");
    let creds = Some(Credential::Basic {
        username: "bob".into(),
        password: "hunter2".into(),
    });
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();

    let host = pull_into(
        &store,
        &registry.host(),
        creds.clone(),
        &image.reference,
        &PullOptions::default(),
    )
    .await
    .expect("pull for this host");
    assert_eq!(host.resolved.to_string(), image.digest);
    assert_eq!(host.config.to_string(), image.configs[host_arch()]);

    let other_arch = image
        .configs
        .keys()
        .find(|a| *a != host_arch())
        .unwrap()
        .clone();
    let other = PullOptions {
        platform: PlatformSpec::parse(&format!("linux/{other_arch}")).unwrap(),
        ..PullOptions::default()
    };
    let pulled = pull_into(
        &store,
        &registry.host(),
        creds.clone(),
        &image.reference,
        &other,
    )
    .await
    .expect("pull the other platform");
    assert_eq!(pulled.config.to_string(), image.configs[&other_arch]);

    let missing = PullOptions {
        platform: PlatformSpec::parse("windows/amd64").unwrap(),
        ..PullOptions::default()
    };
    let err = pull_into(&store, &registry.host(), creds, &image.reference, &missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no manifest for platform windows/amd64"),
        "{err}"
    );
    assert!(err.contains(&format!("linux/{other_arch}")), "{err}");

    // Without credentials the token server grants nothing and the registry
    // says so; the message suggests logging in.
    let err = pull_into(
        &store,
        &registry.host(),
        None,
        &image.reference,
        &PullOptions::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("401 Unauthorized") && text.contains("UNAUTHORIZED"),
        "{text}"
    );
    let help = miette::Diagnostic::help(&err)
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(
        help.contains(&format!("builder login {}", registry.host())),
        "{help}"
    );
}

/// A one-image registry served from memory: `GET /v2/`, one manifest under
/// `app:latest`, its config and one layer. `layer_response` decides how the
/// layer is answered on its n-th request.
fn fake_registry(
    layer_response: impl Fn(usize, &[u8]) -> Response + Send + Sync + 'static,
    announced_layer: Option<Vec<u8>>,
) -> (TestServer, Vec<u8>, String) {
    let layer = busybox_rootfs_tar();
    let announced = announced_layer.unwrap_or_else(|| layer.clone());
    let layer_digest = builder::digest::sha256(&announced).to_string();
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = builder::digest::sha256(&config).to_string();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": layer_digest, "size": announced.len()}],
    }))
    .unwrap();
    let layer_requests = AtomicUsize::new(0);
    let (ld, cd) = (layer_digest.clone(), config_digest.clone());
    let served_layer = layer.clone();
    let server = TestServer::start(move |req| {
        let path = req.path().to_string();
        if path == "/v2/" {
            Response::new(200)
        } else if path == "/v2/app/manifests/latest" {
            Response::new(200)
                .header(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )
                .body(manifest.clone())
        } else if path == format!("/v2/app/blobs/{cd}") {
            Response::new(200).body(config.clone())
        } else if path == format!("/v2/app/blobs/{ld}") {
            layer_response(layer_requests.fetch_add(1, Ordering::SeqCst), &served_layer)
        } else {
            Response::new(404).json(&json!({"errors": [{"code": "NOT_FOUND", "message": path}]}))
        }
    });
    (server, layer, layer_digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_connection_is_retried_and_the_pull_completes() {
    let (server, layer, layer_digest) = fake_registry(
        |n, bytes| {
            let r = Response::new(200).body(bytes.to_vec());
            if n == 0 {
                r.cut_after(bytes.len() / 2)
            } else {
                r
            }
        },
        None,
    );
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    pull_into(
        &store,
        &server.host(),
        None,
        &format!("{}/app:latest", server.host()),
        &PullOptions::default(),
    )
    .await
    .expect("pull survives one cut connection");
    let path = store.blobs().path(&layer_digest.parse().unwrap()).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), layer);
    // No partial leftovers besides the store's own directories.
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_bytes_are_refused_by_digest_and_nothing_is_stored() {
    // The manifest announces one layer; the server sends another of the
    // same length.
    let mut announced = busybox_rootfs_tar();
    if let Some(b) = announced.last_mut() {
        *b ^= 0xff;
    }
    let (server, _layer, layer_digest) = fake_registry(
        |_, bytes| Response::new(200).body(bytes.to_vec()),
        Some(announced),
    );
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let err = pull_into(
        &store,
        &server.host(),
        None,
        &format!("{}/app:latest", server.host()),
        &PullOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains(&layer_digest), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(!store.blobs().contains(&layer_digest.parse().unwrap()));
}
