//! The progress event type and the sending half producers hold.

use oci_spec::image::Digest;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Which way a blob travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a registry into the store.
    Download,
    /// From the store to a registry.
    Upload,
}

/// How a blob ended up where it had to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Its bytes were sent or received.
    Transferred,
    /// Nothing to do: the destination already had it.
    AlreadyPresent,
    /// The registry linked it from another repository of its own.
    Mounted {
        /// The repository it was mounted from.
        from: String,
    },
}

/// Where an [`Event::Internal`] phase is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalState {
    /// It began.
    Started,
    /// It is done (begun now if it was never said to start); `detail`
    /// says what it moved (`transferring context: 1.2 MiB`).
    Done {
        /// A line under it.
        detail: Option<String>,
    },
    /// It failed (the build's error says why).
    Failed,
}

/// Something worth showing happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A blob transfer begins; `total` is its size when known.
    BlobStarted {
        digest: Digest,
        direction: Direction,
        total: Option<u64>,
    },
    /// `done` bytes of the blob have moved so far (absolute, not a delta;
    /// it may go back when a transfer restarts).
    BlobProgress { digest: Digest, done: u64 },
    /// The blob is done.
    BlobFinished {
        digest: Digest,
        direction: Direction,
        outcome: BlobOutcome,
    },
    /// A one-line status message ("pulled …", "pushed …").
    Status(String),
    /// A build step's progress.
    Step(super::step::StepProgress),
    /// A phase the build waits on that is no Dockerfile step (reading the
    /// Dockerfile or the build context), which the tty view shows as
    /// buildx's `[internal] NAME` lines; plain and rawjson leave it out.
    Internal {
        /// What it does: `load build context`.
        name: String,
        /// Where it is.
        state: InternalState,
    },
    /// A long phase outside any step (compressing a layer for a push or
    /// an export).
    Work(super::work::Work),
    /// The build is done: the last event of a successful build.
    Summary(super::summary::Summary),
}

/// The sending half of a progress stream; cloning is cheap, and sending
/// never fails or blocks (a closed or absent receiver drops the event).
#[derive(Debug, Clone, Default)]
pub struct ProgressSender(Option<UnboundedSender<Event>>);

impl ProgressSender {
    /// A sender and the receiver a renderer (or a test) reads from.
    pub fn channel() -> (Self, UnboundedReceiver<Event>) {
        let (tx, rx) = unbounded_channel();
        (Self(Some(tx)), rx)
    }

    /// A sender that discards everything.
    pub fn discard() -> Self {
        Self(None)
    }

    /// Sends one event.
    pub fn send(&self, event: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }

    /// A sender that does not keep the stream open: for what may outlive
    /// the build's progress (a store's blob source), so the renderer still
    /// ends when the real senders are dropped.
    pub fn downgrade(&self) -> WeakProgressSender {
        WeakProgressSender(self.0.as_ref().map(UnboundedSender::downgrade))
    }
}

/// A [`ProgressSender`] that does not keep the stream open: events sent
/// after every real sender is gone are dropped.
#[derive(Debug, Clone)]
pub struct WeakProgressSender(Option<tokio::sync::mpsc::WeakUnboundedSender<Event>>);

impl WeakProgressSender {
    /// The sender, while the stream is open; a discarding one after.
    pub fn upgrade(&self) -> ProgressSender {
        ProgressSender(self.0.as_ref().and_then(|weak| weak.upgrade()))
    }
}
