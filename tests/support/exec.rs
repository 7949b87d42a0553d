//! Executor fixtures: a store holding a busybox base layer, an executor
//! whose sandbox helper is the real `builder` binary, and readers for
//! layer blobs.

use builder::exec::{ExecOptions, Executor, LayerRef, RunStep, StepEvent};
use builder::layer::compress::{Compression, decompress, write_compressed};
use builder::layer::diff::full_tree;
use builder::layer::tar::{WriteOptions, write_changes};
use builder::sandbox::{Network, Sandbox, Security};
use builder::store::Store;
use oci_spec::image::{Descriptor, MediaType};
use std::path::Path;

/// Whether the test may use namespaces and mounts; prints why not.
pub fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED: needs root (namespaces and overlay mounts)");
        false
    }
}

/// A store in a temp dir, with the busybox rootfs stored as one layer.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub base: LayerRef,
    pub executor: Executor,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        super::busybox::rootfs(&rootfs);
        let base = store_tree_as_layer(&store, &rootfs);
        let executor = Executor::new(
            store.clone(),
            Sandbox::with_helper(env!("CARGO_BIN_EXE_builder")),
            ExecOptions::default(),
        );
        Fixture {
            dir,
            store,
            base,
            executor,
        }
    }

    /// A RUN of `script` through `/bin/sh -c` on `parent`, as root, in `/`.
    pub fn step(&self, parent: &[LayerRef], script: &str) -> RunStep {
        RunStep {
            parent: parent.to_vec(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            proxy_env: vec![],
            user: String::new(),
            workdir: "/".into(),
            network: Network::Host,
            security: Security::default(),
            mounts: Default::default(),
            emulator: None,
        }
    }
}

/// Stores the whole tree at `root` as a gzip layer.
pub fn store_tree_as_layer(store: &Store, root: &Path) -> LayerRef {
    let changes = full_tree(root).unwrap();
    let writer = store.blobs().writer(None).unwrap();
    let (writer, digests) = write_compressed(writer, Compression::Gzip, |out| {
        write_changes(root, changes, out, &WriteOptions::default()).map(|_| ())
    })
    .unwrap();
    let stored = writer.commit().unwrap();
    LayerRef {
        blob: Descriptor::new(MediaType::ImageLayerGzip, stored.size, stored.digest),
        diff_id: digests.diff_id,
    }
}

/// Runs a future on a fresh multi-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Collects a step's stdout and stderr.
#[derive(Default)]
pub struct Output {
    pub text: String,
    pub notices: Vec<String>,
}

impl Output {
    pub fn sink(&mut self) -> impl FnMut(StepEvent<'_>) + Send + '_ {
        move |event| match event {
            StepEvent::Output { line, .. } => self.text.push_str(&String::from_utf8_lossy(line)),
            StepEvent::Notice(notice) => self.notices.push(notice.to_owned()),
            // Phases of unpacking and compressing are shown, not output.
            StepEvent::Work(_) => {}
        }
    }
}

/// The entry names of a stored layer blob, in order (directories with `/`).
pub fn layer_entries(store: &Store, layer: &LayerRef) -> Vec<String> {
    let blob = store.blobs().open(layer.blob.digest()).unwrap();
    let tar = decompress(blob, layer.blob.media_type().as_ref()).unwrap();
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            std::io::copy(&mut entry, &mut std::io::sink()).unwrap();
            name
        })
        .collect()
}
