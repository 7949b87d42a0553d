//! Go's `path/filepath.Clean` and `Dir` for slash-separated paths: Docker
//! cleans every pattern and path with them, so matching depends on their
//! exact output (`./a//b/../c` is `a/c`, `/..` is `/`, `` is `.`).

/// The shortest equivalent of `path` by purely lexical processing, as Go's
/// `filepath.Clean` on Unix.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut out = String::with_capacity(path.len());
    if rooted {
        out.push('/');
    }
    // Length of `out` below which `..` cannot backtrack.
    let mut floor = out.len();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if out.len() > floor {
                    let cut = out[floor..].rfind('/').map_or(floor, |i| floor + i);
                    out.truncate(cut);
                } else if !rooted {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str("..");
                    floor = out.len();
                }
            }
            name => {
                if out.len() > usize::from(rooted) {
                    out.push('/');
                }
                out.push_str(name);
            }
        }
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

/// All but the last element of `path`, cleaned, as Go's `filepath.Dir`.
pub fn dir(path: &str) -> String {
    let end = path.rfind('/').map_or(0, |i| i + 1);
    clean(&path[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("abc", "abc"),
            ("abc/", "abc"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../a/../b", "../../b"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("a/b/../../..", ".."),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("a/../../b", "../b"),
            ("!/x/", "!/x"),
            ("**/", "**"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn dir_matches_go() {
        for (input, want) in [
            ("file", "."),
            ("a/b", "a"),
            ("a/b/", "a/b"),
            ("/a", "/"),
            ("/", "/"),
            ("", "."),
        ] {
            assert_eq!(dir(input), want, "dir({input:?})");
        }
    }
}
