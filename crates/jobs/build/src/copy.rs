//! COPY and ADD: sources found in the context (or another stage's or image's
//! filesystem) with Go's `filepath.Match` wildcards and symlinks followed in
//! scope, their content hashed for the cache key, and the copy done into the
//! parent image's filesystem mounted with a fresh upper directory, as dockerd
//! copies into a new read-write layer. Local archives are unpacked by ADD.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{BuildError, Result};
use crate::scope;

/// One source, found.
#[derive(Debug, Clone)]
pub struct Source {
    /// Host path (in the context or a mounted filesystem), symlinks resolved.
    pub path: PathBuf,
    /// The name the copy takes when the destination is a directory.
    pub name: String,
    pub is_dir: bool,
    /// ADD's download: not unpacked, mode 0600.
    pub downloaded: bool,
}

fn fail(m: impl Into<String>) -> BuildError {
    BuildError::Invalid(m.into())
}

/// Go's `filepath.Match` for one whole relative path.
fn match_regex(pattern: &str) -> Result<regex::Regex> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                while let Some(n) = chars.next() {
                    match n {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            if let Some(e) = chars.next() {
                                re.push_str(&regex::escape(&e.to_string()));
                            }
                        }
                        '[' => re.push_str("\\["),
                        n => re.push(n),
                    }
                }
                if !closed {
                    return Err(fail(format!("syntax error in pattern: {pattern}")));
                }
                re.push(']');
            }
            '\\' => {
                if let Some(e) = chars.next() {
                    re.push_str(&regex::escape(&e.to_string()));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| fail(e.to_string()))
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn walk_rel(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk_rel(root, &p, out);
        }
    }
}

/// The sources `src` names in `root`.
pub fn find(root: &Path, src: &str) -> Result<Vec<Source>> {
    let rel = scope::clean_rel(src);
    let mut found = Vec::new();
    if has_wildcards(&rel) {
        let re = match_regex(&rel)?;
        let mut all = Vec::new();
        walk_rel(root, root, &mut all);
        for r in all.into_iter().filter(|r| re.is_match(r)) {
            let path = scope::resolve(root, &r)?;
            let md = std::fs::metadata(&path);
            found.push(Source {
                name: r.rsplit('/').next().unwrap_or(&r).to_string(),
                is_dir: md.is_ok_and(|m| m.is_dir()),
                path,
                downloaded: false,
            });
        }
        return Ok(found);
    }
    let path = scope::resolve(root, &rel)?;
    let md = std::fs::metadata(&path).map_err(|_| {
        fail(format!(
            "file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist"
        ))
    })?;
    found.push(Source {
        name: rel.rsplit('/').next().unwrap_or(&rel).to_string(),
        is_dir: md.is_dir(),
        path,
        downloaded: false,
    });
    Ok(found)
}

fn hash_entry(h: &mut Sha256, root: &Path, p: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    let rel = p.strip_prefix(root).unwrap_or(p);
    // A tarsum of the headers without times, and the content.
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update(
        format!(
            "\0{:o}\0{}\0{}\0{}\0",
            md.mode(),
            md.uid(),
            md.gid(),
            md.len()
        )
        .as_bytes(),
    );
    if md.file_type().is_symlink() {
        h.update(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
    } else if md.is_file() {
        let mut f = std::fs::File::open(p)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else if md.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            hash_entry(h, root, &e.path())?;
        }
    }
    Ok(())
}

/// The cache key's source part: `file:<sha>`, `dir:<sha>` or `multi:<sha>`.
pub fn source_hash(sources: &[Source]) -> Result<String> {
    let one = |s: &Source| -> Result<String> {
        let mut h = Sha256::new();
        let root = if s.is_dir {
            s.path.clone()
        } else {
            s.path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        hash_entry(&mut h, &root, &s.path)?;
        Ok(hex::encode(h.finalize()))
    };
    match sources {
        [s] => Ok(format!(
            "{}:{}",
            if s.is_dir { "dir" } else { "file" },
            one(s)?
        )),
        many => {
            let mut h = Sha256::new();
            for s in many {
                h.update(one(s)?.as_bytes());
            }
            Ok(format!("multi:{}", hex::encode(h.finalize())))
        }
    }
}

/// Owner of the copied files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

fn lookup(file: &Path, name: &str, id_field: usize) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(id_field).and_then(|v| v.parse().ok()))
}

/// `--chown=user[:group]`, names looked up in the image's own files.
pub fn parse_chown(rootfs: &Path, chown: &str) -> Result<Owner> {
    let parts: Vec<&str> = chown.split(':').collect();
    let (user, group) = match parts.as_slice() {
        [u] => (*u, *u),
        [u, g] => (*u, *g),
        _ => return Err(fail(format!("invalid chown string format: {chown}"))),
    };
    let passwd = scope::resolve(rootfs, "/etc/passwd")?;
    let groupf = scope::resolve(rootfs, "/etc/group")?;
    let uid = match user.parse() {
        Ok(n) => n,
        Err(_) => lookup(&passwd, user, 2).ok_or_else(|| {
            fail(format!(
                "can't find uid for user {user}: no such user: {user}"
            ))
        })?,
    };
    let gid = match group.parse() {
        Ok(n) => n,
        Err(_) => lookup(&groupf, group, 2).ok_or_else(|| {
            fail(format!(
                "can't find gid for group {group}: no such group: {group}"
            ))
        })?,
    };
    Ok(Owner { uid, gid })
}

/// Creates the missing directories of `rel` in `root` (0755, owned by `owner`).
pub fn mkdir_all(root: &Path, rel: &str, owner: Owner) -> Result<PathBuf> {
    let mut done = String::new();
    for c in scope::clean_rel(rel).split('/').filter(|c| !c.is_empty()) {
        done.push('/');
        done.push_str(c);
        let p = scope::resolve(root, &done)?;
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(fail(format!(
                    "cannot create directory {done}: not a directory"
                )))
            }
            Err(_) => {
                std::fs::create_dir(&p)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                std::os::unix::fs::lchown(&p, Some(owner.uid), Some(owner.gid))?;
            }
        }
    }
    Ok(scope::resolve(root, rel)?)
}

fn copy_times(src: &std::fs::Metadata, dst: &Path) {
    let t = nix::sys::time::TimeSpec::new(src.mtime(), src.mtime_nsec());
    let _ = nix::sys::stat::utimensat(
        None,
        dst,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// Copies one entry (a directory's content recursively) to `dst`.
fn copy_entry(src: &Path, dst: &Path, owner: Option<Owner>) -> Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let (uid, gid) = owner
        .map(|o| (o.uid, o.gid))
        .unwrap_or((md.uid(), md.gid()));
    let ft = md.file_type();
    if let Ok(old) = std::fs::symlink_metadata(dst) {
        if !(old.is_dir() && ft.is_dir()) {
            if old.is_dir() {
                std::fs::remove_dir_all(dst)?;
            } else {
                std::fs::remove_file(dst)?;
            }
        }
    }
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if ft.is_dir() {
        if !dst.exists() {
            std::fs::create_dir(dst)?;
        }
        let mut entries: Vec<_> = std::fs::read_dir(src)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_entry(&e.path(), &dst.join(e.file_name()), owner)?;
        }
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    } else if ft.is_file() {
        std::fs::copy(src, dst)?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    } else {
        let kind = nix::sys::stat::SFlag::from_bits_truncate(md.mode() & libc::S_IFMT);
        nix::sys::stat::mknod(
            dst,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(md.mode() & 0o7777),
            md.rdev(),
        )
        .map_err(|e| BuildError::System(format!("{}: {e}", dst.display())))?;
    }
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))?;
    // The mode again: chown clears set-id bits.
    if !ft.is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    copy_times(&md, dst);
    Ok(())
}

/// Whether the file at `p` is an archive ADD unpacks.
fn is_archive(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let mut head = Vec::with_capacity(512);
    if f.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    if crate::context::is_compressed(&head) {
        let Ok(f) = std::fs::File::open(p) else {
            return false;
        };
        let Ok(mut r) = crate::context::decompress(f) else {
            return false;
        };
        let mut h = vec![0u8; 512];
        return r.read_exact(&mut h).is_ok() && crate::context::is_tar(&h);
    }
    crate::context::is_tar(&head)
}

/// What one COPY or ADD does in the mounted filesystem `rootfs`.
pub struct Plan {
    pub sources: Vec<Source>,
    /// Absolute destination inside the image (relative to WORKDIR resolved).
    pub dest: String,
    /// None: keep the sources' owners (`COPY --from` without `--chown`).
    pub owner: Option<Owner>,
    pub unpack: bool,
}

/// Performs `plan` in `rootfs` (blocking).
pub fn perform(rootfs: &Path, plan: &Plan) -> Result<()> {
    let dir_dest = plan.dest.ends_with('/') || plan.dest.ends_with("/.");
    if plan.sources.len() > 1 && !dir_dest {
        return Err(fail(
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    let new_owner = plan.owner.unwrap_or(Owner { uid: 0, gid: 0 });
    for s in &plan.sources {
        if s.is_dir {
            let dst = mkdir_all(rootfs, &plan.dest, new_owner)?;
            let mut entries: Vec<_> = std::fs::read_dir(&s.path)?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                copy_entry(&e.path(), &dst.join(e.file_name()), plan.owner)?;
            }
            continue;
        }
        if plan.unpack && !s.downloaded && is_archive(&s.path) {
            let dst = mkdir_all(rootfs, &plan.dest, new_owner)?;
            let f = std::fs::File::open(&s.path)?;
            let r = crate::context::decompress(f)?;
            let opts = berth_graph::extract::FileOptions {
                owner: plan.owner.map(|o| (o.uid, o.gid)),
                no_overwrite_dir_non_dir: false,
            };
            berth_graph::extract::extract_files(r, &dst, opts)
                .map_err(|e| fail(format!("failed to extract {}: {e}", s.name)))?;
            continue;
        }
        let existing_dir = scope::resolve(rootfs, &plan.dest)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_dir());
        let target = if dir_dest || existing_dir {
            format!("{}/{}", plan.dest.trim_end_matches('/'), s.name)
        } else {
            plan.dest.clone()
        };
        let parent = Path::new(&target)
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        mkdir_all(rootfs, &parent, new_owner)?;
        let dst = scope::resolve_parent(rootfs, &target)?;
        copy_entry(&s.path, &dst, plan.owner)?;
        if s.downloaded {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match() {
        let re = match_regex("src/*.rs").expect("re");
        assert!(re.is_match("src/a.rs"));
        assert!(!re.is_match("src/x/a.rs"));
        assert!(match_regex("f[0-9]").expect("re").is_match("f1"));
        assert!(match_regex("a[").is_err());
    }

    #[test]
    fn finds_and_hashes() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        std::fs::write(r.join("a.txt"), "a").expect("w");
        std::fs::write(r.join("b.txt"), "b").expect("w");
        std::fs::create_dir(r.join("dir")).expect("d");
        std::os::unix::fs::symlink("/etc/passwd", r.join("out")).expect("link");
        assert_eq!(find(r, "*.txt").expect("glob").len(), 2);
        assert!(find(r, "nope").is_err());
        // A link out of the context resolves inside it (and is not there).
        assert!(find(r, "out").is_err());
        let h1 = source_hash(&find(r, "a.txt").expect("a")).expect("hash");
        std::fs::write(r.join("a.txt"), "A").expect("w");
        let h2 = source_hash(&find(r, "a.txt").expect("a")).expect("hash");
        assert!(h1.starts_with("file:") && h1 != h2);
        assert!(source_hash(&find(r, "dir").expect("d"))
            .expect("h")
            .starts_with("dir:"));
    }

    #[test]
    fn copies_into_a_root() {
        let d = tempfile::tempdir().expect("tmp");
        let (ctx, root) = (d.path().join("ctx"), d.path().join("root"));
        std::fs::create_dir_all(ctx.join("sub/deep")).expect("mk");
        std::fs::create_dir_all(&root).expect("mk");
        std::fs::write(ctx.join("f"), "x").expect("w");
        std::fs::write(ctx.join("sub/deep/g"), "y").expect("w");
        std::os::unix::fs::symlink("/", root.join("escape")).expect("link");
        let plan = |srcs: &str, dest: &str| Plan {
            sources: find(&ctx, srcs).expect("find"),
            dest: dest.into(),
            owner: Some(Owner { uid: 0, gid: 0 }),
            unpack: false,
        };
        perform(&root, &plan("f", "/a/b/")).expect("file into dir");
        assert_eq!(std::fs::read_to_string(root.join("a/b/f")).expect("r"), "x");
        perform(&root, &plan("sub", "/s")).expect("dir content");
        assert!(root.join("s/deep/g").exists());
        // A symlink in the image cannot send the copy out of it.
        perform(&root, &plan("f", "/escape/tmp/")).expect("confined");
        assert!(root.join("tmp/f").exists());
        let two = Plan {
            sources: find(&ctx, "*").expect("two"),
            ..plan("f", "/x")
        };
        assert!(perform(&root, &two).is_err());
    }
}
