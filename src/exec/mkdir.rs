//! WORKDIR's directory: BuildKit creates the working directory (and its
//! missing parents, mode 0755, owned by the stage's USER) as a file
//! operation of its own, so it is a layer like a COPY's, planned here
//! with the same planner. The path resolves inside the root filesystem as
//! a COPY destination does (`/lib/app` with `/lib -> usr/lib` is
//! `/usr/lib/app`). An existing directory makes an empty plan.

use std::collections::BTreeMap;
use std::path::Path;

use super::CopyError;
use super::copy::{resolve_dest, resolve_owner};
use super::plan::{CopyPlan, DefaultOwner, DestRoot, Planner};
use super::rootfs::RootfsError;
use crate::file_kind::FileKind;

/// Plans the directory `dir` (absolute, cleaned) in the root filesystem
/// `dest` (`None` for an empty one), owned by `user` (USER's value; empty
/// is root).
pub fn plan_workdir(
    dir: &str,
    user: &str,
    dest: Option<DestRoot<'_>>,
) -> Result<CopyPlan, CopyError> {
    let view = dest.map(|d| d.view);
    let owner = if user.is_empty() {
        None
    } else {
        Some(resolve_owner(user, view)?)
    };
    let (path, existing) = resolve_dest(view, Path::new(dir.trim_start_matches('/')))?;
    if existing.is_some_and(|kind| kind != FileKind::Dir) {
        return Err(RootfsError::NotADirectory(path).into());
    }
    let mut planner = Planner::new(dest, owner, DefaultOwner::Root, None, None);
    planner.ensure_dir(&path)?;
    let mut options = BTreeMap::new();
    options.insert("dir".to_owned(), dir.to_owned());
    options.insert("user".to_owned(), user.to_owned());
    planner.finish(options)
}
