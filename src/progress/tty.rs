//! Terminal rendering with indicatif: one bar per blob with bytes, rate
//! and outcome.

use super::event::{BlobOutcome, Event};
use super::plain::{short, under_way};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use tokio::sync::mpsc::UnboundedReceiver;

/// Draws bars on stderr until the stream ends.
pub fn render(mut events: UnboundedReceiver<Event>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix:.bold} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::BlobStarted {
                digest,
                direction,
                total,
            } => {
                let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(short(&digest));
                bar.set_message(under_way(direction));
                bars.insert(digest.to_string(), bar);
            }
            Event::BlobProgress { digest, done } => {
                if let Some(bar) = bars.get(&digest.to_string()) {
                    bar.set_position(done);
                }
            }
            Event::BlobFinished {
                digest, outcome, ..
            } => {
                let message = match outcome {
                    BlobOutcome::Transferred => "done".to_string(),
                    BlobOutcome::AlreadyPresent => "exists".to_string(),
                    BlobOutcome::Mounted { from } => format!("mounted from {from}"),
                };
                match bars.remove(&digest.to_string()) {
                    Some(bar) => bar.finish_with_message(message),
                    None => {
                        let _ = multi.println(format!("{} {message}", short(&digest)));
                    }
                }
            }
            Event::Status(s) => {
                let _ = multi.println(s);
            }
            Event::Step(step) => {
                let _ = multi.println(step.line());
            }
        }
    }
}
