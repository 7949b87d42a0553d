//! Layer throughput: write + compress a 200 MB tree as a layer, then
//! decompress and extract it, for gzip and zstd; then gzip alone over the
//! same tar in memory at each candidate level, in parallel blocks and, for
//! reference, as the single-threaded one-stream encoder layers used
//! before. Prints MB/s (of uncompressed tar bytes) and blob sizes, and for
//! gzip alone also MB per CPU-second, which other load on the machine
//! changes less than wall time. Run with `cargo bench --bench layer`;
//! set `LAYER_BENCH_GZIP_TREE=/some/dir` to measure the gzip levels over
//! a real tree instead of the generated one.

use builder::layer::compress::{Compression, decompress, write_compressed};
use builder::layer::diff::full_tree;
use builder::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use builder::layer::gzip::{BlockGzip, GZIP_LEVEL};
use builder::layer::tar::{WriteOptions, write_changes};
use std::fs;
use std::io::{BufWriter, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Instant;

const TOTAL: usize = 200 * 1024 * 1024;
const FILE_SIZE: usize = 256 * 1024;

/// Files of text-like, partly repetitive bytes (compressible, as binaries
/// and sources in images are), 64 per directory.
fn make_tree(root: &Path) {
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    let words: Vec<&[u8]> = vec![
        b"layer ",
        b"image ",
        b"build ",
        b"cache ",
        b"\n",
        b"0x1f ",
        b"snapshot ",
    ];
    for i in 0..TOTAL / FILE_SIZE {
        let dir = root.join(format!("d{:03}", i / 64));
        fs::create_dir_all(&dir).expect("creating a bench directory");
        let mut data = Vec::with_capacity(FILE_SIZE);
        while data.len() < FILE_SIZE {
            let state = rng.u64(..);
            if state % 4 == 0 {
                data.extend_from_slice(&state.to_le_bytes());
            } else {
                data.extend_from_slice(words[(state % words.len() as u64) as usize]);
            }
        }
        data.truncate(FILE_SIZE);
        fs::write(dir.join(format!("f{i:05}")), data).expect("writing a bench file");
    }
}

fn main() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    for compression in [Compression::Gzip, Compression::Zstd] {
        let blob_path = tmp.path().join("blob");
        let start = Instant::now();
        let out = BufWriter::new(fs::File::create(&blob_path).expect("creating the blob"));
        let (_, digests) = write_compressed(out, compression, |w| {
            write_changes(&tree, full_tree(&tree)?, w, &WriteOptions::default()).map(|_| ())
        })
        .expect("writing the layer");
        let write_secs = start.elapsed().as_secs_f64();
        let tar_bytes = TOTAL as u64;

        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).expect("creating the extraction root");
        let start = Instant::now();
        let blob = fs::File::open(&blob_path).expect("opening the blob");
        let reader = decompress(blob, compression.media_type()).expect("decompressing");
        let options = ExtractOptions {
            whiteouts: WhiteoutStyle::Apply,
            ownership: Ownership::Preserve,
        };
        let report = extract(reader, &dest, &options).expect("extracting");
        let extract_secs = start.elapsed().as_secs_f64();
        assert_eq!(report.diff_id, digests.diff_id);
        println!(
            "{compression:?}: {:.0} MB tree -> {:.1} MB blob; write+compress {:.1} MB/s ({write_secs:.2} s); decompress+extract {:.1} MB/s ({extract_secs:.2} s)",
            mb(tar_bytes),
            mb(digests.size),
            mb(tar_bytes) / write_secs,
            mb(tar_bytes) / extract_secs,
        );
        fs::remove_dir_all(&dest).expect("cleaning up");
    }
    match std::env::var_os("LAYER_BENCH_GZIP_TREE") {
        Some(real) => gzip_levels(Path::new(&real)),
        None => gzip_levels(&tree),
    }
}

/// Gzip alone (no tar production, no hashing) over the tree's tar held in
/// memory: what each level costs and saves, and what the blocks gain
/// over one stream.
fn gzip_levels(tree: &Path) {
    let mb = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let mut tar = Vec::with_capacity(TOTAL + TOTAL / 8);
    write_changes(
        tree,
        full_tree(tree).expect("walking"),
        &mut tar,
        &WriteOptions::default(),
    )
    .expect("writing the tar");
    let report = |label: &str, level: u32, run: &dyn Fn() -> Vec<u8>| {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let blob = run();
        let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        println!(
            "gzip level {level} {label}: {:.1} MB/s, {:.1} MB/CPU-s, {:.1} MB blob ({:.1}% of the tar)",
            mb(tar.len()) / secs,
            mb(tar.len()) / cpu,
            mb(blob.len()),
            100.0 * blob.len() as f64 / tar.len() as f64,
        );
    };
    let chunks = || tar.chunks(1024 * 1024).map(<[u8]>::to_vec);
    for level in [1, 2, 3, 4, 5, 6] {
        let pinned = if level == GZIP_LEVEL { " (pinned)" } else { "" };
        let gzip = BlockGzip::pinned().with_level(level);
        report(&format!("blocks, all cores{pinned}"), level, &|| {
            gzip.compress(chunks(), Vec::new()).expect("compressing")
        });
    }
    let one_worker = BlockGzip::pinned().with_workers(NonZeroUsize::MIN);
    report("blocks, 1 worker", GZIP_LEVEL, &|| {
        one_worker
            .compress(chunks(), Vec::new())
            .expect("compressing")
    });
    // What layers were written with before the blocks: level 6, one thread.
    report("one stream (flate2 GzEncoder, before)", 6, &|| {
        let level = flate2::Compression::new(6);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
        encoder.write_all(&tar).expect("compressing");
        encoder.finish().expect("compressing")
    });
}

/// User and system CPU time of the whole process (all threads) so far.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` through the valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: zeroed is a valid rusage, and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
