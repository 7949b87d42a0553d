//! Owners as a layer records them. A rootless step runs in a user
//! namespace, so what its root creates is owned on disk by the invoking
//! user (or a subordinate ID); the layer must record the IDs the step saw
//! (0 for root), as BuildKit and Buildah write rootless layers.

/// A contiguous range of IDs mapped into a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First ID inside the namespace.
    pub inside: u32,
    /// First ID outside (on disk).
    pub outside: u32,
    /// Number of IDs.
    pub count: u32,
}

impl IdRange {
    /// The inside ID of `outside`, when the range holds it.
    fn inside_of(&self, outside: u32) -> Option<u32> {
        let offset = outside.checked_sub(self.outside)?;
        (offset < self.count).then(|| self.inside.saturating_add(offset))
    }

    /// The outside ID of `inside`, when the range holds it.
    fn outside_of(&self, inside: u32) -> Option<u32> {
        let offset = inside.checked_sub(self.inside)?;
        (offset < self.count).then(|| self.outside.saturating_add(offset))
    }
}

/// The ID a user namespace shows for an outside ID it does not map
/// (the kernel's default `overflowuid`/`overflowgid`).
pub const OVERFLOW_ID: u32 = 65534;

/// How owners on disk become owners in a layer read from a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OwnerMap {
    /// As they are (the steps ran without a user namespace).
    #[default]
    Identity,
    /// Through the inverse of a rootless user namespace's maps: at most the
    /// invoking user's own ID and one subordinate range each.
    Namespace {
        /// User ID ranges.
        uids: [Option<IdRange>; 2],
        /// Group ID ranges.
        gids: [Option<IdRange>; 2],
    },
}

impl OwnerMap {
    /// A user namespace mapping only `uid` and `gid` (as root).
    pub fn single(uid: u32, gid: u32) -> OwnerMap {
        let own = |id| {
            Some(IdRange {
                inside: 0,
                outside: id,
                count: 1,
            })
        };
        OwnerMap::Namespace {
            uids: [own(uid), None],
            gids: [own(gid), None],
        }
    }

    /// The layer's user ID for the on-disk `uid`.
    pub fn uid(&self, uid: u32) -> u32 {
        match self {
            OwnerMap::Identity => uid,
            OwnerMap::Namespace { uids, .. } => inside(uids, uid),
        }
    }

    /// The layer's group ID for the on-disk `gid`.
    pub fn gid(&self, gid: u32) -> u32 {
        match self {
            OwnerMap::Identity => gid,
            OwnerMap::Namespace { gids, .. } => inside(gids, gid),
        }
    }
}

impl OwnerMap {
    /// The on-disk user and group IDs that a step sees as `uid` and `gid`
    /// (to give a directory made for a step the owner it asks for);
    /// `None` when the user namespace does not map them.
    pub fn on_disk(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        match self {
            OwnerMap::Identity => Some((uid, gid)),
            OwnerMap::Namespace { uids, gids } => {
                let outside = |ranges: &[Option<IdRange>; 2], id| {
                    ranges.iter().flatten().find_map(|r| r.outside_of(id))
                };
                Some((outside(uids, uid)?, outside(gids, gid)?))
            }
        }
    }
}

fn inside(ranges: &[Option<IdRange>; 2], outside: u32) -> u32 {
    ranges
        .iter()
        .flatten()
        .find_map(|r| r.inside_of(outside))
        .unwrap_or(OVERFLOW_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_disk_ids_are_the_inverse() {
        let map = OwnerMap::single(1000, 1001);
        assert_eq!(map.on_disk(0, 0), Some((1000, 1001)));
        assert_eq!(map.on_disk(7, 0), None);
        assert_eq!(OwnerMap::Identity.on_disk(7, 8), Some((7, 8)));
    }

    #[test]
    fn the_invoking_user_is_root_and_subordinate_ids_shift() {
        let own = |id| IdRange {
            inside: 0,
            outside: id,
            count: 1,
        };
        let sub = IdRange {
            inside: 1,
            outside: 100_000,
            count: 65_536,
        };
        let map = OwnerMap::Namespace {
            uids: [Some(own(1000)), Some(sub)],
            gids: [Some(own(1001)), None],
        };
        assert_eq!(map.uid(1000), 0);
        assert_eq!(map.uid(100_000), 1);
        assert_eq!(map.uid(100_999), 1000);
        assert_eq!(map.uid(4), OVERFLOW_ID);
        assert_eq!(map.gid(1001), 0);
        assert_eq!(map.gid(100_000), OVERFLOW_ID);
        assert_eq!(OwnerMap::Identity.uid(1000), 1000);
    }
}
