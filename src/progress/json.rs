//! `--progress=rawjson`: one JSON object per line per event, for tools.
//!
//! The objects are [`Record`]s: a schema version `v` (this is version 1;
//! fields may be added within a version, never renamed or removed), the
//! `time` the renderer saw the event (RFC 3339, UTC), a `type`, and that
//! type's fields. The wire types are separate from [`Event`] so the
//! internal enums can change without breaking readers. README.md
//! ("Progress output") documents every type.

use super::event::{BlobOutcome, Direction, Event};
use super::step::StepProgress;
use super::summary::{Summary, Transfers};
use super::work::{Work, WorkKind, WorkState};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// The schema version every record carries.
pub const VERSION: u32 = 1;

/// The least time between two `blob.progress` records of one blob.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// One line of rawjson output.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// The schema version, [`VERSION`].
    pub v: u32,
    /// When the renderer saw the event (RFC 3339, UTC).
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub body: Body<'a>,
}

/// What a [`Record`] reports, tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Body<'a> {
    /// A step starts; `name` is `[stage i/n] INSTRUCTION`.
    #[serde(rename = "step.started")]
    StepStarted { id: u64, name: &'a str },
    /// A line of a running step's output, without its newline.
    #[serde(rename = "step.log")]
    StepLog {
        id: u64,
        elapsed_ms: u64,
        line: &'a str,
    },
    /// The step's result came from the cache.
    #[serde(rename = "step.cached")]
    StepCached { id: u64 },
    /// The step missed the cache an earlier build filled: why.
    #[serde(rename = "step.missed")]
    StepMissed { id: u64, reasons: &'a [String] },
    /// The step ran and finished.
    #[serde(rename = "step.finished")]
    StepFinished { id: u64, elapsed_ms: u64 },
    /// The step failed.
    #[serde(rename = "step.failed")]
    StepFailed {
        id: u64,
        elapsed_ms: u64,
        message: &'a str,
    },
    /// A long phase of a step (`extract`: unpacking the layer blob
    /// `layer`; `compress`: writing the step's layer), or of a push or
    /// export (`export`: compressing the stored layer `layer`; no `id`),
    /// reached 1 MiB
    /// (`work.started`), is going on (`work.progress`, at most twice a
    /// second) or is over (`work.finished`); bytes are the blob's read
    /// for `extract` and `export`, the tar's for `compress`.
    #[serde(rename = "work.started")]
    WorkStarted(WireWork),
    /// See [`Body::WorkStarted`].
    #[serde(rename = "work.progress")]
    WorkProgress(WireWork),
    /// See [`Body::WorkStarted`].
    #[serde(rename = "work.finished")]
    WorkFinished(WireWork),
    /// A blob transfer begins; `total` is its size in bytes when known.
    #[serde(rename = "blob.started")]
    BlobStarted {
        digest: String,
        direction: WireDirection,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// Bytes of a blob moved so far.
    #[serde(rename = "blob.progress")]
    BlobProgress { digest: String, done: u64 },
    /// A blob is where it has to be; `from` names the repository it was
    /// mounted from.
    #[serde(rename = "blob.finished")]
    BlobFinished {
        digest: String,
        direction: WireDirection,
        outcome: WireOutcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
    },
    /// A one-line message (notices, warnings, `pushed …`).
    #[serde(rename = "status")]
    Status { message: &'a str },
    /// The build succeeded: what it did and made.
    #[serde(rename = "summary")]
    Summary {
        steps_run: usize,
        steps_cached: usize,
        bytes_pulled: u64,
        bytes_pushed: u64,
        elapsed_ms: u64,
        manifest: String,
        id: String,
        names: &'a [String],
    },
}

/// The fields of the `work.*` records.
#[derive(Debug, Serialize)]
pub struct WireWork {
    /// The step's number (none for `export`, which no step does).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    /// `extract`, `compress` or `export`.
    kind: &'static str,
    /// The layer blob (`extract`, `export`).
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
    /// Bytes done.
    done: u64,
    /// Bytes in all, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// Bytes per second so far.
    rate: u64,
    /// Time since the phase began.
    elapsed_ms: u64,
}

impl WireWork {
    fn of(id: Option<u64>, work: &Work) -> Self {
        let (kind, layer) = match &work.kind {
            WorkKind::Extract { layer } => ("extract", Some(layer.to_string())),
            WorkKind::WriteLayer => ("compress", None),
            WorkKind::Export { layer } => ("export", Some(layer.to_string())),
        };
        Self {
            id,
            kind,
            layer,
            done: work.done,
            total: work.total,
            rate: work.rate(),
            elapsed_ms: millis(work.elapsed),
        }
    }
}

/// Which way a blob travels.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireDirection {
    /// From a registry into the store.
    Pull,
    /// From the store to a registry.
    Push,
}

/// How a blob got where it had to be.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireOutcome {
    /// Its bytes were sent or received.
    Transferred,
    /// The destination had it already.
    Present,
    /// The registry linked it from another of its repositories.
    Mounted,
}

impl<'a> Body<'a> {
    /// The wire form of `event` (none for internal phases, which schema
    /// version 1 does not have); `transfers` gives the summary its bytes.
    pub fn of(event: &'a Event, transfers: &Transfers) -> Option<Body<'a>> {
        Some(match event {
            Event::BlobStarted {
                digest,
                direction,
                total,
            } => Body::BlobStarted {
                digest: digest.to_string(),
                direction: (*direction).into(),
                total: *total,
            },
            Event::BlobProgress { digest, done } => Body::BlobProgress {
                digest: digest.to_string(),
                done: *done,
            },
            Event::BlobFinished {
                digest,
                direction,
                outcome,
            } => {
                let (outcome, from) = match outcome {
                    BlobOutcome::Transferred => (WireOutcome::Transferred, None),
                    BlobOutcome::AlreadyPresent => (WireOutcome::Present, None),
                    BlobOutcome::Mounted { from } => (WireOutcome::Mounted, Some(from.as_str())),
                };
                Body::BlobFinished {
                    digest: digest.to_string(),
                    direction: (*direction).into(),
                    outcome,
                    from,
                }
            }
            Event::Status(message) => Body::Status { message },
            Event::Step(step) => Body::of_step(step),
            Event::Work(work) => Body::of_work(None, work),
            Event::Summary(summary) => Body::of_summary(summary, transfers),
            Event::Internal { .. } => return None,
        })
    }

    fn of_step(step: &'a StepProgress) -> Body<'a> {
        match step {
            StepProgress::Started { id, name } => Body::StepStarted { id: *id, name },
            StepProgress::Output { id, elapsed, line } => Body::StepLog {
                id: *id,
                elapsed_ms: millis(*elapsed),
                line,
            },
            StepProgress::Cached { id } => Body::StepCached { id: *id },
            StepProgress::Missed { id, reasons } => Body::StepMissed { id: *id, reasons },
            StepProgress::Done { id, elapsed } => Body::StepFinished {
                id: *id,
                elapsed_ms: millis(*elapsed),
            },
            StepProgress::Work { id, work } => Body::of_work(Some(*id), work),
            StepProgress::Failed {
                id,
                elapsed,
                message,
            } => Body::StepFailed {
                id: *id,
                elapsed_ms: millis(*elapsed),
                message,
            },
        }
    }

    fn of_work(id: Option<u64>, work: &Work) -> Body<'a> {
        let wire = WireWork::of(id, work);
        match work.state {
            WorkState::Started => Body::WorkStarted(wire),
            WorkState::Running => Body::WorkProgress(wire),
            WorkState::Finished => Body::WorkFinished(wire),
        }
    }

    fn of_summary(summary: &'a Summary, transfers: &Transfers) -> Body<'a> {
        Body::Summary {
            steps_run: summary.steps_run,
            steps_cached: summary.steps_cached,
            bytes_pulled: transfers.pulled(),
            bytes_pushed: transfers.pushed(),
            elapsed_ms: millis(summary.elapsed),
            manifest: summary.manifest.to_string(),
            id: summary.id.to_string(),
            names: &summary.names,
        }
    }
}

impl From<Direction> for WireDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Download => WireDirection::Pull,
            Direction::Upload => WireDirection::Push,
        }
    }
}

/// Whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The record line of `event` seen at `time`, if it has one.
pub fn line(event: &Event, transfers: &Transfers, time: String) -> Option<String> {
    let record = Record {
        v: VERSION,
        time,
        body: Body::of(event, transfers)?,
    };
    // Every field is a string, number, list of strings or unit enum:
    // serializing cannot fail.
    Some(serde_json::to_string(&record).expect("a progress record serializes"))
}

/// Writes one record per event until the stream ends; `blob.progress`
/// records of one blob come at most every 100 ms (and whenever it is
/// complete).
pub fn render(mut events: UnboundedReceiver<Event>, out: &mut impl Write) {
    let mut transfers = Transfers::default();
    let mut last_progress: HashMap<oci_spec::image::Digest, Instant> = HashMap::new();
    while let Some(event) = events.blocking_recv() {
        transfers.observe(&event);
        if let Event::BlobProgress { digest, .. } = &event {
            let now = Instant::now();
            match last_progress.get(digest) {
                Some(last) if now.duration_since(*last) < PROGRESS_INTERVAL => continue,
                _ => last_progress.insert(digest.clone(), now),
            };
        }
        let time = crate::exec::meta::timestamp(None);
        if let Some(line) = line(&event, &transfers, time) {
            let _ = writeln!(out, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wire(event: &Event) -> Value {
        let text = line(event, &Transfers::default(), "T".into()).unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn step_events_have_a_type_an_id_and_their_fields() {
        let ms = Duration::from_millis;
        assert_eq!(
            wire(&Event::Step(StepProgress::Started {
                id: 3,
                name: "[base 2/3] RUN echo \"hi\"".into()
            })),
            json!({"v": 1, "time": "T", "type": "step.started", "id": 3,
                   "name": "[base 2/3] RUN echo \"hi\""})
        );
        assert_eq!(
            wire(&Event::Step(StepProgress::Output {
                id: 3,
                elapsed: ms(1500),
                line: "hi\u{1b}[0m".into()
            })),
            json!({"v": 1, "time": "T", "type": "step.log", "id": 3, "elapsed_ms": 1500,
                   "line": "hi\u{1b}[0m"})
        );
        assert_eq!(
            wire(&Event::Step(StepProgress::Cached { id: 4 })),
            json!({"v": 1, "time": "T", "type": "step.cached", "id": 4})
        );
        assert_eq!(
            wire(&Event::Step(StepProgress::Missed {
                id: 5,
                reasons: vec!["`a` changed".into()]
            })),
            json!({"v": 1, "time": "T", "type": "step.missed", "id": 5,
                   "reasons": ["`a` changed"]})
        );
        assert_eq!(
            wire(&Event::Step(StepProgress::Done {
                id: 5,
                elapsed: ms(20)
            })),
            json!({"v": 1, "time": "T", "type": "step.finished", "id": 5, "elapsed_ms": 20})
        );
        assert_eq!(
            wire(&Event::Step(StepProgress::Failed {
                id: 6,
                elapsed: ms(7),
                message: "exit 3".into()
            })),
            json!({"v": 1, "time": "T", "type": "step.failed", "id": 6, "elapsed_ms": 7,
                   "message": "exit 3"})
        );
    }

    #[test]
    fn a_layer_compressed_for_a_push_is_work_of_no_step() {
        let layer = crate::digest::sha256(b"layer");
        assert_eq!(
            wire(&Event::Work(Work {
                kind: WorkKind::Export {
                    layer: layer.clone()
                },
                state: WorkState::Finished,
                done: 4096,
                total: Some(4096),
                elapsed: Duration::from_secs(2),
            })),
            json!({"v": 1, "time": "T", "type": "work.finished", "kind": "export",
                   "layer": layer.to_string(), "done": 4096, "total": 4096, "rate": 2048,
                   "elapsed_ms": 2000})
        );
    }

    #[test]
    fn blob_events_name_digest_direction_and_outcome() {
        let digest = crate::digest::sha256(b"x");
        let d = digest.to_string();
        assert_eq!(
            wire(&Event::BlobStarted {
                digest: digest.clone(),
                direction: Direction::Download,
                total: Some(10)
            }),
            json!({"v": 1, "time": "T", "type": "blob.started", "digest": d,
                   "direction": "pull", "total": 10})
        );
        assert_eq!(
            wire(&Event::BlobStarted {
                digest: digest.clone(),
                direction: Direction::Upload,
                total: None
            }),
            json!({"v": 1, "time": "T", "type": "blob.started", "digest": d,
                   "direction": "push"})
        );
        assert_eq!(
            wire(&Event::BlobProgress {
                digest: digest.clone(),
                done: 4
            }),
            json!({"v": 1, "time": "T", "type": "blob.progress", "digest": d, "done": 4})
        );
        assert_eq!(
            wire(&Event::BlobFinished {
                digest: digest.clone(),
                direction: Direction::Upload,
                outcome: BlobOutcome::Mounted {
                    from: "library/a".into()
                }
            }),
            json!({"v": 1, "time": "T", "type": "blob.finished", "digest": d,
                   "direction": "push", "outcome": "mounted", "from": "library/a"})
        );
        assert_eq!(
            wire(&Event::BlobFinished {
                digest,
                direction: Direction::Download,
                outcome: BlobOutcome::AlreadyPresent
            }),
            json!({"v": 1, "time": "T", "type": "blob.finished", "digest": d,
                   "direction": "pull", "outcome": "present"})
        );
        assert_eq!(
            wire(&Event::Status("pushed a".into())),
            json!({"v": 1, "time": "T", "type": "status", "message": "pushed a"})
        );
    }

    #[test]
    fn the_summary_counts_bytes_from_the_stream() {
        let blob = crate::digest::sha256(b"layer");
        let (tx, rx) = super::super::ProgressSender::channel();
        tx.send(Event::BlobStarted {
            digest: blob.clone(),
            direction: Direction::Download,
            total: Some(2048),
        });
        tx.send(Event::BlobFinished {
            digest: blob.clone(),
            direction: Direction::Download,
            outcome: BlobOutcome::Transferred,
        });
        let summary = Summary {
            steps_run: 1,
            steps_cached: 2,
            elapsed: Duration::from_millis(3456),
            manifest: crate::digest::sha256(b"m"),
            id: crate::digest::sha256(b"c"),
            names: vec!["app:1".into()],
        };
        tx.send(Event::Summary(summary.clone()));
        drop(tx);
        let mut out = Vec::new();
        render(rx, &mut out);
        let text = String::from_utf8(out).unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3, "{text}");
        let mut last = records[2].clone();
        assert!(last["time"].as_str().unwrap().ends_with('Z'), "{last}");
        last["time"] = json!("T");
        assert_eq!(
            last,
            json!({"v": 1, "time": "T", "type": "summary", "steps_run": 1,
                   "steps_cached": 2, "bytes_pulled": 2048, "bytes_pushed": 0,
                   "elapsed_ms": 3456, "manifest": summary.manifest.to_string(),
                   "id": summary.id.to_string(), "names": ["app:1"]})
        );
    }
}
