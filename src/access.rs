//! Can an account use the files the helper needs? (`check-config --user`)
//!
//! `check-config` run as root can read everything, while the helper runs as
//! `ejabberd` or `prosody`: a `chmod 0600` on a key file passes as root and
//! breaks every login. This module answers, for an account (its uid and
//! every group), whether the kernel's permission bits let it read a file,
//! write one, or create one in a folder — the folders above included — and
//! if not, says what fixes it. ACLs are not looked at: where a file has
//! one, the answer may be too strict, never too lenient in practice, since
//! the helper's packaging never sets them.

use crate::core::config::{Config, EngineAddress, PACKAGE_GROUP};
use crate::replay_store;
use crate::sys::users::{self, Account};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the helper does with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    /// Append to (a log file).
    Write,
    ReadWrite,
    /// Make a file in this folder (a replay store not made yet).
    CreateIn,
    /// Connect to this Unix socket (a Redis engine's): write permission.
    Connect,
}

/// A path the account cannot use, and the command that lets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub path: PathBuf,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}; fix: {}",
            self.path.display(),
            self.problem,
            self.fix
        )
    }
}

/// Every file the helper reads or writes under `config`, and what it does
/// with it: the configuration and key files (the engine's password file
/// among them) are read, and the engine's CA file; the engine's Unix socket
/// is connected to; the replay store and its lock file are read and
/// written, or made in their folder.
pub fn needs(config: &Config) -> Vec<(PathBuf, Need)> {
    let mut needs = vec![(config.path.clone(), Need::Read)];
    needs.extend(config.key_files.iter().map(|f| (f.clone(), Need::Read)));
    if let Some(engine) = config.shared_engine() {
        needs.extend(engine.ca_file.iter().map(|f| (f.clone(), Need::Read)));
        if let EngineAddress::Unix(socket) = &engine.address {
            needs.push((socket.clone(), Need::Connect));
        }
    }
    let files = config.log_file.iter().map(|log| (log.clone(), Need::Write));
    let store = config.shared_store().into_iter().flat_map(|store| {
        [store.path.clone(), replay_store::lock_path(&store.path)].map(|f| (f, Need::ReadWrite))
    });
    for (file, need) in files.chain(store) {
        // A file the helper makes on first use: its folder must let it.
        match (file.exists(), file.parent()) {
            (true, _) => needs.push((file, need)),
            (false, Some(folder)) => needs.push((folder.to_owned(), Need::CreateIn)),
            (false, None) => {}
        }
    }
    needs.dedup();
    needs
}

/// What `account` cannot do of what the helper needs under `config`.
pub fn denied(account: &Account, config: &Config) -> Vec<Denied> {
    let mut denied: Vec<Denied> = needs(config)
        .into_iter()
        .filter_map(|(path, need)| check(account, &path, need))
        .collect();
    denied.dedup();
    denied
}

/// The uid of an [`Account`] that stands for a group's members only (no
/// account has it): its fixes change the file's group, nobody's membership.
pub const GROUP_ONLY: u32 = u32::MAX;

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

/// The permission bits that apply to `account` for a file of this owner,
/// group and mode: the owner's, else the group's, else everyone's (the
/// kernel uses exactly one class).
fn bits(account: &Account, uid: u32, gid: u32, mode: u32) -> u32 {
    if account.uid == uid {
        (mode >> 6) & 7
    } else if account.groups.contains(&gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// Whether `account` may `need` at `path`; `None` when it may.
pub fn check(account: &Account, path: &Path, need: Need) -> Option<Denied> {
    if account.uid == 0 {
        return None;
    }
    // Every folder above must let the account through.
    let folders: Vec<&Path> = path.ancestors().skip(1).collect();
    for folder in folders
        .into_iter()
        .rev()
        .filter(|f| !f.as_os_str().is_empty())
    {
        if let Some(denied) = check_one(account, folder, X, "enter") {
            return Some(denied);
        }
    }
    match need {
        // Before the engine starts, its socket is missing: no chmod helps.
        Need::Connect if std::fs::symlink_metadata(path).is_err() => Some(Denied {
            path: path.to_owned(),
            problem: "is not there: the engine makes it when it starts (its unixsocket \
                      setting)"
                .into(),
            fix: "start the engine, or correct the path in replay_store".into(),
        }),
        Need::Connect => check_one(account, path, W, "connect to"),
        Need::Read => check_one(account, path, R, "read"),
        Need::Write => check_one(account, path, W, "write"),
        Need::ReadWrite => check_one(account, path, R | W, "read and write"),
        Need::CreateIn => check_one(account, path, W | X, "create files in"),
    }
}

fn check_one(account: &Account, path: &Path, wanted: u32, verb: &str) -> Option<Denied> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            return Some(Denied {
                path: path.to_owned(),
                problem: format!("cannot be looked at: {e}"),
                fix: "create it, or correct the path in the configuration".into(),
            });
        }
    };
    let mode = meta.mode() & 0o7777;
    if bits(account, meta.uid(), meta.gid(), mode) & wanted == wanted {
        return None;
    }
    let group = users::group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    let letters = |bits: u32| {
        [(R, 'r'), (W, 'w'), (X, 'x')]
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, c)| *c)
            .collect::<String>()
    };
    let display = path.display();
    let bits = letters(wanted);
    let fix = if account.uid == meta.uid() {
        format!("chmod u+{bits} {display}")
    } else if account.groups.contains(&meta.gid()) {
        format!("chmod g+{bits} {display}")
    } else if account.uid == GROUP_ONLY {
        format!(
            "chgrp {group_to} {display} && chmod g+{bits} {display}",
            group_to = account.name.trim_start_matches("the group ")
        )
    } else if meta.gid() == 0 {
        // Root's group: hand the file to the packages' group instead.
        format!(
            "chgrp {PACKAGE_GROUP} {display} && chmod g+{bits} {display}, and adduser {} {PACKAGE_GROUP} \
             (then restart the XMPP server)",
            account.name
        )
    } else {
        format!(
            "adduser {} {group} (then restart the XMPP server), and chmod g+{bits} {display} if needed",
            account.name
        )
    };
    Some(Denied {
        path: path.to_owned(),
        problem: format!(
            "{} cannot {verb} it (owner uid {}, group {group}, mode {mode:04o})",
            account.name,
            meta.uid()
        ),
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn account(uid: u32, groups: &[u32]) -> Account {
        Account {
            name: "ejabberd".into(),
            uid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn exactly_one_class_of_bits_applies() {
        // Owner bits win even when the group's would allow more.
        assert_eq!(bits(&account(7, &[9]), 7, 9, 0o070), 0);
        assert_eq!(bits(&account(8, &[9]), 7, 9, 0o640), R);
        assert_eq!(bits(&account(8, &[5, 9]), 7, 9, 0o640), R);
        assert_eq!(bits(&account(8, &[5]), 7, 9, 0o604), R);
        assert_eq!(bits(&account(8, &[5]), 7, 9, 0o640), 0);
    }

    #[test]
    fn a_file_the_account_cannot_read_is_named_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = dir.path().join("token_secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let meta = std::fs::metadata(&secret).unwrap();
        let member = account(meta.uid() + 1, &[meta.gid()]);
        let denied =
            check(&member, &secret, Need::Read).expect("0600 is not readable by the group");
        assert!(
            denied.problem.starts_with("ejabberd cannot read it"),
            "{denied}"
        );
        assert_eq!(denied.fix, format!("chmod g+r {}", secret.display()));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check(&member, &secret, Need::Read), None);
        assert!(check(&member, &secret, Need::ReadWrite).is_some());
        let stranger = account(meta.uid() + 1, &[meta.gid() + 1]);
        let denied = check(&stranger, &secret, Need::Read).unwrap();
        // Outside the file's group: join it, or (for root's group) hand the
        // file to the packages' group and join that.
        let expected = match meta.gid() {
            0 => format!("chgrp {PACKAGE_GROUP} "),
            _ => "adduser ejabberd ".to_string(),
        };
        assert!(denied.fix.starts_with(&expected), "{denied}");
        assert!(denied.fix.contains("adduser ejabberd "), "{denied}");
        // A folder above that it may not enter hides everything inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let denied = check(&member, &secret, Need::Read).unwrap();
        assert_eq!(denied.path, dir.path());
        assert!(
            denied.problem.starts_with("ejabberd cannot enter it"),
            "{denied}"
        );
        assert_eq!(check(&account(0, &[0]), &secret, Need::ReadWrite), None);
    }
}
