//! Volumes with dockerd's `local` driver: each lives in `<root>/<name>/` with its
//! data in `_data` and its metadata in `volume.json` (written atomically). Driver
//! options `type`/`device`/`o` make the volume a mount (tmpfs, a bind of a host
//! directory, or any filesystem `mount(2)` takes), mounted on `_data` while at
//! least one container uses it, as dockerd's local driver does.
//!
//! Which containers use a volume is the caller's business; this crate only keeps
//! volumes and their mounts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// A volume as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for a container's `-v /path` or an image's `VOLUME`.
    #[serde(default)]
    pub anonymous: bool,
}

pub struct Volumes {
    root: PathBuf,
    vols: Mutex<BTreeMap<String, Volume>>,
    /// How many running containers hold each option-mounted volume.
    mounted: Mutex<HashMap<String, usize>>,
}

/// Docker's rule for volume names.
pub fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Volumes {
    /// Opens `root`, loading every volume with valid metadata. A directory without
    /// it is a volume a crash interrupted while being created: removed if empty.
    pub fn open(root: &Path) -> Result<Volumes> {
        std::fs::create_dir_all(root).map_err(|e| io(root.display(), e))?;
        let mut vols = BTreeMap::new();
        for e in std::fs::read_dir(root)
            .map_err(|e| io(root.display(), e))?
            .flatten()
        {
            let meta = e.path().join("volume.json");
            match std::fs::read(&meta)
                .ok()
                .and_then(|b| serde_json::from_slice::<Volume>(&b).ok())
            {
                Some(v) => {
                    vols.insert(v.name.clone(), v);
                }
                None => {
                    let data = e.path().join("_data");
                    let empty = std::fs::read_dir(&data)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(true);
                    if empty && e.path().is_dir() {
                        tracing::warn!(dir = %e.path().display(), "removing a volume directory without metadata");
                        let _ = std::fs::remove_dir_all(e.path());
                    } else {
                        tracing::warn!(dir = %e.path().display(), "keeping a volume directory without metadata (it has data)");
                    }
                }
            }
        }
        let _ = berth_atomicfile::clean_temps(root);
        Ok(Volumes {
            root: root.to_path_buf(),
            vols: Mutex::new(vols),
            mounted: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Volume>> {
        self.vols.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a volume's data is (its mountpoint in inspect).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    pub fn list(&self) -> Vec<Volume> {
        self.lock().values().cloned().collect()
    }

    /// Creates a volume, or returns the existing one of that name (dockerd's
    /// `volume create` is idempotent). `name` None: a generated (anonymous) name.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let driver = if driver.is_empty() { "local" } else { driver };
        if driver != "local" {
            return Err(Error::NotFound(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
                return Err(Error::Invalid(format!("invalid option key: {k:?}")));
            }
        }
        if options.contains_key("device") != options.contains_key("type")
            && !options.contains_key("o")
        {
            return Err(Error::Invalid(
                "missing required option: \"type\" or \"device\"".into(),
            ));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_name(n) {
                    return Err(Error::Invalid(format!(
                        "\"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.to_string()
            }
            None => {
                let mut b = [0u8; 32];
                let _ = getrandom::getrandom(&mut b);
                hex::encode(b)
            }
        };
        let mut vols = self.lock();
        if let Some(v) = vols.get(&name) {
            return Ok(v.clone());
        }
        let v = Volume {
            name: name.clone(),
            driver: driver.to_string(),
            created_at: now(),
            labels,
            options,
            anonymous,
        };
        let dir = self.root.join(&name);
        std::fs::create_dir_all(dir.join("_data")).map_err(|e| io(dir.display(), e))?;
        let b = serde_json::to_vec_pretty(&v).map_err(|e| io("volume metadata", e))?;
        if let Err(e) = berth_atomicfile::write(&dir.join("volume.json"), &b) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io(dir.display(), e));
        }
        vols.insert(name, v.clone());
        Ok(v)
    }

    /// Removes a volume and its data (the caller checked nobody uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut vols = self.lock();
        if !vols.contains_key(name) {
            return Err(Error::NotFound(name.to_string()));
        }
        let data = self.path(name);
        // A mount left on it must not take the mounted filesystem's files along.
        let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
        let dir = self.root.join(name);
        // Metadata first: a crash half-way leaves a directory `open` recognises.
        let _ = std::fs::remove_file(dir.join("volume.json"));
        std::fs::remove_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
        vols.remove(name);
        self.mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    /// Makes the volume ready for a container and returns the directory to bind.
    /// Volumes with driver options are mounted on first use.
    pub fn mount(&self, name: &str) -> Result<PathBuf> {
        let v = self.get(name)?;
        let data = self.path(name);
        if v.options.is_empty() {
            return Ok(data);
        }
        let mut m = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(name.to_string()).or_insert(0);
        if *n == 0 && !is_mountpoint(&data) {
            mount_options(&v.options, &data)?;
        }
        *n += 1;
        Ok(data)
    }

    /// A container using the volume ended; the last one unmounts it.
    pub fn unmount(&self, name: &str) {
        let Ok(v) = self.get(name) else { return };
        if v.options.is_empty() {
            return;
        }
        let mut m = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(name.to_string()).or_insert(0);
        *n = n.saturating_sub(1);
        if *n == 0 {
            let _ = nix::mount::umount2(&self.path(name), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// Bytes used by a volume's data (for `system df` and `volume ls` sizes).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(md) = std::fs::symlink_metadata(p) else {
                return 0;
            };
            if md.is_dir() {
                std::fs::read_dir(p)
                    .map(|d| d.flatten().map(|e| walk(&e.path())).sum())
                    .unwrap_or(0)
            } else {
                md.len()
            }
        }
        walk(&self.path(name))
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let s = p.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(s.as_ref()))
}

/// `type=tmpfs o=size=10m`, `type=none o=bind device=/path`, or a device.
fn mount_options(opts: &BTreeMap<String, String>, target: &Path) -> Result<()> {
    use nix::mount::MsFlags;
    let typ = opts.get("type").map(String::as_str).unwrap_or("");
    let device = opts.get("device").map(String::as_str).unwrap_or(typ);
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        match o {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    let fstype = if flags.contains(MsFlags::MS_BIND) || typ == "none" {
        None
    } else {
        Some(typ)
    };
    let data = data.join(",");
    nix::mount::mount(
        Some(device),
        target,
        fstype,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| Error::Io(format!("error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {:#x}, data: {data}: {e}", target.display(), target.display(), flags.bits())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_metadata_survives_reopen() {
        let d = tempfile::tempdir().expect("tmp");
        let v = Volumes::open(d.path()).expect("open");
        let a = v
            .create(
                Some("data"),
                "",
                BTreeMap::new(),
                [("k".to_string(), "v".to_string())].into(),
                false,
            )
            .expect("create");
        assert_eq!(a.driver, "local");
        let again = v
            .create(
                Some("data"),
                "local",
                BTreeMap::new(),
                BTreeMap::new(),
                false,
            )
            .expect("again");
        assert_eq!(a, again);
        std::fs::write(v.path("data").join("f"), b"12345").expect("write");
        assert_eq!(v.size("data"), 5);
        let anon = v
            .create(None, "local", BTreeMap::new(), BTreeMap::new(), true)
            .expect("anon");
        assert_eq!(anon.name.len(), 64);
        // A directory a crash left without metadata and without data goes.
        std::fs::create_dir_all(d.path().join("half/_data")).expect("half");
        let v2 = Volumes::open(d.path()).expect("reopen");
        assert_eq!(v2.list().len(), 2);
        assert!(!d.path().join("half").exists());
        assert_eq!(v2.get("data").expect("get").labels["k"], "v");
        v2.remove("data").expect("remove");
        assert!(matches!(v2.get("data"), Err(Error::NotFound(_))));
        assert!(!d.path().join("data").exists());
    }

    #[test]
    fn names_and_options_are_checked() {
        let d = tempfile::tempdir().expect("tmp");
        let v = Volumes::open(d.path()).expect("open");
        assert!(matches!(
            v.create(Some("a/b"), "", BTreeMap::new(), BTreeMap::new(), false),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            v.create(
                Some("x1"),
                "nfs-plugin",
                BTreeMap::new(),
                BTreeMap::new(),
                false
            ),
            Err(Error::NotFound(_))
        ));
        let bad: BTreeMap<String, String> = [("colour".to_string(), "red".to_string())].into();
        assert!(matches!(
            v.create(Some("x2"), "", bad, BTreeMap::new(), false),
            Err(Error::Invalid(_))
        ));
        assert!(valid_name("my-vol_1.x"));
        assert!(!valid_name("-x") && !valid_name("a"));
    }

    #[test]
    fn tmpfs_volumes_mount_while_used() {
        let d = tempfile::tempdir().expect("tmp");
        let v = Volumes::open(d.path()).expect("open");
        let opts: BTreeMap<String, String> =
            [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        v.create(Some("scratch"), "local", opts, BTreeMap::new(), false)
            .expect("create");
        let p = v.mount("scratch").expect("mount");
        assert!(is_mountpoint(&p));
        v.mount("scratch").expect("second user");
        v.unmount("scratch");
        assert!(is_mountpoint(&p), "still used");
        v.unmount("scratch");
        assert!(!is_mountpoint(&p));
        v.remove("scratch").expect("remove");
    }
}
