//! System call numbers by name for the architectures builder filters.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
use aarch64::TABLE;
#[cfg(target_arch = "x86_64")]
use x86_64::TABLE;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TABLE: &[(&str, i64)] = &[];

/// The host's number for the system call `name`; `None` for names this
/// architecture does not have (profiles name calls of every architecture).
pub(super) fn number(name: &str) -> Option<i64> {
    TABLE
        .binary_search_by(|(known, _)| (*known).cmp(name))
        .ok()
        .map(|i| TABLE[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_finds_the_host_numbers() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number("getppid"), Some(libc::SYS_getppid));
        assert_eq!(number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(number("io_uring_setup"), Some(libc::SYS_io_uring_setup));
        assert_eq!(number("chown32"), None);
    }
}
