//! Users and groups of an image, from its `/etc/passwd` and `/etc/group`:
//! resolving `COPY --chown=user:group` and, for `RUN`, `USER user:group`.
//! Numeric ids pass through without a lookup, as Docker does.

/// Why a user or group could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// An empty user part (`:group`, or nothing at all).
    #[error("invalid user spec `{0}`: the user part is empty")]
    Empty(String),
    /// A user name that the image's `/etc/passwd` does not list.
    #[error("unknown user `{name}`: not in the image's /etc/passwd{}", missing_file(*.passwd_present))]
    UnknownUser {
        /// The name asked for.
        name: String,
        /// Whether the image has an `/etc/passwd` at all.
        passwd_present: bool,
    },
    /// A group name that the image's `/etc/group` does not list.
    #[error("unknown group `{name}`: not in the image's /etc/group{}", missing_file(*.group_present))]
    UnknownGroup {
        /// The name asked for.
        name: String,
        /// Whether the image has an `/etc/group` at all.
        group_present: bool,
    },
}

fn missing_file(present: bool) -> &'static str {
    if present {
        ""
    } else {
        " (the file does not exist)"
    }
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The accounts an image defines. Missing files mean no named accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    users: Option<Vec<PasswdEntry>>,
    groups: Option<Vec<GroupEntry>>,
}

/// Resolved numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
}

/// What `USER` resolves to: the ids, the supplementary groups listing the
/// user and the home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessUser {
    /// User and primary group.
    pub ids: Ids,
    /// Other groups whose member list names the user, in file order.
    pub additional_gids: Vec<u32>,
    /// `HOME` for the process unless its environment sets one: the home
    /// field of the uid's passwd line (even empty), else `/` (as runc
    /// under BuildKit).
    pub home: String,
}

impl Accounts {
    /// Parses the text of `/etc/passwd` and `/etc/group` (`None` where the
    /// file does not exist). Malformed lines are skipped, as libc does.
    pub fn parse(passwd: Option<&str>, group: Option<&str>) -> Self {
        let users = passwd.map(|text| {
            text.lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?.trim();
                    let _password = fields.next()?;
                    let uid = fields.next()?.trim().parse().ok()?;
                    let gid = fields.next()?.trim().parse().ok()?;
                    let _gecos = fields.next();
                    let home = fields.next().unwrap_or_default().trim();
                    (!name.is_empty() && !name.starts_with('#')).then(|| PasswdEntry {
                        name: name.to_owned(),
                        uid,
                        gid,
                        home: home.to_owned(),
                    })
                })
                .collect()
        });
        let groups = group.map(|text| {
            text.lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?.trim();
                    let _password = fields.next()?;
                    let gid = fields.next()?.trim().parse().ok()?;
                    let members = fields
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect();
                    (!name.is_empty() && !name.starts_with('#')).then(|| GroupEntry {
                        name: name.to_owned(),
                        gid,
                        members,
                    })
                })
                .collect()
        });
        Accounts { users, groups }
    }

    /// Resolves `user[:group]` as `COPY --chown` does: a named user gives
    /// its uid and primary gid, a numeric one gives the same number for
    /// both; a group, named or numeric, overrides the gid.
    pub fn resolve_chown(&self, spec: &str) -> Result<Ids, UserError> {
        let (user, group) = split_spec(spec)?;
        let user = self.user(user)?;
        let gid = match group {
            Some(group) => self.group(group)?,
            None => user.entry.as_ref().map_or(user.uid, |e| e.gid),
        };
        Ok(Ids { uid: user.uid, gid })
    }

    /// Resolves `USER user[:group]` for a process as BuildKit does: as
    /// [`resolve_chown`](Self::resolve_chown) except that a uid without a
    /// passwd line gets gid 0, not its own number; a user with a passwd
    /// line and no group given also gets the groups whose member lists
    /// name it.
    pub fn resolve_process_user(&self, spec: &str) -> Result<ProcessUser, UserError> {
        let (user_part, group) = split_spec(spec)?;
        let user = self.user(user_part)?;
        let gid = match group {
            Some(group) => self.group(group)?,
            None => user.entry.as_ref().map_or(0, |e| e.gid),
        };
        let additional_gids = match (group, &user.entry) {
            (None, Some(entry)) => self
                .groups
                .iter()
                .flatten()
                .filter(|g| g.gid != gid && g.members.contains(&entry.name))
                .map(|g| g.gid)
                .collect(),
            _ => Vec::new(),
        };
        let home = user.entry.map_or_else(|| "/".to_owned(), |e| e.home);
        Ok(ProcessUser {
            ids: Ids { uid: user.uid, gid },
            additional_gids,
            home,
        })
    }

    fn user(&self, user: &str) -> Result<FoundUser, UserError> {
        if let Ok(uid) = user.parse::<u32>() {
            // A number passes through; its passwd line, if any, gives the
            // group, the home and the supplementary groups.
            let entry = self.users.iter().flatten().find(|u| u.uid == uid);
            return Ok(FoundUser {
                uid,
                entry: entry.cloned(),
            });
        }
        self.users
            .iter()
            .flatten()
            .find(|u| u.name == user)
            .map(|u| FoundUser {
                uid: u.uid,
                entry: Some(u.clone()),
            })
            .ok_or_else(|| UserError::UnknownUser {
                name: user.to_owned(),
                passwd_present: self.users.is_some(),
            })
    }

    fn group(&self, group: &str) -> Result<u32, UserError> {
        if let Ok(gid) = group.parse::<u32>() {
            return Ok(gid);
        }
        self.groups
            .iter()
            .flatten()
            .find(|g| g.name == group)
            .map(|g| g.gid)
            .ok_or_else(|| UserError::UnknownGroup {
                name: group.to_owned(),
                group_present: self.groups.is_some(),
            })
    }
}

/// A user as `USER` or `--chown` named it: its uid and its passwd line, if any.
struct FoundUser {
    uid: u32,
    entry: Option<PasswdEntry>,
}

fn split_spec(spec: &str) -> Result<(&str, Option<&str>), UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(UserError::Empty(spec.to_owned()));
    }
    Ok((user, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nstaff:x:50:app,other\nwheel:x:10:other\n";

    #[test]
    fn chown_specs() {
        let accounts = Accounts::parse(Some(PASSWD), Some(GROUP));
        let ids = |uid, gid| Ok(Ids { uid, gid });
        assert_eq!(accounts.resolve_chown("app"), ids(1000, 1001));
        assert_eq!(accounts.resolve_chown("app:staff"), ids(1000, 50));
        assert_eq!(accounts.resolve_chown("app:7"), ids(1000, 7));
        assert_eq!(accounts.resolve_chown("1000"), ids(1000, 1001));
        assert_eq!(accounts.resolve_chown("42"), ids(42, 42));
        assert_eq!(accounts.resolve_chown("42:wheel"), ids(42, 10));
        assert_eq!(
            accounts.resolve_chown("nobody").unwrap_err().to_string(),
            "unknown user `nobody`: not in the image's /etc/passwd"
        );
        assert!(matches!(
            accounts.resolve_chown("app:nogroup"),
            Err(UserError::UnknownGroup { .. })
        ));
        assert!(matches!(
            accounts.resolve_chown(":0"),
            Err(UserError::Empty(_))
        ));
        let empty = Accounts::parse(None, None);
        assert_eq!(empty.resolve_chown("5:6"), ids(5, 6));
        assert!(
            empty
                .resolve_chown("app")
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn process_user_has_supplementary_groups() {
        let accounts = Accounts::parse(Some(PASSWD), Some(GROUP));
        let user = accounts.resolve_process_user("app").unwrap();
        assert_eq!(
            user.ids,
            Ids {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(user.additional_gids, [50]);
        assert!(
            accounts
                .resolve_process_user("app:0")
                .unwrap()
                .additional_gids
                .is_empty()
        );
    }

    #[test]
    fn process_user_without_passwd_line_is_in_group_0_with_home_slash() {
        let accounts = Accounts::parse(Some(PASSWD), Some(GROUP));
        let user = accounts.resolve_process_user("123").unwrap();
        assert_eq!(user.ids, Ids { uid: 123, gid: 0 });
        assert_eq!(user.home, "/");
        assert!(user.additional_gids.is_empty());
        assert_eq!(
            accounts.resolve_process_user("123:5").unwrap().ids,
            Ids { uid: 123, gid: 5 }
        );
        // --chown keeps the uid as the gid.
        assert_eq!(
            accounts.resolve_chown("123").unwrap(),
            Ids { uid: 123, gid: 123 }
        );
    }

    #[test]
    fn process_user_home_comes_from_the_uid_passwd_line() {
        let empty_home = Accounts::parse(Some("e:x:300:300:::/bin/sh\n"), None);
        assert_eq!(empty_home.resolve_process_user("e").unwrap().home, "");
        let accounts = Accounts::parse(Some(PASSWD), Some(GROUP));
        assert_eq!(accounts.resolve_process_user("root").unwrap().home, "/root");
        let by_number = accounts.resolve_process_user("1000").unwrap();
        assert_eq!(by_number.home, "/home/app");
        assert_eq!(by_number.additional_gids, [50]);
        assert_eq!(
            accounts.resolve_process_user("app:staff").unwrap().home,
            "/home/app"
        );
    }
}
