//! Pushing to a real registry: what builder pushes is accepted by skopeo,
//! reads back byte for byte, mounts blobs across repositories, skips blobs
//! already there, survives chunked uploads, and sends a blob still being
//! written as its bytes land.

mod support;

use builder::image::Reference;
use builder::progress::{BlobOutcome, Direction, Event, ProgressSender};
use builder::registry::{
    Client, PullOptions, PushOptions, WrittenUpload, pull, push, upload_written,
};
use builder::store::Store;
use support::image::BaseImage;
use support::registry::Registry;

fn reference(s: &str) -> Reference {
    Reference::parse(s).expect("valid reference")
}

fn upload_outcomes(events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<BlobOutcome> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::BlobFinished {
            direction: Direction::Upload,
            outcome,
            ..
        } = e
        {
            out.push(outcome);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_images_read_back_identically_and_mount_across_repositories() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let host = registry.host();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let client = Client::new(&host, None, &[]).unwrap();
    let pulled = pull(
        &client,
        &store,
        &reference(&image.reference),
        &PullOptions::default(),
        &ProgressSender::discard(),
        None,
    )
    .await
    .expect("pull");

    // Same registry, new name: the store remembers where the blobs came
    // from, so they are mounted, not uploaded.
    let (tx, mut events) = ProgressSender::channel();
    let target = reference(&format!("{host}/copy:v1"));
    let digest = push(
        &client,
        &store,
        &pulled.manifest,
        &target,
        &PushOptions::default(),
        &tx,
    )
    .await
    .expect("push");
    assert_eq!(digest, pulled.manifest);
    let outcomes = upload_outcomes(&mut events);
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| *o
            == BlobOutcome::Mounted {
                from: "busybox".into()
            }),
        "{outcomes:?}"
    );

    // Pushing again finds everything present.
    push(
        &client,
        &store,
        &pulled.manifest,
        &target,
        &PushOptions::default(),
        &tx,
    )
    .await
    .expect("second push");
    assert!(
        upload_outcomes(&mut events)
            .iter()
            .all(|o| *o == BlobOutcome::AlreadyPresent)
    );

    // skopeo reads what we pushed, with the same digest and layer.
    let info: serde_json::Value = serde_json::from_slice(&registry.skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/copy:v1"),
    ]))
    .unwrap();
    assert_eq!(info["Digest"], image.digest.as_str());
    assert_eq!(info["Layers"][0], image.layer.as_str());

    // And copies it out: every blob equals the original.
    let out = tempfile::tempdir().unwrap();
    registry.skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{host}/copy:v1"),
        &format!("oci:{}:v1", out.path().display()),
    ]);
    for (digest, bytes) in &image.blobs {
        let hex = digest.trim_start_matches("sha256:");
        let copied = std::fs::read(out.path().join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("{digest} missing from skopeo's copy: {e}"));
        assert!(&copied == bytes, "{digest} differs after the round trip");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_to_another_registry_pull_back_byte_for_byte() {
    let Some(source) = Registry::start() else {
        return;
    };
    let Some(dest) = Registry::with_htpasswd("carol", "pw") else {
        return;
    };
    let image = BaseImage::busybox(&source);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let from = Client::new(&source.host(), None, &[]).unwrap();
    let pulled = pull(
        &from,
        &store,
        &reference(&image.reference),
        &PullOptions::default(),
        &ProgressSender::discard(),
        None,
    )
    .await
    .expect("pull");

    let to = Client::new(
        &dest.host(),
        Some(builder::registry::Credential::Basic {
            username: "carol".into(),
            password: "pw".into(),
        }),
        &[],
    )
    .unwrap();
    // Tiny chunks force many PATCH requests with Content-Range.
    let options = PushOptions {
        parallel: 2,
        monolithic_limit: 1024,
        chunk_size: 100 * 1024,
        ..PushOptions::default()
    };
    let (tx, mut events) = ProgressSender::channel();
    let by_digest = reference(&format!("{}/mirror@{}", dest.host(), pulled.manifest));
    push(&to, &store, &pulled.manifest, &by_digest, &options, &tx)
        .await
        .expect("chunked push by digest");
    let outcomes = upload_outcomes(&mut events);
    assert!(
        outcomes.iter().all(|o| *o == BlobOutcome::Transferred),
        "{outcomes:?}"
    );

    // Pull it back into a fresh store and compare every blob.
    let root2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(root2.path()).unwrap();
    let again = pull(
        &to,
        &store2,
        &by_digest,
        &PullOptions::default(),
        &ProgressSender::discard(),
        None,
    )
    .await
    .expect("pull back");
    assert_eq!(again.manifest, pulled.manifest);
    for (digest, bytes) in &image.blobs {
        let path = store2.blobs().path(&digest.parse().unwrap()).unwrap();
        assert!(&std::fs::read(path).unwrap() == bytes, "{digest} differs");
    }
}

/// A blob the store is still writing (a layer compressed for a push) goes
/// up as its bytes land: the registry holds the first part before the rest
/// is written, and the upload closes under the digest the store commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_goes_up_while_the_store_writes_it() {
    use std::io::Write as _;
    let Some(registry) = Registry::with_htpasswd("dave", "pw") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let client = Client::new(
        &registry.host(),
        Some(builder::registry::Credential::Basic {
            username: "dave".into(),
            password: "pw".into(),
        }),
        &[],
    )
    .unwrap();
    let target = reference(&format!("{}/streamed:v1", registry.host()));
    let first: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    let rest = b"the rest, written once the first part is up".repeat(1000);

    let mut writer = store.blobs().writer(None).unwrap();
    let follower = writer.follow().unwrap();
    let upload = tokio::spawn(async move { upload_written(&client, &target, follower).await });
    writer.write_all(&first).unwrap();
    let uploads = registry
        .storage()
        .join("docker/registry/v2/repositories/streamed/_uploads");
    let received = || -> u64 {
        let Ok(sessions) = std::fs::read_dir(&uploads) else {
            return 0;
        };
        sessions
            .filter_map(|s| std::fs::metadata(s.ok()?.path().join("data")).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    // Bounded wait for the registry, not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while received() < first.len() as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the registry got {} of the {} bytes written so far\n{}",
            received(),
            first.len(),
            registry.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!upload.is_finished(), "the upload waits for the rest");

    writer.write_all(&rest).unwrap();
    let stored = writer.commit().unwrap();
    let WrittenUpload::Sent(digest) = upload.await.unwrap().expect("streamed upload") else {
        panic!("the registry had nothing of it");
    };
    assert_eq!(digest, stored.digest);
    let mut whole = first;
    whole.extend_from_slice(&rest);
    assert_eq!(builder::digest::sha256(&whole), digest);
    let hex = digest.digest();
    let kept = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    assert!(
        std::fs::read(&kept).unwrap() == whole,
        "the registry's blob differs"
    );
}
