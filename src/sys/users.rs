//! Looking up accounts and groups by name, through the C library (so that
//! every NSS source the machine uses is asked, not only /etc/group).

use std::ffi::{CStr, CString};
use std::io;

/// An account: what the kernel checks file permissions against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// The primary group first, then every supplementary group.
    pub groups: Vec<u32>,
}

/// One reentrant NSS lookup (`getgrnam_r` and its kin): `call` fills an
/// entry using a buffer, `read` takes what is needed from the entry while
/// the buffer still lives. `None` when there is no such entry; the buffer
/// grows while the C library says ERANGE.
fn lookup<T, R>(
    call: impl Fn(&mut T, &mut [libc::c_char], &mut *mut T) -> libc::c_int,
    read: impl Fn(&T) -> R,
) -> io::Result<Option<R>> {
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: the entries looked up here (`group`, `passwd`) are plain
        // C structs of integers and pointers, for which all-zero is valid.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut found: *mut T = std::ptr::null_mut();
        match call(&mut entry, &mut buffer, &mut found) {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(read(&entry))),
            libc::ERANGE if buffer.len() < 1 << 20 => buffer.resize(buffer.len() * 4, 0),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name holds a NUL byte"))
}

/// The id of the group called `name`, or `None` if there is none.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let c = c_name(name)?;
    lookup(
        |group: &mut libc::group, buffer, found| {
            // SAFETY: every pointer is valid for the call, and the buffer's
            // length is passed; the result points into `group` or is null.
            unsafe { libc::getgrnam_r(c.as_ptr(), group, buffer.as_mut_ptr(), buffer.len(), found) }
        },
        |group| group.gr_gid,
    )
}

/// The account called `name`, with all its groups, or `None` if there is none.
pub fn account(name: &str) -> io::Result<Option<Account>> {
    let c = c_name(name)?;
    let found = lookup(
        |entry: &mut libc::passwd, buffer, found| {
            // SAFETY: as for getgrnam_r above.
            unsafe { libc::getpwnam_r(c.as_ptr(), entry, buffer.as_mut_ptr(), buffer.len(), found) }
        },
        |entry| (entry.pw_uid, entry.pw_gid),
    )?;
    let Some((uid, gid)) = found else {
        return Ok(None);
    };
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most
        // that many and says how many it needed.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count as usize);
            break;
        }
        groups.resize((count as usize).max(groups.len() * 2), 0);
    }
    // The primary group first, once.
    groups.retain(|&g| g != gid);
    groups.insert(0, gid);
    Ok(Some(Account {
        name: name.to_string(),
        uid,
        groups,
    }))
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The name of group `gid`, for messages.
pub fn group_name(gid: u32) -> Option<String> {
    lookup(
        |group: &mut libc::group, buffer, found| {
            // SAFETY: as for getgrnam_r above.
            unsafe { libc::getgrgid_r(gid, group, buffer.as_mut_ptr(), buffer.len(), found) }
        },
        |group| {
            // SAFETY: on success gr_name is a NUL-terminated string in the
            // buffer, which lives while `read` runs.
            let name = unsafe { CStr::from_ptr(group.gr_name) };
            name.to_string_lossy().into_owned()
        },
    )
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_its_group_are_found_and_nobody_else_is_invented() {
        let root = account("root").unwrap().unwrap();
        assert_eq!((root.uid, root.groups[0]), (0, 0));
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(account("no-such-user-xta").unwrap(), None);
        assert_eq!(group_id("no-such-group-xta").unwrap(), None);
    }
}
