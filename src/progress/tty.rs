//! Terminal rendering with indicatif: a live area holding one line per
//! running step (spinner, `#N [stage i/n] INSTRUCTION`, elapsed time) with
//! the last lines of its output under it, and a byte bar with rate per
//! blob under way. A finished step or blob collapses into one permanent
//! line above the live area (its time, `CACHED` or `ERROR`); live lines
//! are cut to the terminal's width, never wrapped, and redrawn at most
//! 20 times a second.

use super::event::Event;
use super::plain::{finished, human_bytes, short, under_way};
use super::step::StepProgress;
use super::summary::Transfers;
use super::work::{Work, WorkKind, WorkState};
use crate::terminal_text::{Tail, displayed};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use oci_spec::image::Digest;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// How many lines of a running step's output stay in view.
pub const TAIL_LINES: usize = 6;

/// How often spinners and elapsed times move.
const TICK: Duration = Duration::from_millis(100);

/// Below this width, blob bars show no bar, only what moves.
const BAR_MIN_WIDTH: usize = 72;

/// Draws the stream on stderr, which must be a terminal, until it ends.
pub fn render(mut events: UnboundedReceiver<Event>) {
    let mut screen = Screen::new(
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        terminal_width,
    );
    while let Some(event) = events.blocking_recv() {
        screen.show(event);
    }
    screen.cancel_the_rest();
}

/// The live area and what is in it.
struct Screen {
    multi: MultiProgress,
    steps: HashMap<u64, RunningStep>,
    blobs: HashMap<Digest, ProgressBar>,
    /// Phases outside any step (compressing a layer for a push), each a
    /// spinner line until it finishes.
    works: Vec<(WorkKind, ProgressBar)>,
    transfers: Transfers,
    step_style: ProgressStyle,
    tail_style: ProgressStyle,
    /// The terminal's width now, in columns.
    width: fn() -> usize,
}

/// A step on screen: its line and the tail of its output under it.
struct RunningStep {
    /// `#N [stage i/n] INSTRUCTION`, made safe to draw.
    title: String,
    line: ProgressBar,
    tail: Tail,
    tail_lines: Vec<ProgressBar>,
}

impl Screen {
    fn new(multi: MultiProgress, width: fn() -> usize) -> Screen {
        let step_style = ProgressStyle::with_template("{spinner} {wide_msg} {secs:>7}")
            .expect("a valid constant template")
            .with_key(
                "secs",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.1}s", state.elapsed().as_secs_f64());
                },
            )
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let tail_style =
            ProgressStyle::with_template("  │ {wide_msg}").expect("a valid constant template");
        Screen {
            multi,
            steps: HashMap::new(),
            blobs: HashMap::new(),
            works: Vec::new(),
            transfers: Transfers::default(),
            step_style,
            tail_style,
            width,
        }
    }

    fn show(&mut self, event: Event) {
        self.transfers.observe(&event);
        match event {
            Event::Step(step) => self.step(step),
            Event::BlobStarted {
                digest,
                direction,
                total,
            } => {
                let bar = self.multi.add(
                    ProgressBar::new(total.unwrap_or(0)).with_style(blob_style((self.width)())),
                );
                bar.set_prefix(short(&digest));
                bar.set_message(under_way(direction));
                bar.enable_steady_tick(TICK);
                self.blobs.insert(digest, bar);
            }
            Event::BlobProgress { digest, done } => {
                if let Some(bar) = self.blobs.get(&digest) {
                    bar.set_position(done);
                }
            }
            Event::BlobFinished {
                digest,
                direction,
                outcome,
            } => {
                let line = finished(&digest, direction, &outcome);
                let moved = self.blobs.remove(&digest).map(|bar| {
                    self.drop_bar(&bar);
                    bar.length().unwrap_or(0).max(bar.position())
                });
                match moved {
                    Some(bytes) if outcome == super::BlobOutcome::Transferred => {
                        self.print(&fit(&line, &human_bytes(bytes), (self.width)()));
                    }
                    _ => self.print(&truncate(&line, (self.width)())),
                }
            }
            Event::Status(text) => self.print(&displayed(&text)),
            Event::Work(work) => self.work(work),
            Event::Summary(summary) => {
                for line in summary.lines(&self.transfers) {
                    self.print(&line);
                }
            }
        }
    }

    /// A phase outside any step: a spinner line while it runs, a
    /// permanent line when it is over.
    fn work(&mut self, work: Work) {
        let text = truncate(&displayed(&work.text()), (self.width)());
        let at = self.works.iter().position(|(kind, _)| *kind == work.kind);
        match (work.state, at) {
            (WorkState::Finished, at) => {
                if let Some(at) = at {
                    let (_, bar) = self.works.remove(at);
                    self.drop_bar(&bar);
                }
                self.print(&text);
            }
            (_, Some(at)) => self.works[at].1.set_message(text),
            (_, None) => {
                let bar = self.multi.add(
                    ProgressBar::new_spinner()
                        .with_style(self.step_style.clone())
                        .with_message(text),
                );
                bar.enable_steady_tick(TICK);
                self.works.push((work.kind, bar));
            }
        }
    }

    fn step(&mut self, step: StepProgress) {
        match step {
            StepProgress::Started { id, name } => {
                let title = displayed(&format!("#{id} {name}"));
                let line = self.multi.add(
                    ProgressBar::new_spinner()
                        .with_style(self.step_style.clone())
                        .with_message(title.clone()),
                );
                line.enable_steady_tick(TICK);
                self.steps.insert(
                    id,
                    RunningStep {
                        title,
                        line,
                        tail: Tail::new(TAIL_LINES),
                        tail_lines: Vec::new(),
                    },
                );
            }
            StepProgress::Output { id, line, .. } => {
                if let Some(step) = self.steps.get_mut(&id) {
                    step.tail.push(&line);
                    while step.tail_lines.len() < step.tail.lines().len() {
                        let after = step.tail_lines.last().unwrap_or(&step.line);
                        let bar = self.multi.insert_after(
                            after,
                            ProgressBar::new_spinner().with_style(self.tail_style.clone()),
                        );
                        step.tail_lines.push(bar);
                    }
                    for (bar, text) in step.tail_lines.iter().zip(step.tail.lines()) {
                        bar.set_message(text.to_owned());
                    }
                }
            }
            StepProgress::Work { id, work } => {
                if let Some(step) = self.steps.get(&id) {
                    let message = match work.state {
                        WorkState::Finished => step.title.clone(),
                        _ => displayed(&format!("{} · {}", step.title, work.text())),
                    };
                    step.line.set_message(message);
                }
            }
            StepProgress::Cached { id } => self.collapse(id, "CACHED".to_owned()),
            StepProgress::Done { id, elapsed } => {
                self.collapse(id, format!("{:.1}s", elapsed.as_secs_f64()));
            }
            StepProgress::Missed { .. } => self.print(&displayed(&step.line())),
            StepProgress::Failed { id, elapsed, .. } => {
                let tail = self.steps.get(&id).map(|s| s.tail.clone());
                self.collapse(id, format!("ERROR {:.1}s", elapsed.as_secs_f64()));
                for line in tail.iter().flat_map(Tail::lines) {
                    self.print(&truncate(&format!("  │ {line}"), (self.width)()));
                }
                self.print(&displayed(&step.line()));
            }
        }
    }

    /// Collapses what is still running when the stream ends early (the
    /// build failed in another stage or was interrupted): steps as
    /// `CANCELED`, blobs without a line.
    fn cancel_the_rest(&mut self) {
        let mut ids: Vec<u64> = self.steps.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.collapse(id, "CANCELED".to_owned());
        }
        for (_, bar) in std::mem::take(&mut self.blobs) {
            self.drop_bar(&bar);
        }
        for (_, bar) in std::mem::take(&mut self.works) {
            self.drop_bar(&bar);
        }
    }

    /// Replaces a running step by its permanent one-line form.
    fn collapse(&mut self, id: u64, suffix: String) {
        if let Some(step) = self.steps.remove(&id) {
            for bar in step.tail_lines.iter().chain([&step.line]) {
                self.drop_bar(bar);
            }
            self.print(&fit(&step.title, &suffix, (self.width)()));
        }
    }

    fn drop_bar(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// A permanent line above the live area.
    fn print(&self, line: &str) {
        let _ = self.multi.println(line);
    }
}

/// The style of a blob's bar for a terminal `width` columns wide.
fn blob_style(width: usize) -> ProgressStyle {
    let template = if width >= BAR_MIN_WIDTH {
        "{prefix} {msg:11} {wide_bar} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}"
    } else {
        "{prefix} {wide_msg}"
    };
    ProgressStyle::with_template(template)
        .expect("a valid constant template")
        .progress_chars("=> ")
}

/// The width of the terminal on stderr (80 when it cannot be known).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&columns| columns > 0)
        .unwrap_or(80)
}

/// `text` and `suffix` on one line `width` columns wide: the suffix at
/// the right edge, the text cut to fit before it.
pub fn fit(text: &str, suffix: &str, width: usize) -> String {
    let room = width.saturating_sub(suffix.width() + 1);
    let text = truncate(text, room);
    let padding = room.saturating_sub(text.width());
    truncate(&format!("{text}{} {suffix}", " ".repeat(padding)), width)
}

/// The longest start of `text` that fits in `width` columns.
pub fn truncate(text: &str, width: usize) -> String {
    let mut used = 0;
    text.chars()
        .take_while(|c| {
            used += c.width().unwrap_or(0);
            used <= width
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::sync::{Arc, Mutex};

    /// A terminal 40 columns wide that records what is drawn on it as the
    /// escape sequences a real one would get.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u8>>>);

    impl Recorder {
        fn put(&self, text: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(text.as_bytes());
            Ok(())
        }

        /// Moves the cursor `n` cells in `direction` (as a terminal does,
        /// nothing for 0, which an escape sequence would take as 1).
        fn moved(&self, n: usize, direction: char) -> std::io::Result<()> {
            match n {
                0 => Ok(()),
                n => self.put(&format!("\x1b[{n}{direction}")),
            }
        }

        /// The non-blank rows a terminal shows after all that was drawn.
        fn rows(&self) -> Vec<String> {
            let size = |n| std::num::NonZeroU16::new(n).unwrap();
            let mut terminal = vt100::Parser::new(size(50), size(40), 0);
            terminal.process(&self.0.lock().unwrap());
            terminal
                .screen()
                .rows(0, 40)
                .map(|row| row.trim_end().to_owned())
                .filter(|row| !row.is_empty())
                .collect()
        }
    }

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            40
        }
        fn height(&self) -> u16 {
            50
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.moved(n, 'A')
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.moved(n, 'B')
        }
        fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
            self.moved(n, 'C')
        }
        fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
            self.moved(n, 'D')
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.put(&format!("{s}\r\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.put(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.put("\r\x1b[2K")
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_layer_compressed_for_a_push_is_a_live_line_then_a_permanent_one() {
        let terminal = Recorder::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            terminal.clone(),
        )));
        let mut screen = Screen::new(multi, || 40);
        let work = |state, done| {
            Event::Work(Work {
                kind: WorkKind::Export {
                    layer: crate::digest::sha256(b"layer"),
                },
                state,
                done,
                total: Some(4 << 20),
                elapsed: Duration::from_secs(2),
            })
        };
        screen.show(work(WorkState::Started, 1 << 20));
        screen.show(work(WorkState::Running, 2 << 20));
        assert_eq!(screen.works.len(), 1, "one live line per layer");
        screen.show(work(WorkState::Finished, 4 << 20));
        assert!(screen.works.is_empty());
        drop(screen);
        let short = short(&crate::digest::sha256(b"layer"));
        let rows = terminal.rows();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(
            rows[0].starts_with(&format!("exported layer {short} 4.0 MiB")),
            "{rows:?}"
        );
    }

    #[test]
    fn a_failed_step_keeps_its_tail_and_unfinished_steps_are_canceled() {
        let terminal = Recorder::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            terminal.clone(),
        )));
        let mut screen = Screen::new(multi, || 40);
        let step = Event::Step;
        screen.show(step(StepProgress::Started {
            id: 1,
            name: "[1/2] RUN make".into(),
        }));
        for n in 1..=8 {
            screen.show(step(StepProgress::Output {
                id: 1,
                elapsed: Duration::from_millis(n),
                line: format!("line {n}\u{1b}[1A"),
            }));
        }
        screen.show(step(StepProgress::Started {
            id: 2,
            name: "[2/2] COPY a-very-long-name-that-does-not-fit /x".into(),
        }));
        screen.show(Event::Status("warning: x".into()));
        screen.show(step(StepProgress::Failed {
            id: 1,
            elapsed: Duration::from_millis(300),
            message: "exit code 2".into(),
        }));
        screen.cancel_the_rest();
        drop(screen);
        assert_eq!(
            terminal.rows(),
            [
                "warning: x",
                "#1 [1/2] RUN make             ERROR 0.3s",
                "  │ line 3",
                "  │ line 4",
                "  │ line 5",
                "  │ line 6",
                "  │ line 7",
                "  │ line 8",
                "#1 ERROR 0.3s: exit code 2",
                "#2 [2/2] COPY a-very-long-name- CANCELED",
            ]
        );
    }

    #[test]
    fn fit_puts_the_suffix_at_the_right_edge() {
        assert_eq!(fit("#1 FROM x", "CACHED", 20), "#1 FROM x     CACHED");
        assert_eq!(fit("#1 FROM x", "CACHED", 20).width(), 20);
    }

    #[test]
    fn fit_cuts_the_text_not_the_suffix() {
        assert_eq!(fit("#2 RUN make all", "1.2s", 12), "#2 RUN  1.2s");
        // Too narrow even for the suffix: cut at the edge all the same.
        assert_eq!(fit("#2 RUN make", "CACHED", 4), " CAC");
    }

    #[test]
    fn truncate_counts_columns_not_bytes() {
        assert_eq!(truncate("héllo", 3), "hél");
        // Wide characters take two columns and are not split.
        assert_eq!(truncate("日本語", 5), "日本");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
