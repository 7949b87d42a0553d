//! Progress as a stream of events: pull, push (and later the executor) send
//! [`Event`]s through a [`ProgressSender`]; renderers draw them on a terminal
//! ([`tty`]) or as plain lines ([`plain`]). Producers know nothing of
//! terminals; tests can collect the events instead of drawing them.

pub mod event;
pub mod plain;
pub mod step;
pub mod tty;

pub use event::{BlobOutcome, Direction, Event, ProgressSender};
pub use step::StepProgress;

use std::io::IsTerminal as _;
use std::thread::JoinHandle;

/// Starts the renderer that suits stderr (bars on a terminal, lines
/// otherwise) on its own thread; it ends when every sender is dropped.
pub fn spawn_renderer() -> (ProgressSender, JoinHandle<()>) {
    spawn_renderer_for(std::io::stderr().is_terminal())
}

/// Starts a renderer on its own thread: bars when `tty`, plain lines
/// otherwise (`--progress=plain` asks for lines on a terminal too).
pub fn spawn_renderer_for(tty: bool) -> (ProgressSender, JoinHandle<()>) {
    let (sender, receiver) = ProgressSender::channel();
    let handle = std::thread::spawn(move || {
        if tty {
            tty::render(receiver);
        } else {
            plain::render(receiver, &mut std::io::stderr());
        }
    });
    (sender, handle)
}
