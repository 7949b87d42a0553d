//! The block-parallel gzip writer: gzip members any gunzip reads,
//! byte-identical whatever the worker count, input chunking or level, and the
//! layer digests of `write_compressed` taken over exactly those bytes.

use builder::digest::sha256;
use builder::layer::compress::{Compression, write_compressed};
use builder::layer::gzip::{BLOCK_SIZE, BlockGzip, GZIP_LEVEL};
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::process::{Command, Stdio};

/// Partly repetitive, partly random bytes, like files in an image.
fn sample(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        let state = rng.u64(..);
        if state % 3 == 0 {
            data.extend_from_slice(&state.to_le_bytes());
        } else {
            data.extend_from_slice(b"layer blob ");
        }
    }
    data.truncate(len);
    data
}

fn workers(n: usize) -> BlockGzip {
    BlockGzip::pinned().with_workers(NonZeroUsize::new(n).unwrap())
}

fn gzip(input: &[u8], compressor: BlockGzip) -> Vec<u8> {
    compressor.compress([input.to_vec()], Vec::new()).unwrap()
}

/// What `program args…` writes reading `blob` on its stdin.
fn gunzip_with(program: &str, args: &[&str], blob: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let blob = blob.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&blob));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(output.status.success(), "{program} failed: {output:?}");
    output.stdout
}

fn system_gunzip(blob: &[u8]) -> Vec<u8> {
    gunzip_with("gzip", &["-dc"], blob)
}

const SIZES: [usize; 7] = [
    0,
    1,
    BLOCK_SIZE - 1,
    BLOCK_SIZE,
    BLOCK_SIZE + 1,
    4 * BLOCK_SIZE,
    5 * BLOCK_SIZE + 12_345,
];

fn python_gunzip(blob: &[u8]) -> Vec<u8> {
    let script =
        "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))";
    gunzip_with("python3", &["-c", script], blob)
}

/// The contents of each gzip member of `blob`, in order.
fn members(blob: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = blob;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let mut content = Vec::new();
        member.read_to_end(&mut content).unwrap();
        rest = member.into_inner();
        out.push(content);
    }
    out
}

#[test]
fn output_is_one_gzip_member_a_block_that_every_gunzip_reads_back_exactly() {
    for len in SIZES {
        let input = sample(len);
        let blob = gzip(&input, BlockGzip::pinned());

        let blocks: Vec<&[u8]> = if input.is_empty() {
            vec![&[]]
        } else {
            input.chunks(BLOCK_SIZE).collect()
        };
        assert_eq!(members(&blob), blocks, "members, {len} bytes");

        let mut multi = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut multi)
            .unwrap();
        assert_eq!(multi, input, "MultiGzDecoder, {len} bytes");
        assert_eq!(system_gunzip(&blob), input, "gzip -dc, {len} bytes");
        assert_eq!(python_gunzip(&blob), input, "python3 gzip, {len} bytes");
    }
}

#[test]
fn output_is_identical_across_runs_worker_counts_and_input_chunking() {
    for len in SIZES {
        let input = sample(len);
        let reference = gzip(&input, workers(1));
        for n in [1, 2, 3, 8] {
            assert_eq!(
                gzip(&input, workers(n)),
                reference,
                "{n} workers, {len} bytes"
            );
        }
        // Odd-sized chunks that straddle block boundaries.
        let chunks: Vec<Vec<u8>> = input.chunks(7_919).map(<[u8]>::to_vec).collect();
        let chunked = workers(2).compress(chunks, Vec::new()).unwrap();
        assert_eq!(chunked, reference, "chunked input, {len} bytes");
    }
}

#[test]
fn a_binary_is_deflated_the_same_at_every_level_whatever_worker_deflates_a_block() {
    // A real executable (what layers hold) over several blocks: a block's
    // bytes must not depend on what its worker deflated before it.
    let binary = std::fs::read("/bin/busybox").expect("busybox, as the build tests use");
    let input = binary.get(..6 * BLOCK_SIZE).unwrap_or(&binary);
    for level in 0..=9 {
        let at = |n| workers(n).with_level(level);
        let reference = gzip(input, at(1));
        for n in [3, 8] {
            assert!(
                gzip(input, at(n)) == reference,
                "level {level}, {n} workers"
            );
        }
        assert!(system_gunzip(&reference) == input, "level {level}");
    }
}

#[test]
fn independent_blocks_compress_as_well_as_one_zlib_stream() {
    // A real executable and text-like bytes over several blocks: the
    // history a block does not share with the one before costs less than
    // libdeflate gains over zlib at the same level.
    let mut input = std::fs::read("/bin/busybox").expect("busybox, as the build tests use");
    input.extend(sample(3 * BLOCK_SIZE));
    let blob = gzip(&input, workers(4));

    let mut one_stream =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    one_stream.write_all(&input).unwrap();
    let one_stream = one_stream.finish().unwrap();
    assert!(
        blob.len() <= one_stream.len(),
        "{} bytes in blocks vs {} in one stream",
        blob.len(),
        one_stream.len()
    );
    assert_eq!(system_gunzip(&blob), input);
}

#[test]
fn write_compressed_gzip_is_the_block_gzip_of_the_tar_with_matching_digests() {
    let tar = sample(3 * BLOCK_SIZE + 512);
    let (blob, digests) = write_compressed(Vec::new(), Compression::Gzip, |w| {
        w.write_all(&tar)
            .map_err(|source| builder::layer::LayerError::Write {
                action: "test tar",
                source,
            })
    })
    .unwrap();
    assert_eq!(blob, gzip(&tar, workers(1)));
    assert_eq!(digests.diff_id, sha256(&tar));
    assert_eq!(digests.digest, sha256(&blob));
    assert_eq!(digests.size, blob.len() as u64);
}

/// A writer that accepts `room` bytes and then fails.
struct FullDisk {
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_stops_compression_with_its_error() {
    let input = sample(16 * BLOCK_SIZE);
    for room in [0, 5, 20_000] {
        let chunks = input.chunks(BLOCK_SIZE / 3).map(<[u8]>::to_vec);
        let err = workers(2)
            .compress(chunks, FullDisk { room })
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "room {room}");
    }
}
