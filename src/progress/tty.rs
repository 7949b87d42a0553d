//! Terminal rendering as `docker buildx build` draws it: a header
//! `[+] Building 3.4s (5/7)` counting time and finished/known steps, then
//! the internal phases (`[internal] load build context`), then one line per
//! step in the order they started (` => [2/3] COPY …  0.1s`,
//! ` => CACHED …`, ` => ERROR …`), a running step with what it waits on
//! under it (the last lines of its output, its blobs, a long phase), and
//! an `exporting to image` group for what happens after the last step.
//! The whole view is redrawn in place at most 20 times a second (only its
//! last rows while it is taller than the terminal), every line cut to the
//! terminal's width, never wrapped; when the stream ends the final view is
//! drawn whole, its header ending in `FINISHED`. Colour (blue finished,
//! red failed, yellow canceled or warned) is off where [`colour_wanted`]
//! says so.

use super::BlobOutcome;
use super::event::{Direction, Event, InternalState};
use super::plain::{finished, human_bytes, short, under_way};
use super::step::StepProgress;
use super::summary::Transfers;
use super::work::{Work, WorkState};
use crate::terminal_text::{Tail, displayed};
use oci_spec::image::Digest;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// How many lines of a running step's output stay in view.
pub const TAIL_LINES: usize = 6;

/// How often running times move.
const TICK: Duration = Duration::from_millis(100);

/// The least time between two draws.
const FRAME: Duration = Duration::from_millis(50);

/// What stands for the end of a line cut to fit.
const CUT: &str = "…";

/// Whether to colour the view: not when `NO_COLOR` is set to a non-empty
/// value (<https://no-color.org>) or `TERM` is `dumb`. `env` reads an
/// environment variable.
pub fn colour_wanted(env: impl Fn(&str) -> Option<OsString>) -> bool {
    let no_color = env("NO_COLOR").is_some_and(|value| !value.is_empty());
    let dumb = env("TERM").is_some_and(|term| term == "dumb");
    !no_color && !dumb
}

/// Draws the stream on stderr, which must be a terminal, until it ends.
pub fn render(mut events: UnboundedReceiver<Event>) {
    let colour = colour_wanted(|name| std::env::var_os(name));
    let mut screen = Screen::new(std::io::stderr(), terminal_size, colour);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        // No timer: draw on events only.
        while let Some(event) = events.blocking_recv() {
            screen.show(event, Instant::now());
        }
        screen.finish(Instant::now());
        return;
    };
    runtime.block_on(async {
        loop {
            match tokio::time::timeout(TICK, events.recv()).await {
                Ok(Some(event)) => screen.show(event, Instant::now()),
                Ok(None) => break,
                Err(_) => screen.draw(Instant::now(), false),
            }
        }
    });
    screen.finish(Instant::now());
}

/// The terminal on stderr's columns and rows (80 × 24 when unknown).
pub fn terminal_size() -> (usize, usize) {
    let size = rustix::termios::tcgetwinsize(std::io::stderr()).ok();
    let columns = size.map_or(0, |s| usize::from(s.ws_col));
    let rows = size.map_or(0, |s| usize::from(s.ws_row));
    (
        if columns > 0 { columns } else { 80 },
        if rows > 0 { rows } else { 24 },
    )
}

/// How a line is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    /// Finished: blue.
    Done,
    /// Failed: red.
    Error,
    /// Canceled or a warning: yellow.
    Warning,
    /// A notice: cyan.
    Notice,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Done => Some("\x1b[34m"),
            Tone::Error => Some("\x1b[31m"),
            Tone::Warning => Some("\x1b[33m"),
            Tone::Notice => Some("\x1b[36m"),
        }
    }

    /// The tone of a status line.
    fn of_status(text: &str) -> Tone {
        if text.starts_with("warning") {
            Tone::Warning
        } else if text.starts_with("notice") {
            Tone::Notice
        } else {
            Tone::Plain
        }
    }
}

/// Where a step (or the export group) is.
#[derive(Debug, Clone, Copy)]
enum State {
    Running { since: Instant },
    Done(Duration),
    Cached,
    Error(Duration),
    Canceled(Duration),
}

/// A step on screen, an internal phase or the `exporting to image` group.
struct Step {
    /// `[stage i/n] INSTRUCTION` (`[internal] …`, `exporting to image`),
    /// made safe to draw.
    title: String,
    state: State,
    /// The last lines of its output (dropped when it finishes).
    tail: Tail,
    /// A long phase under way, as its text.
    work: Option<String>,
    /// Blobs moved while it ran, in the order they started.
    blobs: Vec<Digest>,
    /// Lines that stay under it once it finished (an internal phase's
    /// detail, what the export group did).
    notes: Vec<String>,
    /// Whether its blobs and notes stay once it finished.
    keeps_details: bool,
}

impl Step {
    fn new(title: String, now: Instant, keeps_details: bool) -> Step {
        Step {
            title,
            state: State::Running { since: now },
            tail: Tail::new(TAIL_LINES),
            work: None,
            blobs: Vec::new(),
            notes: Vec::new(),
            keeps_details,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn end(&mut self, state: impl FnOnce(Duration) -> State, now: Instant) {
        if let State::Running { since } = self.state {
            self.state = state(now.saturating_duration_since(since));
            self.work = None;
            self.tail = Tail::new(TAIL_LINES);
        }
    }
}

/// A blob on the move.
struct Blob {
    direction: Direction,
    total: Option<u64>,
    done: u64,
    outcome: Option<BlobOutcome>,
}

impl Blob {
    fn line(&self, digest: &Digest) -> String {
        match &self.outcome {
            Some(outcome @ BlobOutcome::Transferred) => format!(
                "{} {}",
                finished(digest, self.direction, outcome),
                human_bytes(self.total.unwrap_or(0).max(self.done))
            ),
            Some(outcome) => finished(digest, self.direction, outcome),
            None => {
                let so_far = match self.total {
                    Some(total) => format!("{} / {}", human_bytes(self.done), human_bytes(total)),
                    None => human_bytes(self.done),
                };
                format!("{} {} {so_far}", short(digest), under_way(self.direction))
            }
        }
    }
}

/// One entry of the view, in the order it came.
enum Entry {
    /// A step, by its index in [`Screen::steps`].
    Step(usize),
    /// A status line.
    Status(String),
    /// A blob moved outside any step (`builder pull`, `push`).
    Blob(Digest),
}

/// The view and the terminal it is drawn on.
struct Screen<W: Write> {
    out: W,
    size: fn() -> (usize, usize),
    colour: bool,
    began: Instant,
    entries: Vec<Entry>,
    steps: Vec<Step>,
    /// Step numbers to indexes in `steps`.
    ids: HashMap<u64, usize>,
    /// Internal phases by name to indexes in `steps`.
    internal: HashMap<String, usize>,
    /// Where in `entries` the next internal phase goes: after the ones
    /// before it, above the steps (buildx draws the context load before
    /// the COPY that waits for it).
    internal_end: usize,
    blobs: HashMap<Digest, Blob>,
    /// The `exporting to image` group, once something is exported.
    export: Option<usize>,
    /// When the last step ended: where exporting begins.
    last_end: Option<Instant>,
    transfers: Transfers,
    summary: Vec<String>,
    /// Rows of the last live view, which the next draw overwrites.
    drawn: usize,
    last_draw: Option<Instant>,
}

impl<W: Write> Screen<W> {
    fn new(out: W, size: fn() -> (usize, usize), colour: bool) -> Screen<W> {
        Screen {
            out,
            size,
            colour,
            began: Instant::now(),
            entries: Vec::new(),
            steps: Vec::new(),
            ids: HashMap::new(),
            internal: HashMap::new(),
            internal_end: 0,
            blobs: HashMap::new(),
            export: None,
            last_end: None,
            transfers: Transfers::default(),
            summary: Vec::new(),
            drawn: 0,
            last_draw: None,
        }
    }

    fn show(&mut self, event: Event, now: Instant) {
        self.transfers.observe(&event);
        match event {
            Event::Step(step) => self.step(step, now),
            Event::Internal { name, state } => self.internal(name, state, now),
            Event::BlobStarted {
                digest,
                direction,
                total,
            } => {
                self.place(&digest, direction, now);
                self.blobs.insert(
                    digest,
                    Blob {
                        direction,
                        total,
                        done: 0,
                        outcome: None,
                    },
                );
            }
            Event::BlobProgress { digest, done } => {
                if let Some(blob) = self.blobs.get_mut(&digest) {
                    blob.done = done;
                }
            }
            Event::BlobFinished {
                digest,
                direction,
                outcome,
            } => {
                if !self.blobs.contains_key(&digest) {
                    // Nothing to move (already there): a line all the same.
                    self.place(&digest, direction, now);
                }
                let blob = self.blobs.entry(digest).or_insert(Blob {
                    direction,
                    total: None,
                    done: 0,
                    outcome: None,
                });
                blob.outcome = Some(outcome);
            }
            Event::Status(text) => {
                let text = displayed(&text);
                let exported =
                    text.starts_with("pushed ") || text.starts_with("loaded into docker");
                if exported && self.building() {
                    let index = self.exporting(now);
                    self.steps[index].notes.push(text);
                } else {
                    self.entries.push(Entry::Status(text));
                }
            }
            Event::Work(work) => self.work(&work, now),
            Event::Summary(summary) => {
                let index = self.exporting(now);
                let export = &mut self.steps[index];
                export.notes.push(format!("writing image {}", summary.id));
                for name in &summary.names {
                    export.notes.push(displayed(&format!("naming to {name}")));
                }
                export.end(State::Done, now);
                self.summary = summary.lines(&self.transfers);
            }
        }
        if self
            .last_draw
            .is_none_or(|at| now.duration_since(at) >= FRAME)
        {
            self.draw(now, false);
        }
    }

    fn step(&mut self, step: StepProgress, now: Instant) {
        match step {
            StepProgress::Started { id, name } => {
                self.ids.insert(id, self.steps.len());
                self.entries.push(Entry::Step(self.steps.len()));
                self.steps.push(Step::new(displayed(&name), now, false));
            }
            StepProgress::Output { id, line, .. } => {
                if let Some(step) = self.by_id(id) {
                    step.tail.push(&line);
                }
            }
            StepProgress::Work { id, work } => {
                if let Some(step) = self.by_id(id) {
                    step.work = match work.state {
                        WorkState::Finished => None,
                        _ => Some(displayed(&work.text())),
                    };
                }
            }
            StepProgress::Cached { id } => self.end(id, |_| State::Cached, now),
            StepProgress::Done { id, elapsed } => self.end(id, |_| State::Done(elapsed), now),
            // The report after the view shows the error and the step's
            // last lines of output: said once, not here too.
            StepProgress::Failed { id, elapsed, .. } => {
                self.end(id, |_| State::Error(elapsed), now);
            }
            StepProgress::Missed { id, reasons } => {
                let title = self.by_id(id).map(|s| s.title.clone()).unwrap_or_default();
                let text = displayed(&format!("{title}: cache miss: {}", reasons.join("; ")));
                self.entries.push(Entry::Status(text));
            }
        }
    }

    /// An internal phase: a step titled `[internal] NAME` whose detail
    /// stays under it.
    fn internal(&mut self, name: String, state: InternalState, now: Instant) {
        let index = match self.internal.get(&name) {
            Some(&index) => index,
            None => {
                let index = self.steps.len();
                let title = displayed(&format!("[internal] {name}"));
                self.steps.push(Step::new(title, now, true));
                self.entries.insert(self.internal_end, Entry::Step(index));
                self.internal_end += 1;
                self.internal.insert(name, index);
                index
            }
        };
        let step = &mut self.steps[index];
        match state {
            InternalState::Started => {}
            InternalState::Done { detail } => {
                step.notes.extend(detail.map(|d| displayed(&d)));
                step.end(State::Done, now);
            }
            InternalState::Failed => step.end(State::Error, now),
        }
    }

    fn by_id(&mut self, id: u64) -> Option<&mut Step> {
        self.ids.get(&id).map(|&index| &mut self.steps[index])
    }

    fn end(&mut self, id: u64, state: impl FnOnce(Duration) -> State, now: Instant) {
        if let Some(step) = self.by_id(id) {
            step.end(state, now);
            self.last_end = Some(now);
        }
    }

    /// Whether this is a build's view (not a pull's or a push's).
    fn building(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Puts a blob's line where it belongs: under the step that waits for
    /// it (a build's download) or the export group (a build's upload),
    /// else on its own (`builder pull`, `builder push`).
    fn place(&mut self, digest: &Digest, direction: Direction, now: Instant) {
        let owner = match direction {
            Direction::Upload if self.building() => Some(self.exporting(now)),
            Direction::Upload => None,
            Direction::Download => self.owner_of_download(),
        };
        match owner {
            Some(index) => self.steps[index].blobs.push(digest.clone()),
            None => self.entries.push(Entry::Blob(digest.clone())),
        }
    }

    /// The step a download belongs to: the latest running `FROM`, else
    /// the latest running step; none outside a build.
    fn owner_of_download(&self) -> Option<usize> {
        let running = || {
            self.steps
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, s)| s.running() && !s.keeps_details)
        };
        running()
            .find(|(_, s)| s.title.contains("] FROM "))
            .or_else(|| running().next())
            .map(|(index, _)| index)
    }

    /// A long phase outside any step (a layer compressed for a push or an
    /// export): in a build, a live line under `exporting to image` that
    /// stays as a note once finished; in a `builder push`, a line of its
    /// own when finished.
    fn work(&mut self, work: &Work, now: Instant) {
        let text = displayed(&work.text());
        let finished = work.state == WorkState::Finished;
        if !self.building() {
            if finished {
                self.entries.push(Entry::Status(text));
            }
            return;
        }
        let index = self.exporting(now);
        let export = &mut self.steps[index];
        if finished {
            export.work = None;
            export.notes.push(text);
        } else {
            export.work = Some(text);
        }
    }

    /// The `exporting to image` group, begun where the last step ended
    /// when this is the first thing exported.
    fn exporting(&mut self, now: Instant) -> usize {
        if let Some(index) = self.export {
            return index;
        }
        let index = self.steps.len();
        let since = self.last_end.unwrap_or(now);
        self.steps
            .push(Step::new("exporting to image".to_owned(), since, true));
        self.entries.push(Entry::Step(index));
        self.export = Some(index);
        index
    }

    /// The view's lines: the header, then each entry with what is under it.
    fn lines(&self, now: Instant, width: usize, last: bool) -> Vec<(String, Tone)> {
        let finished = self.steps.iter().filter(|s| !s.running()).count();
        let header = format!(
            "[+] Building {:.1}s ({finished}/{}){}",
            now.saturating_duration_since(self.began).as_secs_f64(),
            self.steps.len(),
            if last { " FINISHED" } else { "" }
        );
        // Only a build has a header: a pull or a push shows its blobs.
        let mut lines: Vec<(String, Tone)> = self
            .building()
            .then(|| {
                let tone = if last { Tone::Done } else { Tone::Plain };
                (cut(&header, width), tone)
            })
            .into_iter()
            .collect();
        for entry in &self.entries {
            match entry {
                Entry::Step(index) => self.step_lines(&self.steps[*index], now, width, &mut lines),
                Entry::Status(text) => lines.push((cut(text, width), Tone::of_status(text))),
                Entry::Blob(digest) => {
                    if let Some(blob) = self.blobs.get(digest) {
                        let line = match &blob.outcome {
                            Some(BlobOutcome::Transferred) => fit(
                                &finished_line(digest, blob),
                                &human_bytes(blob.total.unwrap_or(0).max(blob.done)),
                                width,
                            ),
                            _ => cut(&blob.line(digest), width),
                        };
                        lines.push((line, Tone::Plain));
                    }
                }
            }
        }
        lines
    }

    fn step_lines(&self, step: &Step, now: Instant, width: usize, lines: &mut Vec<(String, Tone)>) {
        let (label, time, tone) = match step.state {
            State::Running { since } => ("", now.saturating_duration_since(since), Tone::Plain),
            State::Done(took) => ("", took, Tone::Done),
            State::Cached => ("CACHED ", Duration::ZERO, Tone::Done),
            State::Error(took) => ("ERROR ", took, Tone::Error),
            State::Canceled(took) => ("CANCELED ", took, Tone::Warning),
        };
        let time = format!("{:.1}s", time.as_secs_f64());
        lines.push((
            fit(&format!(" => {label}{}", step.title), &time, width),
            tone,
        ));
        if !step.running() && !step.keeps_details {
            return;
        }
        let under = |text: &str| cut(&format!(" => => {text}"), width);
        let sub_tone = if step.running() { Tone::Plain } else { tone };
        for digest in &step.blobs {
            if let Some(blob) = self.blobs.get(digest) {
                lines.push((under(&blob.line(digest)), sub_tone));
            }
        }
        for note in &step.notes {
            lines.push((under(note), sub_tone));
        }
        if let Some(work) = &step.work {
            lines.push((under(work), sub_tone));
        }
        for line in step.tail.lines() {
            lines.push((under(&format!("# {line}")), sub_tone));
        }
    }

    /// Redraws the view over the last one: only its last rows while it is
    /// taller than the terminal, all of it when `last`.
    fn draw(&mut self, now: Instant, last: bool) {
        let (width, height) = (self.size)();
        let mut lines = self.lines(now, width, last);
        let room = height.saturating_sub(1).max(2);
        if !last && lines.len() > room {
            // The header, then what fits of the end.
            let header = usize::from(self.building());
            lines.drain(header..header + lines.len() - room);
        }
        let mut frame = String::new();
        if self.drawn > 0 {
            frame.push_str(&format!("\r\x1b[{}A", self.drawn));
        }
        for (line, tone) in &lines {
            frame.push_str("\r\x1b[2K");
            match tone.code().filter(|_| self.colour) {
                Some(code) => frame.push_str(&format!("{code}{line}\x1b[0m\n")),
                None => frame.push_str(&format!("{line}\n")),
            }
        }
        // What is left of a taller view before.
        frame.push_str("\r\x1b[J");
        let _ = self.out.write_all(frame.as_bytes());
        let _ = self.out.flush();
        self.drawn = lines.len();
        self.last_draw = Some(now);
    }

    /// Ends the view: what still runs (the build failed elsewhere or was
    /// interrupted) as `CANCELED`, the whole view once more, then the
    /// summary of a successful build. Nothing is redrawn after it.
    fn finish(&mut self, now: Instant) {
        for step in &mut self.steps {
            step.end(State::Canceled, now);
        }
        self.draw(now, true);
        let (width, _) = (self.size)();
        let summary: String = self
            .summary
            .iter()
            .map(|line| format!("\r{}\n", cut(line, width)))
            .collect();
        let _ = self.out.write_all(summary.as_bytes());
        let _ = self.out.flush();
        self.drawn = 0;
    }
}

/// A transferred blob's line without its size (which [`fit`] puts at the
/// right edge).
fn finished_line(digest: &Digest, blob: &Blob) -> String {
    finished(digest, blob.direction, &BlobOutcome::Transferred)
}

/// `text` and `suffix` on one line `width` columns wide: the suffix at
/// the right edge, the text cut to fit before it (ending in `…`).
pub fn fit(text: &str, suffix: &str, width: usize) -> String {
    let room = width.saturating_sub(suffix.width() + 1);
    let text = cut(text, room);
    let padding = room.saturating_sub(text.width());
    truncate(&format!("{text}{} {suffix}", " ".repeat(padding)), width)
}

/// `text` if it fits in `width` columns, else its longest start that fits
/// with `…` after it.
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut kept = truncate(text, width.saturating_sub(CUT.width()));
    if width >= CUT.width() {
        kept.push_str(CUT);
    }
    kept
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

    /// The rows a terminal of 40 × 30 shows after `drawn` (right-trimmed,
    /// blank ones left out).
    fn rows(drawn: &[u8]) -> Vec<String> {
        rows_at(drawn, 40)
    }

    /// The rows of a terminal `columns` × 30, as [`rows`].
    fn rows_at(drawn: &[u8], columns: u16) -> Vec<String> {
        let size = |n| std::num::NonZeroU16::new(n).unwrap();
        let mut terminal = vt100::Parser::new(size(30), size(columns), 0);
        terminal.process(drawn);
        terminal
            .screen()
            .rows(0, columns)
            .map(|row| row.trim_end().to_owned())
            .filter(|row| !row.is_empty())
            .collect()
    }

    fn screen(colour: bool) -> Screen<Vec<u8>> {
        Screen::new(Vec::new(), || (40, 30), colour)
    }

    #[test]
    fn a_failed_step_is_one_red_line_and_unfinished_steps_are_canceled() {
        let mut screen = screen(true);
        let now = screen.began;
        let step = Event::Step;
        screen.show(
            step(StepProgress::Started {
                id: 1,
                name: "[1/2] RUN make".into(),
            }),
            now,
        );
        for n in 1..=8 {
            screen.show(
                step(StepProgress::Output {
                    id: 1,
                    elapsed: Duration::from_millis(n),
                    line: format!("line {n}\u{1b}[1A"),
                }),
                now,
            );
        }
        screen.show(
            step(StepProgress::Started {
                id: 2,
                name: "[2/2] COPY a-very-long-name-that-does-not-fit /x".into(),
            }),
            now,
        );
        screen.draw(now, false);
        let live = rows(&screen.out);
        assert_eq!(live[0], "[+] Building 0.0s (0/2)");
        assert!(live.contains(&" => => # line 8".to_owned()), "{live:#?}");
        assert!(!live.contains(&" => => # line 2".to_owned()), "{live:#?}");
        screen.show(Event::Status("warning: x".into()), now);
        screen.show(
            step(StepProgress::Failed {
                id: 1,
                elapsed: Duration::from_millis(300),
                message: "exit code 2".into(),
            }),
            now,
        );
        screen.finish(now + Duration::from_millis(300));
        let text = String::from_utf8_lossy(&screen.out).into_owned();
        assert!(
            text.contains("\x1b[31m => ERROR [1/2] RUN make"),
            "{text:?}"
        );
        assert!(text.contains("\x1b[33m => CANCELED"), "{text:?}");
        assert_eq!(
            rows(&screen.out),
            [
                "[+] Building 0.3s (2/2) FINISHED",
                " => ERROR [1/2] RUN make            0.3s",
                " => CANCELED [2/2] COPY a-very-lon… 0.3s",
                "warning: x",
            ]
        );
    }

    #[test]
    fn blobs_live_under_their_step_and_go_with_it() {
        let mut screen = screen(false);
        let now = screen.began;
        let layer = crate::digest::sha256(b"layer");
        screen.show(
            Event::Step(StepProgress::Started {
                id: 1,
                name: "[1/2] FROM docker.io/library/busybox:latest".into(),
            }),
            now,
        );
        screen.show(
            Event::BlobStarted {
                digest: layer.clone(),
                direction: Direction::Download,
                total: Some(2048),
            },
            now,
        );
        screen.show(
            Event::BlobFinished {
                digest: layer.clone(),
                direction: Direction::Download,
                outcome: BlobOutcome::Transferred,
            },
            now,
        );
        screen.draw(now, false);
        let hex = &layer.digest()[..12];
        let live = rows(&screen.out);
        assert!(
            live.contains(&format!(" => => {hex} downloaded 2.0 KiB")),
            "{live:#?}"
        );
        screen.show(
            Event::Status(format!("pulled docker.io/library/busybox:latest ({layer})")),
            now,
        );
        screen.show(
            Event::Step(StepProgress::Done {
                id: 1,
                elapsed: Duration::from_millis(100),
            }),
            now,
        );
        screen.finish(now);
        let rows = rows(&screen.out);
        assert!(!rows.iter().any(|row| row.contains(hex)), "{rows:#?}");
        assert_eq!(rows[2], "pulled docker.io/library/busybox:latest…");
        assert!(rows.iter().all(|row| row.width() <= 40), "{rows:#?}");
        let drawn = String::from_utf8_lossy(&screen.out).into_owned();
        assert!(!drawn.contains("\x1b[34m") && !drawn.contains("\x1b[0m"));
    }

    #[test]
    fn internal_phases_are_steps_of_their_own_with_their_detail() {
        let mut screen = screen(false);
        let now = screen.began;
        screen.show(
            Event::Internal {
                name: "load build definition from Dockerfile".into(),
                state: InternalState::Done {
                    detail: Some("transferring dockerfile: 42 B".into()),
                },
            },
            now,
        );
        let context = "load build context".to_owned();
        screen.show(
            Event::Internal {
                name: context.clone(),
                state: InternalState::Started,
            },
            now,
        );
        screen.draw(now, false);
        assert_eq!(rows(&screen.out)[0], "[+] Building 0.0s (1/2)");
        screen.show(
            Event::Internal {
                name: context,
                state: InternalState::Done {
                    detail: Some("transferring context: 1.0 KiB".into()),
                },
            },
            now + Duration::from_millis(200),
        );
        screen.finish(now + Duration::from_millis(200));
        assert_eq!(
            rows(&screen.out),
            [
                "[+] Building 0.2s (2/2) FINISHED",
                " => [internal] load build definiti… 0.0s",
                " => => transferring dockerfile: 42 B",
                " => [internal] load build context   0.2s",
                " => => transferring context: 1.0 KiB",
            ]
        );
    }

    #[test]
    fn internal_phases_stay_above_the_steps_that_wait_for_them() {
        let mut screen = screen(false);
        let now = screen.began;
        let internal = |name: &str, state| Event::Internal {
            name: name.into(),
            state,
        };
        screen.show(
            internal(
                "load build definition from Dockerfile",
                InternalState::Done { detail: None },
            ),
            now,
        );
        screen.show(
            Event::Step(StepProgress::Started {
                id: 1,
                name: "[1/1] COPY . /app".into(),
            }),
            now,
        );
        screen.show(internal("load build context", InternalState::Started), now);
        screen.show(
            internal("load build context", InternalState::Done { detail: None }),
            now,
        );
        screen.show(
            Event::Step(StepProgress::Done {
                id: 1,
                elapsed: Duration::ZERO,
            }),
            now,
        );
        screen.finish(now);
        assert_eq!(
            rows(&screen.out),
            [
                "[+] Building 0.0s (3/3) FINISHED",
                " => [internal] load build definiti… 0.0s",
                " => [internal] load build context   0.0s",
                " => [1/1] COPY . /app               0.0s",
            ]
        );
    }

    #[test]
    fn a_layer_compressed_for_a_push_is_live_under_exporting_then_a_note() {
        let mut screen = screen(false);
        let now = screen.began;
        screen.show(
            Event::Step(StepProgress::Started {
                id: 1,
                name: "[1/1] RUN make".into(),
            }),
            now,
        );
        screen.show(
            Event::Step(StepProgress::Done {
                id: 1,
                elapsed: Duration::ZERO,
            }),
            now,
        );
        let layer = crate::digest::sha256(b"layer");
        let work = |state, done| {
            Event::Work(Work {
                kind: super::super::work::WorkKind::Export {
                    layer: layer.clone(),
                },
                state,
                done,
                total: Some(4 << 20),
                elapsed: Duration::from_secs(2),
            })
        };
        screen.show(work(WorkState::Running, 2 << 20), now);
        screen.draw(now, false);
        let live = rows(&screen.out);
        assert!(
            live.iter()
                .any(|row| row.starts_with(" => => exporting layer")),
            "{live:?}"
        );
        screen.show(work(WorkState::Finished, 4 << 20), now);
        screen.finish(now);
        let rows = rows(&screen.out);
        // (The summary, not sent here, is what ends the group.)
        assert!(rows[2].contains("exporting to image"), "{rows:?}");
        assert!(rows[3].starts_with(" => => exported layer"), "{rows:?}");
        assert!(
            !rows.iter().any(|row| row.contains("exporting layer")),
            "{rows:?}"
        );
    }

    #[test]
    fn what_follows_the_last_step_is_exporting_to_image() {
        let mut screen = Screen::new(Vec::new(), || (100, 30), false);
        let now = screen.began;
        let blob = crate::digest::sha256(b"layer");
        let id = crate::digest::sha256(b"config");
        let later = |ms| now + Duration::from_millis(ms);
        screen.show(
            Event::Step(StepProgress::Started {
                id: 1,
                name: "[1/1] RUN true".into(),
            }),
            now,
        );
        screen.show(
            Event::Step(StepProgress::Done {
                id: 1,
                elapsed: Duration::from_millis(100),
            }),
            later(100),
        );
        for event in [
            Event::BlobStarted {
                digest: blob.clone(),
                direction: Direction::Upload,
                total: Some(4096),
            },
            Event::BlobFinished {
                digest: blob.clone(),
                direction: Direction::Upload,
                outcome: BlobOutcome::Transferred,
            },
            Event::Status("pushed r.example/app:1@sha256:x".into()),
        ] {
            screen.show(event, later(300));
        }
        screen.show(
            Event::Summary(crate::progress::Summary {
                steps_run: 1,
                steps_cached: 0,
                elapsed: Duration::from_millis(400),
                manifest: crate::digest::sha256(b"manifest"),
                id: id.clone(),
                names: vec!["r.example/app:1".into()],
            }),
            later(400),
        );
        screen.finish(later(400));
        let rows = rows_at(&screen.out, 100);
        let pad = |text: &str, time: &str| format!("{text:<96}{time}");
        assert_eq!(
            rows[..7],
            [
                "[+] Building 0.4s (2/2) FINISHED".to_owned(),
                pad(" => [1/1] RUN true", "0.1s"),
                pad(" => exporting to image", "0.3s"),
                format!(" => => {} pushed 4.0 KiB", &blob.digest()[..12]),
                " => => pushed r.example/app:1@sha256:x".to_owned(),
                format!(" => => writing image {id}"),
                " => => naming to r.example/app:1".to_owned(),
            ]
        );
        assert!(
            rows[7].starts_with("built in 0.4s: 1 step run"),
            "{rows:#?}"
        );
    }

    #[test]
    fn a_tall_view_shows_its_header_and_last_rows_until_it_ends() {
        let mut screen = Screen::new(Vec::new(), || (40, 6), false);
        let now = screen.began;
        for id in 1..=10 {
            screen.show(
                Event::Step(StepProgress::Started {
                    id,
                    name: format!("[{id}/10] RUN step"),
                }),
                now,
            );
            screen.show(Event::Step(StepProgress::Cached { id }), now);
        }
        screen.draw(now, false);
        assert_eq!(screen.drawn, 5);
        screen.finish(now);
        let rows = rows(&screen.out);
        assert_eq!(rows.len(), 11, "{rows:#?}");
        assert_eq!(rows[0], "[+] Building 0.0s (10/10) FINISHED");
    }

    #[test]
    fn colour_is_off_for_no_color_and_dumb_terminals() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert!(colour_wanted(env(&[("TERM", "xterm")])));
        assert!(colour_wanted(env(&[("NO_COLOR", "")])));
        assert!(!colour_wanted(env(&[("NO_COLOR", "1")])));
        assert!(!colour_wanted(env(&[("TERM", "dumb")])));
    }

    #[test]
    fn fit_puts_the_suffix_at_the_right_edge() {
        assert_eq!(fit("#1 FROM x", "CACHED", 20), "#1 FROM x     CACHED");
        assert_eq!(fit("#1 FROM x", "CACHED", 20).width(), 20);
    }

    #[test]
    fn fit_cuts_the_text_not_the_suffix() {
        assert_eq!(fit("#2 RUN make all", "1.2s", 12), "#2 RUN… 1.2s");
        // Too narrow even for the suffix: cut at the edge all the same.
        assert_eq!(fit("#2 RUN make", "CACHED", 4), " CAC");
    }

    #[test]
    fn truncate_counts_columns_not_bytes() {
        assert_eq!(truncate("héllo", 3), "hél");
        // Wide characters take two columns and are not split.
        assert_eq!(truncate("日本語", 5), "日本");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(cut("日本語", 5), "日本…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
