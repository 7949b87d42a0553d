//! Progress as a stream of events: the build, pull and push send
//! [`Event`]s through a [`ProgressSender`]; a renderer chosen by [`Style`]
//! draws them on a terminal ([`tty`]), as plain lines ([`plain`]), as JSON
//! lines ([`json`]) or not at all. Producers know nothing of terminals;
//! tests can collect the events instead of drawing them.

pub mod event;
pub mod json;
pub mod mode;
pub mod plain;
pub mod step;
pub mod summary;
pub mod tty;
pub mod work;

pub use event::{BlobOutcome, Direction, Event, InternalState, ProgressSender, WeakProgressSender};
pub use mode::Style;
pub use step::StepProgress;
pub use summary::{Summary, Transfers};
pub use work::{Work, WorkKind, WorkMeter, WorkState};

use std::thread::JoinHandle;

/// Starts the renderer of `style` on its own thread, drawing on stderr;
/// it ends when every sender is dropped (join it to be sure all is drawn).
pub fn spawn_renderer(style: Style) -> (ProgressSender, JoinHandle<()>) {
    let (sender, mut receiver) = ProgressSender::channel();
    let handle = std::thread::spawn(move || match style {
        Style::Tty => tty::render(receiver),
        Style::Plain => plain::render(receiver, &mut std::io::stderr()),
        Style::RawJson => json::render(receiver, &mut std::io::stderr()),
        Style::Quiet => while receiver.blocking_recv().is_some() {},
    });
    (sender, handle)
}
