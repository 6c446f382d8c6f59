//! Who a container's process is: the user and groups from the image's
//! `/etc/passwd` and `/etc/group` (`--user`, `--group-add`), its `HOME` and `PATH`.

use std::path::Path;

use berth_api::container::HostConfig;
use berth_api::{ApiError, Result};

/// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`) against the container's
/// `/etc/passwd` and `/etc/group`, as dockerd does.
pub(crate) fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = user
        .split_once(':')
        .map(|(u, g)| (u, Some(g)))
        .unwrap_or((user, None));
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let (uid, mut gid, uname) = if u.is_empty() {
        (0, 0, "root".to_string())
    } else if let Ok(n) = u.parse::<u32>() {
        let e = entries.iter().find(|f| f[2] == u);
        (
            n,
            e.and_then(|f| f[3].parse().ok()).unwrap_or(0),
            e.map(|f| f[0].to_string()).unwrap_or_default(),
        )
    } else {
        let e = entries.iter().find(|f| f[0] == u).ok_or_else(|| {
            ApiError::invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        (
            e[2].parse().unwrap_or(0),
            e[3].parse().unwrap_or(0),
            u.to_string(),
        )
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // The primary group is a supplementary group too, then, unless a group was
    // named, the groups that list the user: what `id` shows under dockerd.
    let mut extra = vec![gid];
    if g.is_none() {
        for m in groups
            .iter()
            .filter(|f| f.len() >= 4 && !uname.is_empty() && f[3].split(',').any(|m| m == uname))
            .filter_map(|f| f[2].parse::<u32>().ok())
        {
            if !extra.contains(&m) {
                extra.push(m);
            }
        }
    }
    Ok((uid, gid, extra))
}

/// `--group-add`: groups by name (from the container's /etc/group) or number, added
/// to the supplementary groups of the container's process and its execs.
pub(crate) fn group_add(rootfs: &Path, hc: &HostConfig, mut extra: Vec<u32>) -> Result<Vec<u32>> {
    let wanted = HostConfig::list(&hc.group_add);
    if wanted.is_empty() {
        return Ok(extra);
    }
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    for g in wanted {
        let by_name = group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == g)
                .then(|| f[2].parse::<u32>().ok())
                .flatten()
        });
        let gid = by_name
            .or_else(|| g.parse().ok())
            .ok_or_else(|| ApiError::invalid(format!("Unable to find group {g}")))?;
        if !extra.contains(&gid) {
            extra.push(gid);
        }
    }
    Ok(extra)
}

/// The home directory of `uid` in the image's /etc/passwd, `/` when it has none:
/// what runc gives a process whose environment has no HOME.
pub(crate) fn home_of(rootfs: &Path, uid: u32) -> String {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// `HOME=` for `uid` unless the environment sets it.
pub(crate) fn with_home(mut env: Vec<String>, rootfs: &Path, uid: u32) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(rootfs, uid)));
    }
    env
}

/// dockerd gives a container a PATH when its image and config have none.
pub(crate) fn with_default_path(mut env: Vec<String>) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_passwd_and_group() {
        let d = tempfile_dir();
        std::fs::create_dir_all(d.join("etc")).expect("etc");
        std::fs::write(
            d.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            d.join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www\n",
        )
        .expect("group");
        assert_eq!(resolve_user(&d, "").expect("root"), (0, 0, vec![0]));
        assert_eq!(
            resolve_user(&d, "www").expect("www"),
            (33, 33, vec![33, 50])
        );
        assert_eq!(
            resolve_user(&d, "1000:1000").expect("numeric"),
            (1000, 1000, vec![1000])
        );
        assert_eq!(
            resolve_user(&d, "www:staff").expect("group"),
            (33, 50, vec![50])
        );
        let e = resolve_user(&d, "nobody").expect_err("missing");
        assert_eq!(
            e.message,
            "unable to find user nobody: no matching entries in passwd file"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        std::env::temp_dir().join(format!("berth-user-{}", hex::encode(b)))
    }
}
