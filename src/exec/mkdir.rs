//! WORKDIR's directory: BuildKit creates the working directory (and its
//! missing parents, mode 0755, owned by the stage's USER) as a file
//! operation of its own, so it is a layer like a COPY's, planned here
//! with the same planner. An existing directory makes an empty plan.

use std::collections::BTreeMap;
use std::path::Path;

use super::CopyError;
use super::copy::resolve_owner;
use super::plan::{CopyPlan, DefaultOwner, Planner};
use super::rootfs::RootfsView;

/// Plans the directory `dir` (absolute, cleaned) in the root filesystem
/// `dest` (`None` for an empty one), owned by `user` (USER's value; empty
/// is root).
pub fn plan_workdir(
    dir: &str,
    user: &str,
    dest: Option<&RootfsView>,
) -> Result<CopyPlan, CopyError> {
    let owner = if user.is_empty() {
        None
    } else {
        Some(resolve_owner(user, dest)?)
    };
    let mut planner = Planner::new(dest, owner, DefaultOwner::Root, None, None);
    planner.ensure_dir(Path::new(dir.trim_start_matches('/')))?;
    let mut options = BTreeMap::new();
    options.insert("dir".to_owned(), dir.to_owned());
    options.insert("user".to_owned(), user.to_owned());
    Ok(planner.finish(options))
}
