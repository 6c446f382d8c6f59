//! Paths resolved inside a root directory, symlinks included, as moby's
//! `FollowSymlinkInScope`: `..` and absolute link targets never leave the root.
//! Build contexts and image filesystems come from clients and registries, so
//! every path the builder reads or writes in them goes through here.

use std::path::{Component, Path, PathBuf};

/// The host path of `path` (taken as absolute inside `root`), every symlink on
/// the way resolved within `root`. The final component is followed too.
pub fn resolve(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    resolve_with(root, path, true)
}

/// As [`resolve`], but a final symlink is left as it is (to copy or replace it).
pub fn resolve_parent(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    resolve_with(root, path, false)
}

fn resolve_with(root: &Path, path: &str, follow_last: bool) -> std::io::Result<PathBuf> {
    let mut todo: Vec<String> = components(path).into_iter().rev().collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut host = root.to_path_buf();
        host.extend(&done);
        host.push(&c);
        let last = todo.is_empty();
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > 255 {
                    return Err(std::io::Error::other(format!(
                        "too many links resolving {path}"
                    )));
                }
                let target = std::fs::read_link(&host)?;
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    done.clear();
                }
                for p in components(&t).into_iter().rev() {
                    todo.push(p);
                }
            }
            _ => done.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

fn components(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().to_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// `p` cleaned the way Go's `path.Clean` does, relative (no leading `/`).
pub fn clean_rel(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_stay_inside() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).expect("mkdir");
        symlink("/etc", r.join("abs")).expect("link");
        symlink("../../../../etc", r.join("a/b/up")).expect("link");
        symlink("b", r.join("a/rel")).expect("link");
        assert_eq!(
            resolve(r, "/abs/passwd").expect("abs"),
            r.join("etc/passwd")
        );
        assert_eq!(resolve(r, "a/b/up/x").expect("up"), r.join("etc/x"));
        assert_eq!(resolve(r, "../../x").expect("dotdot"), r.join("x"));
        assert_eq!(resolve(r, "a/rel/c").expect("rel"), r.join("a/b/c"));
        assert_eq!(resolve_parent(r, "a/rel").expect("last"), r.join("a/rel"));
        symlink("loop", r.join("loop")).expect("link");
        assert!(resolve(r, "loop").is_err());
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_rel("./a//b/../c/"), "a/c");
        assert_eq!(clean_rel("/../x"), "x");
        assert_eq!(clean_rel("."), "");
    }
}
