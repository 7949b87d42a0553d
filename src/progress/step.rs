//! Build step progress: what the build scheduler reports about each
//! step, and the BuildKit-style plain lines (`#N [stage i/n] RUN …`,
//! `#N 0.123 output`, `#N CACHED`, `#N DONE 1.2s`) that show it.

use std::time::Duration;

/// Something that happened to one step of a build; `id` is the step's
/// `#N`, numbered in the order steps start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepProgress {
    /// The step starts; `name` is `[stage i/n] INSTRUCTION`.
    Started {
        /// The step's number.
        id: u64,
        /// What to call it.
        name: String,
    },
    /// A line the step's command printed, `elapsed` after the step began.
    Output {
        /// The step's number.
        id: u64,
        /// Time since the step began.
        elapsed: Duration,
        /// The line, without its newline.
        line: String,
    },
    /// The step's result came from the cache; nothing ran.
    Cached {
        /// The step's number.
        id: u64,
    },
    /// The step missed the cache where an earlier build had a record: why.
    Missed {
        /// The step's number.
        id: u64,
        /// One reason per difference.
        reasons: Vec<String>,
    },
    /// The step finished.
    Done {
        /// The step's number.
        id: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// A long phase of the step that prints nothing of its own (see
    /// [`super::work`]).
    Work {
        /// The step's number.
        id: u64,
        /// What and how far.
        work: super::work::Work,
    },
    /// The step failed.
    Failed {
        /// The step's number.
        id: u64,
        /// How long it ran.
        elapsed: Duration,
        /// Why.
        message: String,
    },
}

impl StepProgress {
    /// The plain line for this event (BuildKit's `--progress=plain` form).
    pub fn line(&self) -> String {
        match self {
            StepProgress::Started { id, name } => format!("#{id} {name}"),
            StepProgress::Output { id, elapsed, line } => {
                format!("#{id} {:.3} {line}", elapsed.as_secs_f64())
            }
            StepProgress::Cached { id } => format!("#{id} CACHED"),
            StepProgress::Missed { id, reasons } => {
                format!("#{id} cache miss: {}", reasons.join("; "))
            }
            StepProgress::Done { id, elapsed } => {
                format!("#{id} DONE {:.1}s", elapsed.as_secs_f64())
            }
            StepProgress::Work { id, work } => format!("#{id} {}", work.text()),
            StepProgress::Failed {
                id,
                elapsed,
                message,
            } => format!("#{id} ERROR {:.1}s: {message}", elapsed.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_buildkits_plain_progress() {
        let ms = Duration::from_millis;
        let lines: Vec<String> = [
            StepProgress::Started {
                id: 3,
                name: "[base 2/3] COPY busybox /bin/busybox".into(),
            },
            StepProgress::Output {
                id: 3,
                elapsed: ms(123),
                line: "hi".into(),
            },
            StepProgress::Cached { id: 4 },
            StepProgress::Missed {
                id: 5,
                reasons: vec!["`app.sh` changed".into(), "x".into()],
            },
            StepProgress::Done {
                id: 3,
                elapsed: ms(1250),
            },
        ]
        .iter()
        .map(StepProgress::line)
        .collect();
        assert_eq!(
            lines,
            [
                "#3 [base 2/3] COPY busybox /bin/busybox",
                "#3 0.123 hi",
                "#4 CACHED",
                "#5 cache miss: `app.sh` changed; x",
                "#3 DONE 1.2s",
            ]
        );
    }
}
