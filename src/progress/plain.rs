//! Plain-line rendering for logs and pipes: BuildKit's `#N …` step lines,
//! one line when a blob starts and one when it finishes (no byte-by-byte
//! noise), the summary at the end; never an escape sequence, of its own or
//! of a step's output (each line is shown as [`cleaned`] makes it).

use super::event::{BlobOutcome, Direction, Event};
use super::summary::Transfers;
use crate::terminal_text::cleaned;
use oci_spec::image::Digest;
use std::io::Write;
use tokio::sync::mpsc::UnboundedReceiver;

/// Writes the lines of each event until the stream ends.
pub fn render(mut events: UnboundedReceiver<Event>, out: &mut impl Write) {
    let mut transfers = Transfers::default();
    while let Some(event) = events.blocking_recv() {
        transfers.observe(&event);
        // A message of several lines (an error's) stays several lines.
        for line in lines(&event, &transfers).iter().flat_map(|l| l.split('\n')) {
            let _ = writeln!(out, "{}", cleaned(line));
        }
    }
}

/// The lines of an event (none for byte counts and internal phases); `transfers` gives the
/// summary its bytes.
pub fn lines(event: &Event, transfers: &Transfers) -> Vec<String> {
    match event {
        Event::BlobStarted {
            digest,
            direction,
            total,
        } => {
            let verb = under_way(*direction);
            vec![match total {
                Some(t) => format!("{} {verb} ({})", short(digest), human_bytes(*t)),
                None => format!("{} {verb}", short(digest)),
            }]
        }
        // BuildKit's plain lines have no place for these: as before.
        Event::BlobProgress { .. } | Event::Internal { .. } => Vec::new(),
        Event::BlobFinished {
            digest,
            direction,
            outcome,
        } => vec![finished(digest, *direction, outcome)],
        Event::Status(s) => vec![s.clone()],
        Event::Step(step) => vec![step.line()],
        Event::Work(work) => vec![work.text()],
        Event::Summary(summary) => summary.lines(transfers),
    }
}

/// `<short digest> downloaded|pushed|already exists|mounted from …`.
pub fn finished(digest: &Digest, direction: Direction, outcome: &BlobOutcome) -> String {
    match (outcome, direction) {
        (BlobOutcome::Transferred, Direction::Download) => {
            format!("{} downloaded", short(digest))
        }
        (BlobOutcome::Transferred, Direction::Upload) => format!("{} pushed", short(digest)),
        (BlobOutcome::AlreadyPresent, _) => format!("{} already exists", short(digest)),
        (BlobOutcome::Mounted { from }, _) => {
            format!("{} mounted from {from}", short(digest))
        }
    }
}

/// What a blob travelling in `direction` is doing: `downloading` or `uploading`.
pub fn under_way(direction: Direction) -> &'static str {
    match direction {
        Direction::Download => "downloading",
        Direction::Upload => "uploading",
    }
}

/// The first 12 hex digits of a digest, as Docker shows layers.
pub fn short(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_short_digest_and_outcome() {
        let digest = crate::digest::sha256(b"x");
        let hex12: String = digest.digest()[..12].to_string();
        let (tx, rx) = super::super::ProgressSender::channel();
        tx.send(Event::BlobStarted {
            digest: digest.clone(),
            direction: Direction::Upload,
            total: Some(3 << 20),
        });
        tx.send(Event::BlobProgress {
            digest: digest.clone(),
            done: 1,
        });
        tx.send(Event::BlobFinished {
            digest,
            direction: Direction::Upload,
            outcome: BlobOutcome::Mounted {
                from: "library/a".into(),
            },
        });
        drop(tx);
        let mut out = Vec::new();
        render(rx, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{hex12} uploading (3.0 MiB)\n{hex12} mounted from library/a\n")
        );
    }
}
