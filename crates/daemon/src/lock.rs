//! One daemon per data root: an exclusive `flock` on `<data-root>/berthd.lock`,
//! held for the daemon's life. The lock file holds the owner's PID for the message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

pub struct DataRootLock {
    _lock: Flock<File>,
}

impl DataRootLock {
    pub fn acquire(data_root: &Path) -> Result<DataRootLock, String> {
        let path = data_root.join("berthd.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut f, _)) => {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(format!(
                    "another berthd (pid {}) is already using data root {}: refusing to start a second daemon on it",
                    pid.trim(),
                    data_root.display()
                ));
            }
        };
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()
        };
        write_pid(&mut lock).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(DataRootLock { _lock: lock })
    }
}
