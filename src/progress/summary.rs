//! The end of a build as every renderer reports it: steps run and cached,
//! bytes pulled and pushed, total time, and the image with its names.

use super::event::{BlobOutcome, Direction, Event};
use oci_spec::image::Digest;
use std::collections::HashMap;
use std::time::Duration;

/// What a successful build made; the CLI sends it last, as
/// [`Event::Summary`]. Bytes moved are not in it: renderers count them
/// from the blob events they saw ([`Transfers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Steps that ran.
    pub steps_run: usize,
    /// Steps whose result came from the cache.
    pub steps_cached: usize,
    /// Time from the start of the command to the image being delivered.
    pub elapsed: Duration,
    /// The image manifest's digest: as pushed or exported (its layers
    /// compressed) when a push or an export sent it, else as stored.
    pub manifest: Digest,
    /// The image ID: its config's digest.
    pub id: Digest,
    /// The names it was given (`-t`, `type=image,name=…`).
    pub names: Vec<String>,
}

impl Summary {
    /// The summary as plain lines: `built in …: N steps run, M cached; …`,
    /// `image … (id …)`, then one `named …` line per name.
    pub fn lines(&self, transfers: &Transfers) -> Vec<String> {
        let mut lines = vec![
            format!(
                "built in {:.1}s: {} {} run, {} cached; {} pulled, {} pushed",
                self.elapsed.as_secs_f64(),
                self.steps_run,
                if self.steps_run == 1 { "step" } else { "steps" },
                self.steps_cached,
                super::plain::human_bytes(transfers.pulled()),
                super::plain::human_bytes(transfers.pushed()),
            ),
            format!("image {} (id {})", self.manifest, self.id),
        ];
        lines.extend(self.names.iter().map(|name| format!("named {name}")));
        lines
    }
}

/// Bytes moved so far, counted from blob events: a blob counts once it
/// finished with its bytes transferred (not when present or mounted).
#[derive(Debug, Default)]
pub struct Transfers {
    /// Size or bytes seen so far of each blob under way.
    under_way: HashMap<Digest, u64>,
    pulled: u64,
    pushed: u64,
}

impl Transfers {
    /// Takes note of one event.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::BlobStarted { digest, total, .. } => {
                self.under_way.insert(digest.clone(), total.unwrap_or(0));
            }
            Event::BlobProgress { digest, done } => {
                if let Some(size) = self.under_way.get_mut(digest) {
                    *size = (*size).max(*done);
                }
            }
            Event::BlobFinished {
                digest,
                direction,
                outcome,
            } => {
                let size = self.under_way.remove(digest).unwrap_or(0);
                if *outcome == BlobOutcome::Transferred {
                    match direction {
                        Direction::Download => self.pulled += size,
                        Direction::Upload => self.pushed += size,
                    }
                }
            }
            Event::Status(_)
            | Event::Step(_)
            | Event::Internal { .. }
            | Event::Work(_)
            | Event::Summary(_) => {}
        }
    }

    /// Bytes downloaded from registries.
    pub fn pulled(&self) -> u64 {
        self.pulled
    }

    /// Bytes uploaded to registries.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_count_moved_blobs_by_direction() {
        let a = crate::digest::sha256(b"a");
        let b = crate::digest::sha256(b"b");
        let c = crate::digest::sha256(b"c");
        let mut transfers = Transfers::default();
        for event in [
            Event::BlobStarted {
                digest: a.clone(),
                direction: Direction::Download,
                total: Some(1000),
            },
            Event::BlobFinished {
                digest: a,
                direction: Direction::Download,
                outcome: BlobOutcome::Transferred,
            },
            // Size unknown up front: the progress tells it.
            Event::BlobStarted {
                digest: b.clone(),
                direction: Direction::Upload,
                total: None,
            },
            Event::BlobProgress {
                digest: b.clone(),
                done: 300,
            },
            Event::BlobFinished {
                digest: b,
                direction: Direction::Upload,
                outcome: BlobOutcome::Transferred,
            },
            // Mounted: nothing moved.
            Event::BlobStarted {
                digest: c.clone(),
                direction: Direction::Upload,
                total: Some(5000),
            },
            Event::BlobFinished {
                digest: c,
                direction: Direction::Upload,
                outcome: BlobOutcome::Mounted { from: "x".into() },
            },
        ] {
            transfers.observe(&event);
        }
        assert_eq!((transfers.pulled(), transfers.pushed()), (1000, 300));
    }

    #[test]
    fn summary_lines_name_counts_image_and_names() {
        let summary = Summary {
            steps_run: 2,
            steps_cached: 5,
            elapsed: Duration::from_millis(1250),
            manifest: crate::digest::sha256(b"m"),
            id: crate::digest::sha256(b"c"),
            names: vec!["app:1".into(), "app:latest".into()],
        };
        let lines = summary.lines(&Transfers::default());
        assert_eq!(
            lines,
            [
                "built in 1.2s: 2 steps run, 5 cached; 0 B pulled, 0 B pushed".to_owned(),
                format!("image {} (id {})", summary.manifest, summary.id),
                "named app:1".to_owned(),
                "named app:latest".to_owned(),
            ]
        );
        let one = Summary {
            steps_run: 1,
            ..summary
        };
        assert!(one.lines(&Transfers::default())[0].contains(": 1 step run, 5 cached;"));
    }
}
