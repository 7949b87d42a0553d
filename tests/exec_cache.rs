//! The step cache: an identical RUN is reused without running, a changed
//! input misses with an explanation naming it. Needs root; skipped otherwise.

mod support;

use builder::exec::{RunOutcome, RunStep};
use support::exec::{Fixture, Output, block_on, is_root, layer_entries};

const POSITION: &str = "Dockerfile:stage 0:step 1";

fn run_cached(fixture: &Fixture, step: &RunStep) -> (RunOutcome, Output) {
    let inputs = step.cache_inputs("base", fixture.executor.options());
    let mut output = Output::default();
    let outcome = block_on(fixture.executor.run_cached(
        step,
        &inputs,
        POSITION,
        &mut output.sink(),
    ))
    .unwrap();
    (outcome, output)
}

#[test]
fn an_identical_step_is_reused_without_running() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let step = fixture.step(
        std::slice::from_ref(&fixture.base),
        "echo ran; date +%s%N > /stamp",
    );
    let (first, output) = run_cached(&fixture, &step);
    assert!(!first.cached);
    assert_eq!(output.text, "ran\n");
    let layer = first.layer.clone().expect("the step wrote /stamp");
    assert_eq!(layer_entries(&fixture.store, &layer), ["stamp"]);

    let (second, output) = run_cached(&fixture, &step);
    assert!(second.cached);
    assert_eq!(output.text, "", "the command did not run again");
    // Same layer, not a new /stamp.
    assert_eq!(second.layer, first.layer);
}

#[test]
fn a_changed_variable_misses_and_says_which() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let mut step = fixture.step(std::slice::from_ref(&fixture.base), "echo $GREETING > /g");
    step.env.push(("GREETING".into(), "hello".into()));
    let (first, _) = run_cached(&fixture, &step);
    assert!(!first.cached);
    assert!(first.miss_reasons.is_empty(), "nothing to compare with yet");

    step.env.pop();
    step.env.push(("GREETING".into(), "bye".into()));
    let (second, output) = run_cached(&fixture, &step);
    assert!(!second.cached);
    assert_eq!(output.text, "");
    assert_eq!(
        second.miss_reasons,
        ["variable `GREETING` changed (`hello` → `bye`)"]
    );
    assert_ne!(second.layer, first.layer);
}

#[test]
fn a_hit_whose_snapshot_was_removed_unpacks_it_again() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let step = fixture.step(std::slice::from_ref(&fixture.base), "echo 1 > /one");
    let (first, _) = run_cached(&fixture, &step);
    let layer = first.layer.unwrap();
    let chain = builder::store::chain_ids(&[fixture.base.diff_id.clone(), layer.diff_id.clone()]);
    let snapshot = fixture.store.snapshots().path(&chain[1]).unwrap();
    std::fs::remove_dir_all(&snapshot).unwrap();
    let (second, _) = run_cached(&fixture, &step);
    assert!(second.cached);
    assert_eq!(std::fs::read(snapshot.join("one")).unwrap(), b"1\n");
}
