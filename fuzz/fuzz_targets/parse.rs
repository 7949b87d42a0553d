//! Arbitrary bytes through the whole front end: parse (non-UTF-8 input is an
//! error, not a panic), dump, and lower. None of it may panic.
#![no_main]

use builder::dockerfile::{self, dump};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As bytes (the CLI path) and as lossy text (so invalid UTF-8 does not
    // hide the rest of the input from the parser).
    let lossy = String::from_utf8_lossy(data);
    for result in [
        dockerfile::parse_bytes("Dockerfile", data),
        dockerfile::parse("Dockerfile", &lossy),
    ] {
        match result {
            Ok(tree) => {
                let text = dump::dump(&tree);
                assert_eq!(text.lines().count(), tree.nodes.len());
                if let Err(e) = dockerfile::lower(&tree) {
                    let _ = format!("{:?}", miette::Report::new(e));
                }
            }
            Err(e) => {
                let _ = format!("{:?}", miette::Report::new(e));
            }
        }
    }
});
