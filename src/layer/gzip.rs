//! Deterministic block-parallel gzip, the way pigz does it.
//!
//! The uncompressed stream is cut into fixed [`BLOCK_SIZE`] blocks; each
//! block is deflated on its own (on a small pool of worker threads) with
//! the previous block's last 32 KiB as its dictionary, and ended with a
//! sync flush, the last block ending the deflate stream. The blocks are
//! written in order inside one gzip member whose CRC-32 is combined from
//! the blocks' CRCs. Each block's bytes depend only on its own input and
//! that dictionary, so the output is the same for the same input whatever
//! the number of workers, how the input was chunked or how threads were
//! scheduled: layer digests stay reproducible across machines.
//!
//! [`GZIP_LEVEL`] and [`BLOCK_SIZE`] are pinned: changing either changes
//! the digest of every gzip layer, which breaks every cache and makes
//! pushed layers differ from earlier builds of the same tree.

use flate2::{Compress, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The pinned gzip level (zlib-rs backend). Changing it changes every
/// gzip layer digest.
///
/// Chosen by measurement (`benches/layer.rs`, zlib-rs 0.6): against level
/// 6, level 5 made blobs 0.2% (/usr/share), 0.3% (/usr/bin) and 1.7%
/// (the generated tree) larger for 13%, 20% and 57% more MB per
/// CPU-second; level 4 cost 1.2–2.4% in size for 25–78%, level 1 25–28%.
pub const GZIP_LEVEL: u32 = 5;

/// The pinned size of the blocks deflated independently. Changing it
/// changes every gzip layer digest.
pub const BLOCK_SIZE: usize = 128 * 1024;

/// How much of the previous block primes the next one: deflate's window.
const DICTIONARY_SIZE: usize = 32 * 1024;

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
    /// cut, into one gzip member written to `out`, and returns `out`.
    /// Stops at the first write or deflate error; the rest of `chunks`
    /// is then left unread.
    pub fn compress<W: Write>(
        &self,
        chunks: impl IntoIterator<Item = Vec<u8>>,
        mut out: W,
    ) -> io::Result<W> {
        let workers = self.workers.get();
        let (jobs, queue) = sync_channel::<Job>(workers);
        let queue = Mutex::new(queue);
        std::thread::scope(|scope| {
            // `jobs` is dropped on every return from here, which stops the
            // workers already started; the scope then waits for them.
            for _ in 0..workers {
                std::thread::Builder::new()
                    .name("gzip-deflate".to_owned())
                    .spawn_scoped(scope, || deflate_jobs(&queue, self.level))?;
            }
            let mut writer = InOrder {
                out: &mut out,
                jobs,
                pending: VecDeque::new(),
                in_flight: workers.saturating_mul(BLOCKS_PER_WORKER),
                crc: Crc::new(),
            };
            writer.run(chunks, self.level)
        })?;
        Ok(out)
    }
}

/// One block to deflate, with what it needs to be deflated on its own.
struct Block {
    data: Vec<u8>,
    /// The previous block's last [`DICTIONARY_SIZE`] bytes; empty for the first.
    dictionary: Vec<u8>,
    /// Whether this block ends the stream.
    last: bool,
}

/// A block handed to a worker, with where its result goes.
struct Job {
    block: Block,
    done: SyncSender<io::Result<Deflated>>,
}

/// A deflated block and the CRC-32 of its uncompressed bytes.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

/// The dispatching side: cuts the input into blocks, hands them to the
/// workers and writes their results in input order.
struct InOrder<'o, W> {
    out: &'o mut W,
    jobs: SyncSender<Job>,
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    in_flight: usize,
    crc: Crc,
}

impl<W: Write> InOrder<'_, W> {
    fn run(&mut self, chunks: impl IntoIterator<Item = Vec<u8>>, level: u32) -> io::Result<()> {
        self.out.write_all(&header(level))?;
        let mut block = Vec::with_capacity(BLOCK_SIZE);
        let mut dictionary = Vec::new();
        for chunk in chunks {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                if block.len() == BLOCK_SIZE {
                    // More bytes follow, so this full block is not the last.
                    let tail = block.len().saturating_sub(DICTIONARY_SIZE);
                    let next_dictionary = block.get(tail..).unwrap_or_default().to_vec();
                    let data = std::mem::replace(&mut block, Vec::with_capacity(BLOCK_SIZE));
                    let dictionary = std::mem::replace(&mut dictionary, next_dictionary);
                    self.submit(Block {
                        data,
                        dictionary,
                        last: false,
                    })?;
                }
                let (head, tail) = rest.split_at(rest.len().min(BLOCK_SIZE - block.len()));
                block.extend_from_slice(head);
                rest = tail;
            }
        }
        self.submit(Block {
            data: block,
            dictionary,
            last: true,
        })?;
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        let mut trailer = [0u8; 8];
        let (crc, size) = trailer.split_at_mut(4);
        crc.copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input size modulo 2^32, which `amount` is.
        size.copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)
    }

    fn submit(&mut self, block: Block) -> io::Result<()> {
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
        let deflated = next.recv().map_err(|_| workers_stopped())??;
        self.out.write_all(&deflated.bytes)?;
        self.crc.combine(&deflated.crc);
        Ok(())
    }
}

fn workers_stopped() -> io::Error {
    io::Error::other("a gzip compression worker stopped")
}

/// The fixed gzip member header: no name, no mtime, "unknown" OS, so that
/// it is the same on every machine (flate2's `GzEncoder` header).
fn header(level: u32) -> [u8; 10] {
    let extra_flags = match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 255]
}

/// A worker: deflates blocks from the shared queue until it closes.
fn deflate_jobs(queue: &Mutex<Receiver<Job>>, level: u32) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { block, done }) = job else {
            return;
        };
        // A fresh deflate state for each block: one reset after another
        // block keeps some of that block's state (zlib-rs), which made a
        // block's bytes depend on which worker had deflated which block
        // before it.
        let mut compress = Compress::new(flate2::Compression::new(level), false);
        // The writer may have stopped on an error and no longer listen.
        let _ = done.send(deflate(&mut compress, &block));
    }
}

/// Deflates one block as a raw deflate fragment: primed with its
/// dictionary, ended by a sync flush (or the final block for the last).
fn deflate(compress: &mut Compress, block: &Block) -> io::Result<Deflated> {
    if !block.dictionary.is_empty() {
        compress
            .set_dictionary(&block.dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if block.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut bytes = Vec::with_capacity(block.data.len() / 2 + 64);
    let mut input = block.data.as_slice();
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity().max(4096));
        }
        let (before, written) = (compress.total_in(), bytes.len());
        let status = compress
            .compress_vec(input, &mut bytes, flush)
            .map_err(io::Error::other)?;
        let consumed = compress.total_in().saturating_sub(before);
        input = input
            .get(usize::try_from(consumed).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
        // A flush is complete when deflate leaves output space unused.
        let room_left = bytes.len() < bytes.capacity();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if input.is_empty() && room_left && !block.last => break,
            Status::Ok | Status::BufError
                if consumed == 0 && bytes.len() == written && room_left =>
            {
                return Err(io::Error::other("deflate made no progress"));
            }
            Status::Ok | Status::BufError => {}
        }
    }
    let mut crc = Crc::new();
    crc.update(&block.data);
    Ok(Deflated { bytes, crc })
}
