//! A running container's cgroup, read and written directly: freezing (pause),
//! the process list (top), resource usage (stats), limit updates and OOM kills.
//! Works on cgroup v1 (one directory per controller, as on hybrid hosts) and v2
//! (one unified directory). Everything here is a few small file reads or writes.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup of a container (`cgroupsPath` in its spec, e.g. `/berth/<id>` or
/// `system.slice:berth:<id>`).
#[derive(Debug, Clone)]
pub struct Cgroup {
    rel: String,
    v2: bool,
}

/// Memory, CPU, pids and block I/O usage, in the units the cgroup gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_usage: u64,
    pub memory_limit: Option<u64>,
    pub memory_max_usage: u64,
    pub memory_stat: Vec<(String, u64)>,
    /// Nanoseconds of CPU time, in total, per CPU, in user and kernel mode.
    pub cpu_total: u64,
    pub cpu_percpu: Vec<u64>,
    pub cpu_user: u64,
    pub cpu_system: u64,
    pub throttling: (u64, u64, u64),
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    /// (major, minor, op, bytes) from blkio / io.stat.
    pub io: Vec<(u64, u64, String, u64)>,
}

/// Limits `docker update` changes on a running container; None leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(p: &Path) -> Option<u64> {
    read(p)?.parse().ok()
}

fn write(p: &Path, v: &str) -> std::io::Result<()> {
    std::fs::write(p, v).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

/// v2's `cpu.weight` for v1's `cpu.shares`, as the runtime converts it when the
/// container starts (libcontainer and runc 1.3: a curve that maps the default
/// 1024 to the default 100 and keeps the ends, 2 to 1 and 262144 to 10000), so a
/// `docker update` writes what a start with the same value would.
pub fn cpu_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// v2's `io.weight` for v1's blkio weight (10..=1000 onto 1..=10000, linearly,
/// as runc and libcontainer convert it).
pub fn io_weight(blkio: u16) -> u64 {
    1 + u64::from(blkio.saturating_sub(10)) * 9999 / 990
}

/// Whether the host runs the unified hierarchy only.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl Cgroup {
    /// The cgroup a spec's `cgroupsPath` names (either driver's form, see
    /// `placement`).
    pub fn new(cgroups_path: &str) -> Cgroup {
        Cgroup {
            rel: crate::cgpath::dir_of(cgroups_path),
            v2: is_v2(),
        }
    }

    /// The directory of a v1 controller (or the unified one on v2).
    pub fn dir(&self, controller: &str) -> PathBuf {
        if self.v2 {
            Path::new(ROOT).join(&self.rel)
        } else {
            Path::new(ROOT).join(controller).join(&self.rel)
        }
    }

    pub fn exists(&self) -> bool {
        self.dir(if self.v2 { "" } else { "pids" }).exists()
    }

    /// PIDs (in the host's namespace) of every process in the container.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self.dir("pids");
        let mut out: Vec<i32> = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            if let Some(s) = read(&d.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs every process in the cgroup until none is left (a process may
    /// fork while the list is read), for at most about a second. Returns whether
    /// the cgroup is empty. Blocking.
    pub fn kill_all(&self) -> bool {
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return true;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.pids().is_empty()
    }

    /// Removes the cgroup's directories (nested ones first) from every
    /// hierarchy that has them. Only empty cgroups can go; the rest stay.
    pub fn remove(&self) {
        let mut roots: Vec<PathBuf> = if self.v2 {
            vec![PathBuf::from(ROOT)]
        } else {
            // Each v1 hierarchy once: `cpu` and `cpuacct` are links to `cpu,cpuacct`.
            let mut v: Vec<PathBuf> = std::fs::read_dir(ROOT)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        roots.dedup();
        for root in roots {
            let top = root.join(&self.rel);
            let mut dirs = Vec::new();
            let mut stack = vec![top];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    stack.extend(
                        rd.flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                    dirs.push(d);
                }
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    /// Freezes (`true`) or thaws every process of the container and waits until
    /// the kernel says it is done.
    pub fn freeze(&self, frozen: bool) -> std::io::Result<()> {
        if self.v2 {
            let d = self.dir("");
            write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            for _ in 0..1000 {
                let events = read(&d.join("cgroup.events")).unwrap_or_default();
                let now = events.lines().any(|l| l == "frozen 1");
                if now == frozen {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(std::io::Error::other(
                "the cgroup did not reach the freezer state",
            ));
        }
        let f = self.dir("freezer").join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        write(&f, want)?;
        // FREEZING is transitional; the kernel finishes it on the next write or read.
        for _ in 0..1000 {
            match read(&f).as_deref() {
                Some(s) if s == want => return Ok(()),
                _ => {
                    let _ = write(&f, want);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        Err(std::io::Error::other(
            "the cgroup did not reach the freezer state",
        ))
    }

    pub fn is_frozen(&self) -> bool {
        if self.v2 {
            read(&self.dir("").join("cgroup.freeze")).as_deref() == Some("1")
        } else {
            read(&self.dir("freezer").join("freezer.state")).as_deref() == Some("FROZEN")
        }
    }

    /// The file whose `oom_kill` count [`Cgroup::oom_kills`] reads; on v2 the
    /// kernel notifies inotify watchers when it changes.
    pub fn oom_events_file(&self) -> PathBuf {
        if self.v2 {
            self.dir("").join("memory.events")
        } else {
            self.dir("memory").join("memory.oom_control")
        }
    }

    /// OOM kills inside the cgroup so far; `None` once the cgroup is gone
    /// (or its memory controller unreadable), which is not the same as none.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = self.oom_events_file();
        let text = read(&file)?;
        Some(
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
                })
                .unwrap_or(0),
        )
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        let unlimited = |v: u64| v >= (1 << 62);
        if self.v2 {
            let d = self.dir("");
            u.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
            u.memory_limit = read(&d.join("memory.max")).and_then(|s| s.parse().ok());
            u.memory_max_usage = read_u64(&d.join("memory.peak")).unwrap_or(0);
            u.memory_stat = kv(&d.join("memory.stat"));
            let cpu = kv(&d.join("cpu.stat"));
            let get = |k: &str| {
                cpu.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| *v)
                    .unwrap_or(0)
            };
            u.cpu_total = get("usage_usec") * 1000;
            u.cpu_user = get("user_usec") * 1000;
            u.cpu_system = get("system_usec") * 1000;
            u.throttling = (
                get("nr_periods"),
                get("nr_throttled"),
                get("throttled_usec") * 1000,
            );
            u.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
            u.pids_limit = read(&d.join("pids.max")).and_then(|s| s.parse().ok());
            for l in read(&d.join("io.stat")).unwrap_or_default().lines() {
                let mut it = l.split_whitespace();
                let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
                    continue;
                };
                let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) else {
                    continue;
                };
                for kvp in it {
                    if let Some((k, v)) = kvp.split_once('=') {
                        let op = match k {
                            "rbytes" => "read",
                            "wbytes" => "write",
                            _ => continue,
                        };
                        u.io.push((ma, mi, op.into(), v.parse().unwrap_or(0)));
                    }
                }
            }
            return u;
        }
        let m = self.dir("memory");
        u.memory_usage = read_u64(&m.join("memory.usage_in_bytes")).unwrap_or(0);
        u.memory_limit = read_u64(&m.join("memory.limit_in_bytes")).filter(|v| !unlimited(*v));
        u.memory_max_usage = read_u64(&m.join("memory.max_usage_in_bytes")).unwrap_or(0);
        u.memory_stat = kv(&m.join("memory.stat"));
        let c = self.dir("cpuacct");
        u.cpu_total = read_u64(&c.join("cpuacct.usage")).unwrap_or(0);
        u.cpu_percpu = read(&c.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat is in clock ticks.
        let ticks = ticks_per_second();
        let st = kv(&c.join("cpuacct.stat"));
        let get = |k: &str| {
            st.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| *v)
                .unwrap_or(0)
        };
        u.cpu_user = get("user") * 1_000_000_000 / ticks;
        u.cpu_system = get("system") * 1_000_000_000 / ticks;
        let t = kv(&self.dir("cpu").join("cpu.stat"));
        let gt = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(0);
        u.throttling = (gt("nr_periods"), gt("nr_throttled"), gt("throttled_time"));
        let p = self.dir("pids");
        u.pids_current = read_u64(&p.join("pids.current")).unwrap_or(0);
        u.pids_limit = read(&p.join("pids.max")).and_then(|s| s.parse().ok());
        for l in read(
            &self
                .dir("blkio")
                .join("blkio.throttle.io_service_bytes_recursive"),
        )
        .unwrap_or_default()
        .lines()
        {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [dev, op, v] = f.as_slice() {
                if let Some((ma, mi)) = dev.split_once(':') {
                    u.io.push((
                        ma.parse().unwrap_or(0),
                        mi.parse().unwrap_or(0),
                        op.to_ascii_lowercase(),
                        v.parse().unwrap_or(0),
                    ));
                }
            }
        }
        u
    }

    /// Applies new limits to the running container.
    pub fn update(&self, l: &Limits) -> std::io::Result<()> {
        if self.v2 {
            let d = self.dir("");
            let max = |v: i64| {
                if v <= 0 {
                    "max".to_string()
                } else {
                    v.to_string()
                }
            };
            if let Some(v) = l.memory {
                write(&d.join("memory.max"), &max(v))?;
            }
            if let Some(v) = l.memory_reservation {
                write(&d.join("memory.low"), &v.max(0).to_string())?;
            }
            if let (Some(s), m) = (l.memory_swap, l.memory) {
                let swap = if s < 0 {
                    "max".to_string()
                } else {
                    (s - m.unwrap_or(0)).max(0).to_string()
                };
                write(&d.join("memory.swap.max"), &swap)?;
            }
            if let Some(v) = l.cpu_shares {
                write(&d.join("cpu.weight"), &cpu_weight(v).to_string())?;
            }
            if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                let q = l
                    .cpu_quota
                    .map(|q| {
                        if q <= 0 {
                            "max".to_string()
                        } else {
                            q.to_string()
                        }
                    })
                    .unwrap_or_else(|| "max".into());
                write(
                    &d.join("cpu.max"),
                    &format!("{q} {}", l.cpu_period.unwrap_or(100000)),
                )?;
            }
            if let Some(v) = &l.cpuset_cpus {
                write(&d.join("cpuset.cpus"), v)?;
            }
            if let Some(v) = &l.cpuset_mems {
                write(&d.join("cpuset.mems"), v)?;
            }
            if let Some(v) = l.pids_limit {
                write(&d.join("pids.max"), &max(v))?;
            }
            if let Some(v) = l.blkio_weight {
                // BFQ takes v1's scale as it is; the generic weight is converted.
                let bfq = d.join("io.bfq.weight");
                if bfq.exists() {
                    write(&bfq, &v.to_string())?;
                } else {
                    write(&d.join("io.weight"), &io_weight(v).to_string())?;
                }
            }
            return Ok(());
        }
        let m = self.dir("memory");
        let lim = |v: i64| {
            if v <= 0 {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        if let Some(v) = l.memory {
            // The swap limit must stay at or above the memory limit: raise it first.
            if let Some(s) = l.memory_swap {
                let _ = write(&m.join("memory.memsw.limit_in_bytes"), &lim(s));
            }
            write(&m.join("memory.limit_in_bytes"), &lim(v))?;
        }
        if let Some(s) = l.memory_swap {
            let _ = write(&m.join("memory.memsw.limit_in_bytes"), &lim(s));
        }
        if let Some(v) = l.memory_reservation {
            write(&m.join("memory.soft_limit_in_bytes"), &lim(v))?;
        }
        let cpu = self.dir("cpu");
        if let Some(v) = l.cpu_shares {
            write(&cpu.join("cpu.shares"), &v.to_string())?;
        }
        if let Some(v) = l.cpu_period {
            write(&cpu.join("cpu.cfs_period_us"), &v.to_string())?;
        }
        if let Some(v) = l.cpu_quota {
            write(&cpu.join("cpu.cfs_quota_us"), &lim(v))?;
        }
        let cs = self.dir("cpuset");
        if let Some(v) = &l.cpuset_cpus {
            write(&cs.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = &l.cpuset_mems {
            write(&cs.join("cpuset.mems"), v)?;
        }
        if let Some(v) = l.pids_limit {
            write(
                &self.dir("pids").join("pids.max"),
                &if v <= 0 {
                    "max".to_string()
                } else {
                    v.to_string()
                },
            )?;
        }
        if let Some(v) = l.blkio_weight {
            let _ = write(&self.dir("blkio").join("blkio.weight"), &v.to_string());
        }
        Ok(())
    }
}

fn kv(p: &Path) -> Vec<(String, u64)> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn ticks_per_second() -> u64 {
    // Safety: sysconf with a valid name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The host's total CPU time in nanoseconds (`system_cpu_usage`), from /proc/stat.
pub fn system_cpu_usage() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / ticks_per_second())
}

/// CPUs online on the host.
pub fn online_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_weights_convert_as_the_runtime_converts_them() {
        // The defaults map onto each other; the ends are kept.
        assert_eq!(cpu_weight(1024), 100);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(0), 1);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(512), 59);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(1000), 10_000);
        assert_eq!(io_weight(500), 4950);
    }
}
