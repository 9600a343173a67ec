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

/// Retries a `get*_r` call with a larger buffer while it says ERANGE.
fn with_buffer<T>(
    mut call: impl FnMut(&mut Vec<libc::c_char>) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        match call(&mut buffer) {
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buffer.len() < 1 << 20 => {
                buffer.resize(buffer.len() * 4, 0);
            }
            other => return other,
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
    with_buffer(|buffer| {
        // SAFETY: all-zero is a valid `group` (null pointers, zero ids).
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and the buffer's
        // length is passed; the result points into `group` or is null.
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut group,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => Ok(None),
            0 => Ok(Some(group.gr_gid)),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    })
}

/// The account called `name`, with all its groups, or `None` if there is none.
pub fn account(name: &str) -> io::Result<Option<Account>> {
    let c = c_name(name)?;
    let found = with_buffer(|buffer| {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: as for getgrnam_r above.
        let rc = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => Ok(None),
            0 => Ok(Some((entry.pw_uid, entry.pw_gid))),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    })?;
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
    with_buffer(|buffer| {
        // SAFETY: all-zero is a valid `group`.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getgrnam_r above.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut group,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => Ok(None),
            // SAFETY: on success gr_name is a NUL-terminated string in `buffer`.
            0 => Ok(Some(
                unsafe { CStr::from_ptr(group.gr_name) }
                    .to_string_lossy()
                    .into_owned(),
            )),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    })
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
