//! The runtime interface the shim drives: create a container from its bundle, start
//! it, delete it, and run one more process in it. Two implementations: youki's
//! libcontainer in this process (the default: no helper process to exec, 16 ms for
//! a `true` container against runc's 57 ms here), and any runc-compatible binary
//! (`runc`), exec'd the way containerd's shim does, for `--runtime` and for
//! differential tests that compare what both make of the same spec.
//!
//! The built-in runtime's exec is not libcontainer's but Berth's own ([`super::enter`]):
//! libcontainer's tenant builder costs an RCU grace period per exec on cgroup v1.
//!
//! Either way the container's init ends up a child of the shim (the shim is the
//! subreaper, and both runtimes leave the init orphaned when their own process
//! exits), so waiting, logging and exit records are the same for both.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::bpf::Bpf;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::get_executor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::unistd::Pid;

/// Where a container's (or an exec'd process's) standard streams go.
pub enum Io {
    /// Descriptors handed to the process as its 0, 1 and 2.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A terminal: the runtime sends the pty master to the unix socket at this
    /// absolute path.
    Console(PathBuf),
}

pub trait Runtime {
    /// Creates the container; its process waits before the user's program runs.
    fn create(&mut self, bundle: &Path, io: Io) -> Result<(), String>;
    /// Lets the created container run; returns its init's PID.
    fn start(&mut self) -> Result<Pid, String>;
    /// Removes the container's runtime state (and its cgroup), killing what is left.
    fn delete(&mut self);
    /// Runs the process described by `process` (an OCI `process` object) in the
    /// running container and returns its PID; `dir` holds the runtime's scratch
    /// files for this process.
    fn exec(&mut self, process: &Path, dir: &Path, io: Io) -> Result<Pid, String>;
}

/// The runtime named on the command line: `--runc PATH` picks a runc-compatible
/// binary, otherwise libcontainer.
pub fn select(runc: Option<PathBuf>, id: &str, state_root: &Path) -> Box<dyn Runtime> {
    match runc {
        Some(binary) => Box::new(Runc {
            binary,
            id: id.to_string(),
            root: state_root.to_path_buf(),
            bundle: None,
            systemd: false,
        }),
        None => Box::new(Youki {
            id: id.to_string(),
            root: state_root.to_path_buf(),
            created: None,
        }),
    }
}

/// libcontainer, called in this single-threaded process.
struct Youki {
    id: String,
    root: PathBuf,
    created: Option<Container>,
}

impl Youki {
    fn builder(&self, io: Io) -> Result<ContainerBuilder, String> {
        let b = ContainerBuilder::new(self.id.clone(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(|e| e.to_string())?;
        Ok(match io {
            Io::Console(path) => b.with_console_socket(Some(path)),
            Io::Pipes {
                stdin,
                stdout,
                stderr,
            } => b.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr),
        })
    }
}

impl Runtime for Youki {
    fn create(&mut self, bundle: &Path, io: Io) -> Result<(), String> {
        let mut b = self.builder(io)?;
        let spec: serde_json::Value = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("reading the container's spec")?;
        // The systemd driver's `slice:prefix:name`: a transient scope unit made
        // through systemd's bus (the container's state remembers it for exec and
        // delete).
        let cgroups_path = spec
            .pointer("/linux/cgroupsPath")
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string();
        let systemd = berth_runtime::cgpath::is_systemd_path(&cgroups_path);
        // With a seccomp profile, or the systemd driver, libcontainer gets a
        // bundle of its own: its spec leaves the filter out (the executor loads
        // the cached program instead, see `SeccompExecutor`), and the resources
        // the shim applies to the scope itself (see `scope`). The container's
        // state then names that bundle, which is how an exec finds the program.
        let mut youki_bundle = bundle.to_path_buf();
        let seccomp = spec
            .pointer("/linux/seccomp")
            .filter(|v| !v.is_null())
            .filter(|p| berth_runtime::bpf::cacheable(p));
        let mut deferred = None;
        if seccomp.is_some() || systemd {
            youki_bundle = bundle.join("youki");
            std::fs::create_dir_all(&youki_bundle)
                .map_err(|e| format!("{}: {e}", youki_bundle.display()))?;
            let write = |name: &str, data: &[u8]| {
                berth_atomicfile::write(&youki_bundle.join(name), data)
                    .map_err(|e| format!("{name}: {e}"))
            };
            let mut inner = spec.clone();
            if let Some(profile) = seccomp {
                let bpf = berth_runtime::bpf::cached(&self.seccomp_cache(), profile)
                    .map_err(|e| e.to_string())?;
                let mut process = spec["process"].clone();
                let caps = SeccompExecutor::widen(&mut process);
                inner["process"] = process;
                if let Some(linux) = inner["linux"].as_object_mut() {
                    linux.remove("seccomp");
                }
                write(BPF_FILE, &bpf.to_file())?;
                b = b.with_executor(SeccompExecutor { bpf, caps });
            }
            if systemd {
                deferred = Some(super::scope::take(&mut inner)?);
            }
            write(
                "config.json",
                &serde_json::to_vec(&inner).map_err(|e| e.to_string())?,
            )?;
        }
        let c = super::with_default_sigpipe(|| {
            b.as_init(&youki_bundle)
                .with_systemd(systemd)
                .with_detach(true)
                .build()
        })
        .map_err(|e| format!("creating the container: {e}"))?;
        if let Some(d) = deferred {
            let dir =
                Path::new("/sys/fs/cgroup").join(berth_runtime::cgpath::dir_of(&cgroups_path));
            let unit = berth_runtime::cgpath::unit_of(&cgroups_path).unwrap_or_default();
            if let Err(e) = d.apply(&unit, &dir) {
                // The created container holds the scope: it goes with it.
                self.created = Some(c);
                self.delete();
                return Err(format!("creating the container: {e}"));
            }
        }
        let pid = c.pid();
        self.created = Some(c);
        if let Some(pid) = pid {
            mend_rootfs(pid, &spec)?;
            let uid = spec.pointer("/process/user/uid").and_then(|u| u.as_u64());
            if let Some(uid) = uid.and_then(|u| u32::try_from(u).ok()) {
                super::give_stdio(&format!("/proc/{pid}/fd"), uid);
            }
        }
        Ok(())
    }

    fn start(&mut self) -> Result<Pid, String> {
        let c = self
            .created
            .as_mut()
            .ok_or("starting the container: it was not created")?;
        c.start()
            .map_err(|e| format!("starting the container: {e}"))?;
        let pid = c.pid().ok_or("the container has no PID")?;
        // The shim only copies and waits from here on: let go of what set-up held.
        self.created = None;
        Ok(pid)
    }

    fn delete(&mut self) {
        let loaded = match self.created.take() {
            Some(c) => Ok(c),
            // A create that failed early left nothing to delete.
            None if !self.root.join(&self.id).exists() => return,
            None => Container::load(self.root.join(&self.id)).map_err(|e| e.to_string()),
        };
        match loaded {
            Ok(mut c) => {
                if let Err(e) = c.delete(true) {
                    eprintln!("berth-shim: deleting container state: {e}");
                }
            }
            Err(e) => eprintln!("berth-shim: loading container state: {e}"),
        }
    }

    fn exec(&mut self, process: &Path, _dir: &Path, io: Io) -> Result<Pid, String> {
        // Not libcontainer's tenant builder: see [`super::enter`] for why.
        let c = Container::load(self.root.join(&self.id)).map_err(|e| e.to_string())?;
        let init = c
            .pid()
            .filter(|_| c.status() == ContainerStatus::Running)
            .ok_or_else(|| format!("container {} is not running", self.id))?;
        let read = |p: &Path| -> Result<serde_json::Value, String> {
            std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| format!("reading {}", p.display()))
        };
        let spec = read(&c.bundle().join("config.json"))?;
        let bpf = self.container_seccomp(&c, &spec)?;
        super::enter::exec(init, &spec, &read(process)?, bpf, io)
    }
}

/// Mends, after create and before the user's program runs, what libcontainer 0.7
/// makes differently from the spec (and from runc), as the differential test
/// against runc found:
/// - the cgroup v1 hierarchies are bind-mounted read-write and without nosuid,
///   nodev and noexec whatever the options, so root in a container could raise its
///   own memory limit: they are remounted with the spec's options;
/// - the directories it makes for device nodes (/dev/net for /dev/net/tun) are
///   world-writable: they get runc's 0755.
///
/// The work is done by a child that joins the container's mount namespace, so the
/// shim's own stays as it is.
fn mend_rootfs(pid: Pid, spec: &serde_json::Value) -> Result<(), String> {
    use std::ffi::CString;
    let v1 = !berth_runtime::cgroups::is_v2();
    let cgroup_options = spec["mounts"].as_array().and_then(|ms| {
        ms.iter()
            .find(|m| m["type"] == "cgroup")
            .map(|m| m["options"].as_array().cloned().unwrap_or_default())
    });
    let mut remounts: Vec<CString> = Vec::new();
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND;
    if let Some(options) = cgroup_options.filter(|_| v1) {
        for (name, flag) in [
            ("ro", libc::MS_RDONLY),
            ("nosuid", libc::MS_NOSUID),
            ("nodev", libc::MS_NODEV),
            ("noexec", libc::MS_NOEXEC),
        ] {
            if options.iter().any(|o| o == name) {
                flags |= flag;
            }
        }
        // Mount points as the container sees them, read from outside its /proc.
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .map_err(|e| format!("reading the container's mounts: {e}"))?;
        remounts = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            // The tmpfs holding them stays writable, as runc leaves it.
            .filter(|t| t.starts_with("/sys/fs/cgroup/"))
            .filter_map(|t| CString::new(t).ok())
            .collect();
    }
    let mut dirs: Vec<CString> = spec["linux"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str())
        .flat_map(|p| Path::new(p).ancestors().skip(1))
        .filter(|d| d.starts_with("/dev") && *d != Path::new("/dev"))
        .filter_map(|d| CString::new(d.as_os_str().as_encoded_bytes()).ok())
        .collect();
    dirs.sort();
    dirs.dedup();
    if remounts.is_empty() && dirs.is_empty() {
        return Ok(());
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .map_err(|e| format!("opening the container's mount namespace: {e}"))?;
    // Safety: the shim is single-threaded; the child only makes syscalls and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            use std::os::fd::AsFd;
            let mut code = 0;
            // Joining a mount namespace also moves root and cwd to its root: the
            // container's, where the paths below are meant.
            if nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
                code = 1;
            } else {
                // Children before parents: a remount never hides one still to do.
                for t in remounts.iter().rev() {
                    // Safety: mount(2) with a valid C string and null pointers.
                    let r = unsafe {
                        libc::mount(
                            std::ptr::null(),
                            t.as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        )
                    };
                    if r != 0 {
                        code = 2;
                    }
                }
                for d in &dirs {
                    // Safety: an all-zero stat is a valid value to overwrite.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    // Only a real directory is changed, never what a symlink names.
                    // Safety: lstat with a valid C string and stat buffer.
                    let is_dir = unsafe { libc::lstat(d.as_ptr(), &mut st) } == 0
                        && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    if is_dir && st.st_mode & 0o777 == 0o777 {
                        // Safety: chmod with a valid C string.
                        unsafe { libc::chmod(d.as_ptr(), 0o755) };
                    }
                }
            }
            // Safety: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => loop {
            match nix::sys::wait::waitpid(child, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
                other => {
                    return Err(format!(
                        "setting up the container's cgroup and device directories failed: {other:?}"
                    ))
                }
            }
        },
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// The compiled filter in the bundle libcontainer was given.
const BPF_FILE: &str = "seccomp.bpf";

impl Youki {
    /// Where compiled seccomp programs are kept, beside the containers' state.
    fn seccomp_cache(&self) -> PathBuf {
        self.root
            .parent()
            .unwrap_or(&self.root)
            .join("seccomp-cache")
    }

    /// The running container's seccomp program: the one its create stored, or
    /// (for a profile that could not be precompiled, which libcontainer ran)
    /// compiled from its spec now.
    fn container_seccomp(
        &self,
        c: &Container,
        spec: &serde_json::Value,
    ) -> Result<Option<Bpf>, String> {
        if let Ok(b) = std::fs::read(c.bundle().join(BPF_FILE)) {
            return Bpf::from_file(&b)
                .map(Some)
                .ok_or_else(|| "the container's seccomp program is damaged".into());
        }
        match spec.pointer("/linux/seccomp") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(p) if berth_runtime::bpf::cacheable(p) => {
                berth_runtime::bpf::cached(&self.seccomp_cache(), p)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Some(_) => Err(
                "exec in a container whose seccomp profile notifies a listener is not supported"
                    .into(),
            ),
        }
    }
}

/// Puts the container's init under its seccomp profile, loaded from the compiled
/// program in the process itself just before the program is executed (libcontainer
/// would compile the profile at every start, and reads `SCMP_CMP_MASKED_EQ` with
/// its operands swapped). Without no-new-privileges loading a filter needs
/// CAP_SYS_ADMIN, so the process is given CAP_SYS_ADMIN and CAP_SETPCAP for that
/// moment and then drops to its real capability sets (bounding set first, which
/// needs CAP_SETPCAP), as runc orders it: filter first, then capabilities.
#[derive(Clone)]
struct SeccompExecutor {
    bpf: Bpf,
    /// The process's real sets, `None` when no-new-privileges made extra
    /// capabilities unnecessary.
    caps: Option<RealCaps>,
}

#[derive(Clone)]
struct RealCaps {
    bounding: caps::CapsHashSet,
    effective: caps::CapsHashSet,
    permitted: caps::CapsHashSet,
    inheritable: caps::CapsHashSet,
}

impl SeccompExecutor {
    /// Gives `process` (an OCI process object) CAP_SYS_ADMIN and CAP_SETPCAP for
    /// loading the filter, unless no-new-privileges makes that unnecessary, and
    /// returns its real sets to drop back to.
    fn widen(process: &mut serde_json::Value) -> Option<RealCaps> {
        if process["noNewPrivileges"] == true {
            return None;
        }
        let set = |name: &str| -> caps::CapsHashSet {
            process["capabilities"][name]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str()?.parse().ok())
                .collect()
        };
        let real = RealCaps {
            bounding: set("bounding"),
            effective: set("effective"),
            permitted: set("permitted"),
            inheritable: set("inheritable"),
        };
        for name in ["bounding", "effective", "permitted"] {
            let mut list = process["capabilities"][name]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for extra in ["CAP_SYS_ADMIN", "CAP_SETPCAP"] {
                if !list.iter().any(|c| c == extra) {
                    list.push(extra.into());
                }
            }
            process["capabilities"][name] = serde_json::Value::Array(list);
        }
        Some(real)
    }
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorError> {
        let err =
            |what: &str, e: &dyn std::fmt::Display| ExecutorError::Other(format!("{what}: {e}"));
        berth_runtime::bpf::load(&self.bpf).map_err(|e| err("loading the seccomp filter", &e))?;
        if let Some(real) = &self.caps {
            for cap in caps::all() {
                if !real.bounding.contains(&cap)
                    && caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
                {
                    caps::drop(None, caps::CapSet::Bounding, cap)
                        .map_err(|e| err("dropping from the bounding set", &e))?;
                }
            }
            caps::set(None, caps::CapSet::Effective, &real.effective)
                .map_err(|e| err("setting effective capabilities", &e))?;
            caps::set(None, caps::CapSet::Permitted, &real.permitted)
                .map_err(|e| err("setting permitted capabilities", &e))?;
            caps::set(None, caps::CapSet::Inheritable, &real.inheritable)
                .map_err(|e| err("setting inheritable capabilities", &e))?;
        }
        get_executor().exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorValidationError> {
        get_executor().validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), libcontainer::workload::ExecutorSetEnvsError> {
        get_executor().setup_envs(envs)
    }
}

/// A runc-compatible binary, one invocation per operation, with its state under
/// the same root libcontainer would use.
struct Runc {
    binary: PathBuf,
    id: String,
    root: PathBuf,
    bundle: Option<PathBuf>,
    /// `--systemd-cgroup`, for a container placed by the systemd driver.
    systemd: bool,
}

impl Runc {
    /// `runc --root R --log L --log-format json OP [--console-socket S] ARGS… ID`,
    /// errors read back from L.
    fn run(
        &self,
        log: &Path,
        op: &str,
        args: &[&std::ffi::OsStr],
        io: Option<Io>,
    ) -> Result<(), String> {
        let _ = std::fs::remove_file(log);
        let mut cmd = Command::new(&self.binary);
        if self.systemd {
            cmd.arg("--systemd-cgroup");
        }
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log)
            .args(["--log-format", "json", op]);
        match io {
            Some(Io::Console(path)) => {
                // runc connects by the name it is given, and an absolute path can be
                // longer than a socket address allows: name it from its directory.
                if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
                    cmd.current_dir(dir).arg("--console-socket").arg(name);
                }
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
            Some(Io::Pipes {
                stdin,
                stdout,
                stderr,
            }) => {
                cmd.stdin(Stdio::from(stdin))
                    .stdout(Stdio::from(stdout))
                    .stderr(Stdio::from(stderr));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
        }
        cmd.args(args).arg(&self.id);
        let status = super::with_default_sigpipe(|| cmd.status())
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        if status.success() {
            return Ok(());
        }
        Err(last_error(log)
            .unwrap_or_else(|| format!("{} {op} failed: {status}", self.binary.display())))
    }
}

/// The last error runc logged (one JSON object per line: level, msg, time).
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .find_map(|v| v["msg"].as_str().map(str::to_string))
}

fn read_pid(file: &Path) -> Result<Pid, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    text.trim()
        .parse()
        .map(Pid::from_raw)
        .map_err(|_| format!("{}: not a PID: {text:?}", file.display()))
}

impl Runtime for Runc {
    fn create(&mut self, bundle: &Path, io: Io) -> Result<(), String> {
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        self.bundle = Some(bundle.to_path_buf());
        // Only create needs the driver: runc keeps it in the container's state.
        self.systemd =
            super::cgroup_of(bundle).is_some_and(|p| berth_runtime::cgpath::is_systemd_path(&p));
        self.run(
            &bundle.join("runc.log"),
            "create",
            &[
                "--bundle".as_ref(),
                bundle.as_os_str(),
                "--pid-file".as_ref(),
                pid_file.as_os_str(),
            ],
            Some(io),
        )
        .map_err(|e| format!("creating the container: {e}"))
    }

    fn start(&mut self) -> Result<Pid, String> {
        let bundle = self
            .bundle
            .clone()
            .ok_or("starting the container: it was not created")?;
        self.run(&bundle.join("runc.log"), "start", &[], None)
            .map_err(|e| format!("starting the container: {e}"))?;
        read_pid(&bundle.join("init.pid"))
    }

    fn delete(&mut self) {
        if !self.root.join(&self.id).exists() {
            return;
        }
        let log = match &self.bundle {
            Some(b) => b.join("runc.log"),
            None => self.root.join(format!("{}.delete.log", self.id)),
        };
        if let Err(e) = self.run(&log, "delete", &["--force".as_ref()], None) {
            eprintln!("berth-shim: runc delete: {e}");
        }
        let _ = std::fs::remove_file(self.root.join(format!("{}.delete.log", self.id)));
    }

    fn exec(&mut self, process: &Path, dir: &Path, io: Io) -> Result<Pid, String> {
        let pid_file = dir.join("exec.pid");
        let _ = std::fs::remove_file(&pid_file);
        self.run(
            &dir.join("runc.log"),
            "exec",
            &[
                "--process".as_ref(),
                process.as_os_str(),
                "--detach".as_ref(),
                "--pid-file".as_ref(),
                pid_file.as_os_str(),
            ],
            Some(io),
        )?;
        read_pid(&pid_file)
    }
}
