//! Which files of a tree are further links to a file already seen, so a
//! multiply-linked file is stored once and then linked, in a layer tar, a
//! `COPY` layer or a copy-up snapshot alike.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// The first path seen for each inode that has more than one link.
#[derive(Debug)]
pub struct Hardlinks<P> {
    first: HashMap<(u64, u64), P>,
}

impl<P> Default for Hardlinks<P> {
    fn default() -> Self {
        Self {
            first: HashMap::new(),
        }
    }
}

impl<P: Clone> Hardlinks<P> {
    /// For the regular file now at `path`, inode `ino` on device `dev` with
    /// `nlink` links: the path where that inode was first seen, when it was
    /// (this one is then a link to it). Otherwise `None`, and `path` is
    /// remembered when more links to the inode may follow.
    pub fn first_of(&mut self, dev: u64, ino: u64, nlink: u64, path: &P) -> Option<P> {
        if nlink <= 1 {
            return None;
        }
        match self.first.entry((dev, ino)) {
            Entry::Occupied(first) => Some(first.get().clone()),
            Entry::Vacant(slot) => {
                slot.insert(path.clone());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_path_of_a_multiply_linked_inode_names_the_first() {
        let mut links = Hardlinks::default();
        assert_eq!(links.first_of(1, 7, 2, &"a"), None);
        assert_eq!(links.first_of(1, 7, 2, &"b"), Some("a"));
        assert_eq!(links.first_of(1, 7, 2, &"c"), Some("a"));
        // Same inode number on another device is another file.
        assert_eq!(links.first_of(2, 7, 2, &"d"), None);
    }

    #[test]
    fn a_file_with_one_link_is_never_remembered() {
        let mut links = Hardlinks::default();
        assert_eq!(links.first_of(1, 9, 1, &"a"), None);
        assert_eq!(links.first_of(1, 9, 2, &"b"), None);
        assert_eq!(links.first_of(1, 9, 2, &"c"), Some("b"));
    }
}
