//! Deterministic block-parallel gzip, the way BGZF and pigz's
//! independent mode do it.
//!
//! The uncompressed stream is cut into fixed [`BLOCK_SIZE`] blocks; each
//! block is deflated on its own by libdeflate (on a small pool of worker
//! threads) into one complete gzip member, and the members are written in
//! input order. A gzip file may hold several members, read back as the
//! concatenation of their contents by every gzip reader layers meet (Go's
//! `compress/gzip`, which Docker, containerd, skopeo and umoci use; zlib's
//! `gunzip`, pigz, Python's `gzip`). Each member's bytes depend only on its
//! own block, so the output is the same for the same input whatever the
//! number of workers, how the input was chunked or how threads were
//! scheduled: layer digests stay reproducible across machines.
//!
//! [`GZIP_LEVEL`], [`BLOCK_SIZE`] and the libdeflate version (pinned in
//! Cargo.lock) fix the bytes: changing any of them changes the digest of
//! every gzip layer, which breaks every cache and makes pushed layers
//! differ from earlier builds of the same tree ([`FORMAT`] names them).

use libdeflater::{CompressionLvl, Compressor};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The pinned gzip level (libdeflate's, 0–9 used). Changing it changes
/// every gzip layer digest.
///
/// Chosen by measurement (one core, 1 MiB members, libdeflate 1.26):
/// against zlib-rs level 5 in 128 KiB blocks primed with the previous
/// block (the writer before this one), level 5 is 1.5× (a tar of
/// /usr/share/doc), 1.8× (/usr/bin and its libraries) and 2.0× (random
/// bytes) as fast with blobs 0.4% and 3% smaller; level 6 gained another
/// 0.2–0.7% in size for 10–17% more time.
pub const GZIP_LEVEL: u32 = 5;

/// The pinned size of the blocks deflated independently, each one gzip
/// member. Changing it changes every gzip layer digest.
///
/// Large enough that a member rarely loses to the 32 KiB of history it
/// does not share with the one before (1 MiB members were 0.3–1.1%
/// smaller than 128 KiB ones), small enough for every core to get blocks
/// of a layer of a few MiB.
pub const BLOCK_SIZE: usize = 1024 * 1024;

/// What the gzip writer's bytes are, beside the level: a compressed-blob
/// memo keeps this in its names so a blob an earlier writer made (zlib-rs,
/// one member) is never taken for this one's.
pub const FORMAT: &str = "m";

/// Blocks in flight per worker (queued, deflating, or waiting to be
/// written in order): keeps every worker busy with bounded memory.
const BLOCKS_PER_WORKER: usize = 2;

/// A gzip compressor that deflates blocks on several threads and still
/// writes the same bytes for the same input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGzip {
    level: u32,
    workers: NonZeroUsize,
}

impl BlockGzip {
    /// The pinned level, with one worker per available core.
    pub fn pinned() -> Self {
        Self {
            level: GZIP_LEVEL,
            workers: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// The same compressor with `workers` deflating threads; the output
    /// does not depend on it.
    pub fn with_workers(self, workers: NonZeroUsize) -> Self {
        Self { workers, ..self }
    }

    /// The same compressor at another level (0–9, higher is taken as 9):
    /// `compression-level=`, and measuring; layers are written at
    /// [`GZIP_LEVEL`] unless a level is asked.
    pub fn with_level(self, level: u32) -> Self {
        Self {
            level: level.min(9),
            ..self
        }
    }

    /// Compresses the bytes of `chunks`, in order and however they are
    /// cut, into gzip members written to `out` (one for each
    /// [`BLOCK_SIZE`] of input, at least one), and returns `out`. Stops at
    /// the first write or deflate error; the rest of `chunks` is then left
    /// unread.
    pub fn compress<W: Write>(
        &self,
        chunks: impl IntoIterator<Item = Vec<u8>>,
        mut out: W,
    ) -> io::Result<W> {
        let level = CompressionLvl::new(i32::try_from(self.level).unwrap_or(9))
            .map_err(|e| io::Error::other(format!("gzip level {}: {e:?}", self.level)))?;
        let workers = self.workers.get();
        let (jobs, queue) = sync_channel::<Job>(workers);
        let queue = Mutex::new(queue);
        std::thread::scope(|scope| {
            // `jobs` is dropped on every return from here, which stops the
            // workers already started; the scope then waits for them.
            for _ in 0..workers {
                std::thread::Builder::new()
                    .name("gzip-deflate".to_owned())
                    .spawn_scoped(scope, || deflate_jobs(&queue, level))?;
            }
            let mut writer = InOrder {
                out: &mut out,
                jobs,
                pending: VecDeque::new(),
                in_flight: workers.saturating_mul(BLOCKS_PER_WORKER),
            };
            writer.run(chunks)
        })?;
        Ok(out)
    }
}

/// A block handed to a worker, with where its member goes.
struct Job {
    block: Vec<u8>,
    done: SyncSender<io::Result<Vec<u8>>>,
}

/// The dispatching side: cuts the input into blocks, hands them to the
/// workers and writes their members in input order.
struct InOrder<'o, W> {
    out: &'o mut W,
    jobs: SyncSender<Job>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    in_flight: usize,
}

impl<W: Write> InOrder<'_, W> {
    fn run(&mut self, chunks: impl IntoIterator<Item = Vec<u8>>) -> io::Result<()> {
        let mut block = Vec::with_capacity(BLOCK_SIZE);
        for chunk in chunks {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                if block.len() == BLOCK_SIZE {
                    let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK_SIZE));
                    self.submit(full)?;
                }
                let (head, tail) = rest.split_at(rest.len().min(BLOCK_SIZE - block.len()));
                block.extend_from_slice(head);
                rest = tail;
            }
        }
        // The last block, full or not; the only one, empty, for no input:
        // a gzip file holds at least one member.
        self.submit(block)?;
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        Ok(())
    }

    fn submit(&mut self, block: Vec<u8>) -> io::Result<()> {
        if self.pending.len() >= self.in_flight {
            self.write_next()?;
        }
        let (done, receiver) = sync_channel(1);
        self.jobs
            .send(Job { block, done })
            .map_err(|_| workers_stopped())?;
        self.pending.push_back(receiver);
        Ok(())
    }

    fn write_next(&mut self) -> io::Result<()> {
        let Some(next) = self.pending.pop_front() else {
            return Ok(());
        };
        let member = next.recv().map_err(|_| workers_stopped())??;
        self.out.write_all(&member)
    }
}

fn workers_stopped() -> io::Error {
    io::Error::other("a gzip compression worker stopped")
}

/// A worker: deflates blocks from the shared queue until it closes. One
/// compressor serves every block: libdeflate keeps nothing of one call in
/// the next, so a member's bytes do not depend on the worker.
fn deflate_jobs(queue: &Mutex<Receiver<Job>>, level: CompressionLvl) {
    let mut compressor = Compressor::new(level);
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { block, done }) = job else {
            return;
        };
        // The writer may have stopped on an error and no longer listen.
        let _ = done.send(member(&mut compressor, &block));
    }
}

/// `block` as one complete gzip member, framed by libdeflate: a fixed
/// header (no name, no mtime, "unknown" OS, so that it is the same on
/// every machine), the raw deflate, CRC-32 and size.
fn member(compressor: &mut Compressor, block: &[u8]) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; compressor.gzip_compress_bound(block.len())];
    let written = compressor
        .gzip_compress(block, &mut bytes)
        .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
    bytes.truncate(written);
    Ok(bytes)
}
