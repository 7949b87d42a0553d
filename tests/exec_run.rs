//! RUN steps end to end: the real sandbox on an overlay of store snapshots,
//! the layer each step leaves in the store, and how failures, isolation,
//! networks and users look to the step. Needs root; skipped otherwise.

mod support;

use builder::exec::{ExecError, LayerRef};
use builder::sandbox::Network;
use builder::store::chain_ids;
use std::os::unix::fs::FileTypeExt;
use support::exec::{Fixture, Output, block_on, is_root, layer_entries};

fn run(fixture: &Fixture, step: &builder::exec::RunStep) -> (Option<LayerRef>, String) {
    let mut output = Output::default();
    let result = block_on(fixture.executor.run(step, &mut output.sink()));
    match result {
        Ok(layer) => (layer, output.text),
        Err(err) => panic!("step failed: {err}; output: {}", output.text),
    }
}

fn snapshot_of(fixture: &Fixture, layers: &[LayerRef]) -> std::path::PathBuf {
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chain = chain_ids(&diff_ids).pop().unwrap();
    fixture.store.snapshots().path(&chain).unwrap()
}

#[test]
fn a_file_written_by_run_is_the_only_entry_of_its_layer() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let base = vec![fixture.base.clone()];
    let (layer, _) = run(&fixture, &fixture.step(&base, "echo hi > /a"));
    let layer = layer.expect("the step changed a file");
    assert_eq!(layer_entries(&fixture.store, &layer), ["a"]);
    // Stored as a plain tar: a push or an export compresses it.
    assert_eq!(
        layer.blob.media_type().to_string(),
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(layer.blob.digest(), &layer.diff_id);
    // The upper directory became the new snapshot.
    let snapshot = snapshot_of(&fixture, &[fixture.base.clone(), layer]);
    assert_eq!(std::fs::read(snapshot.join("a")).unwrap(), b"hi\n");
}

#[test]
fn a_step_that_changes_nothing_makes_no_layer() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let (layer, text) = run(
        &fixture,
        &fixture.step(std::slice::from_ref(&fixture.base), "echo quiet"),
    );
    assert_eq!(text, "quiet\n");
    assert_eq!(layer, None);
}

#[test]
fn whiteouts_through_three_steps_read_back_from_snapshots_and_layers() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut chain = vec![fixture.base.clone()];
    let scripts = [
        "mkdir -p /d/sub && echo one > /d/sub/f && echo keep > /d/k",
        "rm -r /d",
        "mkdir /d && echo two > /d/new",
    ];
    let mut layers = Vec::new();
    for script in scripts {
        let (layer, _) = run(&fixture, &fixture.step(&chain, script));
        let layer = layer.expect("each step changes files");
        chain.push(layer.clone());
        layers.push(layer);
    }
    assert_eq!(
        layer_entries(&fixture.store, &layers[0]),
        ["d/", "d/k", "d/sub/", "d/sub/f"]
    );
    assert_eq!(layer_entries(&fixture.store, &layers[1]), [".wh.d"]);
    // The recreated directory needs no opaque marker: the whiteout below
    // already hides the first step's /d.
    assert_eq!(layer_entries(&fixture.store, &layers[2]), ["d/", "d/new"]);
    // The second snapshot holds an overlay whiteout for /d.
    let second = snapshot_of(&fixture, &chain[..3]);
    let whiteout = std::fs::symlink_metadata(second.join("d")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    // A fourth step sees only what the third made.
    let (_, text) = run(&fixture, &fixture.step(&chain, "ls -A /d; cat /d/new"));
    assert_eq!(text, "new\ntwo\n");
}

#[test]
fn a_failing_step_reports_its_exit_code_and_leaves_nothing() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let step = fixture.step(
        std::slice::from_ref(&fixture.base),
        "echo partial > /p; exit 3",
    );
    let inputs = step.cache_inputs("scratch", fixture.executor.options());
    let mut output = Output::default();
    let err = block_on(fixture.executor.run_cached(
        &step,
        &inputs,
        "Dockerfile:0:1",
        &mut output.sink(),
    ))
    .unwrap_err();
    assert!(matches!(err, ExecError::Failed { code: 3, .. }), "{err}");
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(err.to_string(), "the command exited with code 3");
    let snapshots: Vec<_> = std::fs::read_dir(fixture.store.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        snapshots,
        [snapshot_of(&fixture, std::slice::from_ref(&fixture.base))],
        "only the base's snapshot: none for the failed step"
    );
    assert!(fixture.store.cache().get(&inputs.key()).unwrap().is_none());
    assert!(
        fixture
            .store
            .cache()
            .last_at("Dockerfile:0:1")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        std::fs::read_dir(fixture.store.root().join("tmp"))
            .unwrap()
            .count(),
        0,
        "the upper and work directories are gone"
    );
}

#[test]
fn a_step_cannot_see_host_files() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let secret = fixture.dir.path().join("host-secret");
    std::fs::write(&secret, "do not leak").unwrap();
    let script = format!(
        "if cat {0} 2>/dev/null; then echo visible; else echo hidden; fi",
        secret.display()
    );
    let (_, text) = run(
        &fixture,
        &fixture.step(std::slice::from_ref(&fixture.base), &script),
    );
    assert_eq!(text, "hidden\n");
}

#[test]
fn network_none_leaves_only_loopback() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut step = fixture.step(std::slice::from_ref(&fixture.base), "ls /sys/class/net");
    step.network = Network::None;
    let (_, text) = run(&fixture, &step);
    assert_eq!(text, "lo\n");
}

#[test]
fn user_by_name_comes_from_the_images_passwd() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut step = fixture.step(std::slice::from_ref(&fixture.base), "id -u; id -g");
    step.user = "user".into();
    let (_, text) = run(&fixture, &step);
    assert_eq!(text, "1000\n1000\n");

    step.user = "nobody-here".into();
    let mut output = Output::default();
    let err = block_on(fixture.executor.run(&step, &mut output.sink())).unwrap_err();
    assert!(
        err.to_string().contains("unknown user `nobody-here`"),
        "{err}"
    );
}

#[test]
fn hosts_and_resolv_conf_are_provided_and_workdir_is_created() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut step = fixture.step(
        std::slice::from_ref(&fixture.base),
        "pwd; hostname; grep -c localhost /etc/hosts; grep -c nameserver /etc/resolv.conf >/dev/null && echo dns",
    );
    step.workdir = "/srv/app".into();
    let (layer, text) = run(&fixture, &step);
    assert_eq!(text, "/srv/app\nbuildkitsandbox\n2\ndns\n");
    let layer = layer.expect("the working directory was created");
    assert_eq!(layer_entries(&fixture.store, &layer), ["srv/", "srv/app/"]);
}

#[test]
fn run_on_scratch_with_an_exec_form_binary() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut step = fixture.step(&[], "unused");
    step.argv = vec!["/bin/busybox".into(), "true".into()];
    let mut output = Output::default();
    let err = block_on(fixture.executor.run(&step, &mut output.sink())).unwrap_err();
    // Scratch holds no busybox: the sandbox says the program is missing.
    assert!(matches!(err, ExecError::Sandbox(_)), "{err}");
}
