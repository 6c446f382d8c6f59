//! Crash-safe writes. After [`write`] returns, the file at `path` holds the new
//! content, durably; if the machine dies during it, the file holds the old content
//! (or does not exist), never a mix. A stray temp file may remain after a crash;
//! temp names start with `.tmp-` so start-up clean-up can find them ([`is_temp`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `path` with `data`, file mode 0600.
pub fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(path, data, 0o600)
}

/// Atomically replaces `path` with `data`, with file mode `mode`.
pub fn write_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        name.to_string_lossy()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether `name` is a temp file left by an interrupted [`write`].
pub fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-")
}

/// Removes temp files an interrupted [`write`] left in `dir`; returns how many.
pub fn clean_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_str().is_some_and(is_temp) {
            fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("state.json");
        write(&p, b"old").expect("write");
        write(&p, b"new content").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"new content");
        assert_eq!(
            fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_leaves_old_content() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x");
        write(&p, b"old").expect("write");
        // Renaming a file over a directory fails: the old file must stay intact.
        let dirpath = d.path().join("sub");
        fs::create_dir(&dirpath).expect("mkdir");
        fs::write(dirpath.join("keep"), b"k").expect("fill");
        assert!(write(&dirpath, b"new").is_err());
        assert_eq!(fs::read(&p).expect("read"), b"old");
        assert_eq!(clean_temps(d.path()).expect("clean"), 0);
    }

    #[test]
    fn cleans_stray_temps() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join(".tmp-1-2-x"), b"half").expect("stray");
        fs::write(d.path().join("x"), b"real").expect("real");
        assert_eq!(clean_temps(d.path()).expect("clean"), 1);
        assert!(d.path().join("x").exists());
    }
}
