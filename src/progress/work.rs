//! Long phases that print nothing of their own (unpacking a parent
//! layer, writing a step's layer, compressing a layer for a push or an
//! export): a [`WorkMeter`] turns the
//! byte counts of such a phase into [`Work`] events, so a build never
//! looks hung while one runs.

use oci_spec::image::Digest;
use std::time::{Duration, Instant};

/// Bytes a phase must reach before it is reported: small layers (most
/// steps) stay as quiet as before.
pub const REPORT_FROM: u64 = 1 << 20;

/// The least time between two [`WorkState::Running`] events of one phase.
const INTERVAL: Duration = Duration::from_millis(500);

/// What the phase does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkKind {
    /// Unpacking the layer blob `layer` into a snapshot.
    Extract {
        /// The layer blob's digest.
        layer: Digest,
    },
    /// Writing the step's new layer (bytes are the tar's).
    WriteLayer,
    /// Compressing the stored layer blob `layer` for a push or an export
    /// (bytes are the stored blob's).
    Export {
        /// The stored layer blob's digest.
        layer: Digest,
    },
}

/// Where the phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    /// It has reached [`REPORT_FROM`] bytes.
    Started,
    /// Still going.
    Running,
    /// Done.
    Finished,
}

/// One report of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// What it does.
    pub kind: WorkKind,
    /// Where it is.
    pub state: WorkState,
    /// Bytes done so far.
    pub done: u64,
    /// Bytes in all, when known.
    pub total: Option<u64>,
    /// Time since the phase began.
    pub elapsed: Duration,
}

impl Work {
    /// Bytes per second so far.
    pub fn rate(&self) -> u64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.done as f64 / secs) as u64
        } else {
            0
        }
    }

    /// The text that tells it (`extracting 3f2a… 61.0 MiB / 143.0 MiB`,
    /// `writing layer 61.0 MiB (61.0 MiB/s)`, `extracted … in 1.2s`).
    pub fn text(&self) -> String {
        use super::plain::{human_bytes, short};
        let what = match (&self.kind, self.state) {
            (WorkKind::Extract { layer }, WorkState::Finished) => {
                format!("extracted {}", short(layer))
            }
            (WorkKind::Extract { layer }, _) => format!("extracting {}", short(layer)),
            (WorkKind::WriteLayer, WorkState::Finished) => "wrote layer".to_owned(),
            (WorkKind::WriteLayer, _) => "writing layer".to_owned(),
            (WorkKind::Export { layer }, WorkState::Finished) => {
                format!("exported layer {}", short(layer))
            }
            (WorkKind::Export { layer }, _) => format!("exporting layer {}", short(layer)),
        };
        let bytes = match self.total {
            Some(total) if self.state != WorkState::Finished => {
                format!("{} / {}", human_bytes(self.done), human_bytes(total))
            }
            _ => human_bytes(self.done),
        };
        match self.state {
            WorkState::Finished => format!(
                "{what} {bytes} in {:.1}s ({}/s)",
                self.elapsed.as_secs_f64(),
                human_bytes(self.rate())
            ),
            _ => format!("{what} {bytes} ({}/s)", human_bytes(self.rate())),
        }
    }
}

/// Turns a phase's byte counts into [`Work`] events for `emit`: started
/// once it reaches [`REPORT_FROM`] bytes, then at most twice a second, and
/// finished (only if it was started).
pub struct WorkMeter<F: FnMut(Work)> {
    kind: WorkKind,
    total: Option<u64>,
    began: Instant,
    last: Option<Instant>,
    done: u64,
    emit: F,
}

impl<F: FnMut(Work)> WorkMeter<F> {
    /// A meter for a phase beginning now.
    pub fn new(kind: WorkKind, total: Option<u64>, emit: F) -> Self {
        Self {
            kind,
            total,
            began: Instant::now(),
            last: None,
            done: 0,
            emit,
        }
    }

    /// `done` bytes (in all, not a delta) are done.
    pub fn advance(&mut self, done: u64) {
        self.done = done;
        let state = match self.last {
            None if done >= REPORT_FROM => WorkState::Started,
            Some(last) if last.elapsed() >= INTERVAL => WorkState::Running,
            _ => return,
        };
        self.last = Some(Instant::now());
        self.send(state);
    }

    /// The phase is over.
    pub fn finish(mut self) {
        if self.last.is_some() {
            self.send(WorkState::Finished);
        }
    }

    fn send(&mut self, state: WorkState) {
        (self.emit)(Work {
            kind: self.kind.clone(),
            state,
            done: self.done,
            total: self.total,
            elapsed: self.began.elapsed(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_phase_says_nothing_and_a_large_one_starts_and_finishes() {
        let mut seen = Vec::new();
        let mut meter = WorkMeter::new(WorkKind::WriteLayer, None, |w: Work| seen.push(w.state));
        meter.advance(REPORT_FROM - 1);
        meter.finish();
        assert!(seen.is_empty());

        let layer = crate::digest::sha256(b"layer");
        let mut meter = WorkMeter::new(
            WorkKind::Extract {
                layer: layer.clone(),
            },
            Some(3 * REPORT_FROM),
            |w: Work| seen.push(w.state),
        );
        meter.advance(REPORT_FROM);
        meter.advance(REPORT_FROM + 1);
        meter.finish();
        assert_eq!(seen.first(), Some(&WorkState::Started));
        assert_eq!(seen.last(), Some(&WorkState::Finished));
        let work = Work {
            kind: WorkKind::Extract { layer },
            state: WorkState::Running,
            done: REPORT_FROM,
            total: Some(3 * REPORT_FROM),
            elapsed: Duration::from_secs(1),
        };
        assert!(
            work.text().ends_with(" 1.0 MiB / 3.0 MiB (1.0 MiB/s)"),
            "{}",
            work.text()
        );
    }
}
