//! Rootless user namespaces: the ID maps a user's `/etc/subuid` and
//! `/etc/subgid` ranges allow (see [`idmap`]), and filesystem work done as
//! root of such a namespace, so that owners stay exact on disk.
//!
//! A rootless RUN step sees files through its user namespace: on-disk owner
//! `uid` (the invoking user) is its root, subordinate ID `start + n - 1` its
//! user `n`. For the step to see a base image's `/etc/shadow` as `0:42`, the
//! snapshot must hold it as the host ID the namespace maps 42 to, and only a
//! process inside such a namespace may give files those owners. So layers are
//! unpacked by a re-executed helper, `builder __userns`, that makes a user
//! namespace mapped like the steps' and extracts there ([`extract_layer`]).
//! Without a range (or as root) extraction stays in-process. Trees holding
//! files of subordinate IDs are removed the same way when the user's own
//! rights do not suffice ([`remove_in_namespace`]), and a step's overlay
//! upper directory (or copied rootfs, [`copy_tree`]) is read there to write
//! its layer ([`NamespaceDiff`]).

mod helper;
mod idmap;
mod jobs;
mod range;

pub(crate) use helper::main as helper_main;
pub use idmap::IdMapError;
pub(crate) use idmap::{IdMap, IdMapSummary, find_in_path};
pub use jobs::{NamespaceDiff, UsernsError, copy_tree, extract_layer, remove_in_namespace};
pub use range::{Stack, in_process_options, missing_range, missing_range_notice, owner_mapping};
