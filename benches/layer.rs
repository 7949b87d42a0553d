//! Layer throughput: write + compress a 200 MB tree as a layer, then
//! decompress and extract it, for gzip and zstd. Prints MB/s (of
//! uncompressed tar bytes). Run with `cargo bench --bench layer`.

use builder::layer::compress::{Compression, decompress, write_compressed};
use builder::layer::diff::full_tree;
use builder::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use builder::layer::tar::{WriteOptions, write_changes};
use std::fs;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

const TOTAL: usize = 200 * 1024 * 1024;
const FILE_SIZE: usize = 256 * 1024;

/// Files of text-like, partly repetitive bytes (compressible, as binaries
/// and sources in images are), 64 per directory.
fn make_tree(root: &Path) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
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
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
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
}
