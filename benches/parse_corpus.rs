//! Front-end throughput: parses and lowers the whole real-world Dockerfile
//! corpus (`../shared/conformance/corpus/realworld`) repeatedly and prints
//! files/s and MB/s. Run with `cargo bench --bench parse_corpus`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let shared = std::env::var_os("BUILDER_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("conformance/corpus/realworld");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIPPED: {} is absent", dir.display());
        return;
    };
    let files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();

    let mut rounds = 0u32;
    let mut parsed = 0usize;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for (name, data) in &files {
            if let Ok(tree) = builder::dockerfile::parse_bytes(name, data) {
                parsed += usize::from(builder::dockerfile::lower(&tree).is_ok());
            }
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let total_files = files.len() as f64 * f64::from(rounds);
    println!(
        "parse+lower: {} files ({:.1} KiB) x {rounds} rounds in {secs:.2}s: {:.0} files/s, {:.1} MB/s ({parsed} lowered)",
        files.len(),
        bytes as f64 / 1024.0,
        total_files / secs,
        bytes as f64 * f64::from(rounds) / secs / 1e6,
    );
}
