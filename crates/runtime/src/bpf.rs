//! A container's seccomp profile (the spec's `linux.seccomp`) compiled to the BPF
//! program the kernel runs, cached, and loaded without libseccomp.
//!
//! Compiling Docker's allowlist with libseccomp takes tens of milliseconds, a
//! third of a container's start; the program depends only on the profile (the
//! capabilities are already folded in), so it is compiled once per distinct
//! profile and kept in a cache directory under the exec root, where every start
//! and every exec with that profile loads it with one `seccomp(2)` call.
//!
//! The translation follows the OCI runtime spec (and runc): `SCMP_CMP_MASKED_EQ`
//! is `(arg & value) == valueTwo`. libcontainer 0.7 swaps the two, which turns
//! Docker's "clone without namespace flags" rule into "any clone"; compiling here
//! is also what keeps that rule meaning what it says.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde_json::Value;
use sha2::Digest;

/// A compiled filter: the program and the `seccomp(2)` flags to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpf {
    pub program: Vec<u8>,
    pub flags: u32,
}

impl Bpf {
    /// The cache file's form: the flags (4 bytes, little-endian), the program.
    pub fn to_file(&self) -> Vec<u8> {
        let mut data = self.flags.to_le_bytes().to_vec();
        data.extend_from_slice(&self.program);
        data
    }

    pub fn from_file(b: &[u8]) -> Option<Bpf> {
        let (flags, program) = b.split_first_chunk::<4>()?;
        (!program.is_empty() && program.len().is_multiple_of(8)).then(|| Bpf {
            program: program.to_vec(),
            flags: u32::from_le_bytes(*flags),
        })
    }
}

const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;

/// Whether `seccomp` (the spec's object) can be run as a plain program: not when
/// it hands syscalls to a listener, which needs libseccomp's notify set-up.
pub fn cacheable(seccomp: &Value) -> bool {
    let notify = |v: &Value| v.as_str() == Some("SCMP_ACT_NOTIFY");
    !notify(&seccomp["defaultAction"])
        && seccomp.get("listenerPath").is_none_or(Value::is_null)
        && !seccomp["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| notify(&s["action"]))
}

fn action(name: &Value, errno: &Value) -> Result<ScmpAction, String> {
    let errno = errno.as_u64().map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match name.as_str().unwrap_or("") {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno as u16),
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => return Err(format!("unsupported seccomp action {other:?}")),
    })
}

fn compare(arg: &Value) -> Result<ScmpArgCompare, String> {
    let index = arg["index"]
        .as_u64()
        .ok_or("seccomp argument without an index")? as u32;
    let value = arg["value"].as_u64().unwrap_or(0);
    let two = arg["valueTwo"].as_u64().unwrap_or(0);
    let (op, datum) = match arg["op"].as_str().unwrap_or("") {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, value),
        // (arg & value) == valueTwo, as the spec and runc read it.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(value), two),
        other => return Err(format!("unsupported seccomp operator {other:?}")),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// Compiles the spec's seccomp object to a BPF program.
pub fn compile(seccomp: &Value) -> Result<Bpf, crate::Error> {
    compile_program(seccomp).map_err(crate::Error::Seccomp)
}

fn compile_program(seccomp: &Value) -> Result<Bpf, String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("seccomp: {what}: {e}");
    let default = action(&seccomp["defaultAction"], &seccomp["defaultErrnoRet"])?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("new filter", &e))?;
    // What the profile does not allow is refused; the runtime decides on
    // no-new-privileges, not the filter.
    ctx.set_ctl_nnp(false).map_err(|e| err("nnp", &e))?;
    for a in seccomp["architectures"].as_array().into_iter().flatten() {
        let name = a.as_str().unwrap_or("");
        let arch: ScmpArch = name.parse().map_err(|e| err(name, &e))?;
        ctx.add_arch(arch).map_err(|e| err(name, &e))?;
    }
    let mut flags = 0;
    for f in seccomp["flags"].as_array().into_iter().flatten() {
        match f.as_str().unwrap_or("") {
            "SECCOMP_FILTER_FLAG_LOG" => flags |= SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // One thread here: synchronizing threads is moot.
            "SECCOMP_FILTER_FLAG_TSYNC" => {}
            other => return Err(format!("unsupported seccomp flag {other:?}")),
        }
    }
    for rule in seccomp["syscalls"].as_array().into_iter().flatten() {
        let act = action(&rule["action"], &rule["errnoRet"])?;
        if act == default {
            continue;
        }
        let conds = rule["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?;
        // libseccomp compares each argument once per rule: conditions on the
        // same argument become rules of their own, as runc does.
        let mut seen = std::collections::HashSet::new();
        let repeated = rule["args"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| !seen.insert(a["index"].as_u64()));
        for name in rule["names"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("");
            // A syscall this kernel and libseccomp do not know cannot be made.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if conds.is_empty() {
                ctx.add_rule(act, sc).map(|_| ())
            } else if repeated {
                conds.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map(|_| ())
                })
            } else {
                ctx.add_rule_conditional(act, sc, &conds).map(|_| ())
            };
            added.map_err(|e| err(name, &e))?;
        }
    }
    // Safety: memfd_create with a NUL-terminated name; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(err("memfd", &std::io::Error::last_os_error()));
    }
    // Safety: a new descriptor nothing else owns.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ctx.export_bpf(file.as_fd())
        .map_err(|e| err("export", &e))?;
    use std::io::{Read, Seek};
    file.rewind().map_err(|e| err("export", &e))?;
    let mut program = Vec::new();
    file.read_to_end(&mut program)
        .map_err(|e| err("export", &e))?;
    Ok(Bpf { program, flags })
}

/// The cached program for `seccomp` under `cache`, compiled and stored first
/// when it is not there yet.
pub fn cached(cache: &Path, seccomp: &Value) -> Result<Bpf, crate::Error> {
    let key = hex(&sha2::Sha256::digest(
        format!("{}\n{}", std::env::consts::ARCH, seccomp).as_bytes(),
    ));
    let path: PathBuf = cache.join(format!("{key}.bpf"));
    if let Some(bpf) = std::fs::read(&path).ok().and_then(|b| Bpf::from_file(&b)) {
        return Ok(bpf);
    }
    let bpf = compile(seccomp)?;
    // Best effort: a cache that cannot be written only costs the next compile.
    let _ = std::fs::create_dir_all(cache).and_then(|_| {
        let data = bpf.to_file();
        let tmp = cache.join(format!(".{key}.{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    });
    Ok(bpf)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Loads `bpf` into the calling thread (and what it later executes). Needs
/// no-new-privileges or CAP_SYS_ADMIN, as any seccomp filter does.
pub fn load(bpf: &Bpf) -> std::io::Result<()> {
    if !bpf.program.len().is_multiple_of(8) || bpf.program.len() / 8 > u16::MAX as usize {
        return Err(std::io::Error::other("malformed seccomp program"));
    }
    let prog = libc::sock_fprog {
        len: (bpf.program.len() / 8) as u16,
        filter: bpf.program.as_ptr() as *mut libc::sock_filter,
    };
    // Safety: seccomp(SECCOMP_SET_MODE_FILTER) reads `prog`, which points at
    // `len` 8-byte instructions owned by `bpf` for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            bpf.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child under `bpf` (with no-new-privileges); returns
    /// the child's exit code.
    fn in_child(bpf: &Bpf, f: fn() -> i32) -> i32 {
        // Safety: the child only makes syscalls and exits.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // Safety: prctl with integer arguments.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let code = if load(bpf).is_ok() { f() } else { 99 };
                // Safety: leaving the child at once.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)
            {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
                other => panic!("{other:?}"),
            },
        }
    }

    /// clone(2) with `flags` and no new stack (a fork): 0 when it worked, else errno.
    fn raw_clone(flags: u64) -> i32 {
        // Safety: a fork-like clone; the child exits at once.
        let r = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0) };
        match r {
            0 => unsafe { libc::_exit(0) },
            r if r > 0 => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(r as i32), None);
                0
            }
            _ => std::io::Error::last_os_error().raw_os_error().unwrap_or(-1),
        }
    }

    #[test]
    fn docker_profile_refuses_namespaces_and_unknown_calls_but_forks() {
        let caps: Vec<String> = crate::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let profile = crate::seccomp::to_oci(&crate::seccomp_default::default_profile(), &caps)
            .expect("profile");
        let bpf = compile(&profile).expect("compile");
        assert!(!bpf.program.is_empty());
        // A plain fork goes through; a fork into a new user namespace does not.
        assert_eq!(in_child(&bpf, || raw_clone(0)), 0);
        assert_eq!(
            in_child(&bpf, || raw_clone(libc::CLONE_NEWUSER as u64)),
            libc::EPERM
        );
        // clone3 answers ENOSYS, so libcs fall back to clone.
        assert_eq!(
            in_child(&bpf, || {
                // Safety: clone3 with a null argument: refused before it is read.
                let r = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
                if r < 0 {
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
                } else {
                    0
                }
            }),
            libc::ENOSYS
        );
        // Not in the list: refused with EPERM.
        assert_eq!(
            in_child(&bpf, || {
                // Safety: keyctl with a bad command; only the errno matters.
                let r = unsafe { libc::syscall(libc::SYS_keyctl, -1, 0, 0, 0, 0) };
                if r < 0 {
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
                } else {
                    0
                }
            }),
            libc::EPERM
        );
    }

    #[test]
    fn cache_round_trip_and_notify_profiles_stay_with_the_runtime() {
        let dir = tempfile::tempdir().expect("tmp");
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{ "names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }],
        });
        let a = cached(dir.path(), &profile).expect("compile");
        assert_eq!(a.flags, SECCOMP_FILTER_FLAG_LOG);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        let b = cached(dir.path(), &profile).expect("cached");
        assert_eq!(a, b);
        assert!(cacheable(&profile));
        let mut notify = profile.clone();
        notify["syscalls"][0]["action"] = "SCMP_ACT_NOTIFY".into();
        assert!(!cacheable(&notify));
        assert!(compile(&serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"})).is_err());
    }
}
