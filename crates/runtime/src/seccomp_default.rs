//! Berth's default seccomp profile, in Docker's format: the allowlist every
//! container gets, the syscalls each capability opens, those of each
//! architecture family, and clone's namespace flags refused without
//! CAP_SYS_ADMIN (the behaviour of Docker's default profile).

use crate::seccomp::{ArchMap, Arg, Filter, Profile, Syscall};

/// Syscalls any container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls a capability opens.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Syscalls of one architecture family (Go's names).
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: clone
/// is allowed without CAP_SYS_ADMIN when none of these flags is set.
const NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Berth's default profile (Docker's behaviour), in Docker's format.
pub fn default_profile() -> Profile {
    let allow = |names: &[&str]| Syscall {
        names: Some(names.iter().map(|s| s.to_string()).collect()),
        action: "SCMP_ACT_ALLOW".into(),
        ..Default::default()
    };
    let mut syscalls = vec![allow(ALLOWED)];
    // ptrace and process_vm_* are safe from kernel 4.8 on (no seccomp bypass).
    syscalls.push(Syscall {
        includes: Some(Filter {
            min_kernel: Some("4.8".into()),
            ..Default::default()
        }),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    syscalls.push(Syscall {
        // Any socket family but AF_VSOCK (40).
        args: Some(vec![Arg {
            index: 0,
            value: 40,
            value_two: 0,
            op: "SCMP_CMP_NE".into(),
        }]),
        ..allow(&["socket"])
    });
    // personality(2) with the harmless personas only: PER_LINUX, PER_LINUX32,
    // UNAME26 variants, and the query (0xffffffff).
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(Syscall {
            args: Some(vec![Arg {
                index: 0,
                value: persona,
                value_two: 0,
                op: "SCMP_CMP_EQ".into(),
            }]),
            ..allow(&["personality"])
        });
    }
    for (arches, names) in BY_ARCH {
        syscalls.push(Syscall {
            includes: Some(Filter {
                arches: Some(arches.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            ..allow(names)
        });
    }
    for (cap, names) in BY_CAPABILITY {
        syscalls.push(Syscall {
            includes: Some(Filter {
                caps: Some(vec![cap.to_string()]),
                ..Default::default()
            }),
            ..allow(names)
        });
    }
    let without_sys_admin = |arches: Option<Vec<String>>| Filter {
        caps: Some(vec!["CAP_SYS_ADMIN".into()]),
        arches,
        min_kernel: None,
    };
    // clone without namespace flags; s390 passes the flags second.
    syscalls.push(Syscall {
        args: Some(vec![Arg {
            index: 0,
            value: NAMESPACE_FLAGS,
            value_two: 0,
            op: "SCMP_CMP_MASKED_EQ".into(),
        }]),
        excludes: Some(without_sys_admin(Some(vec!["s390".into(), "s390x".into()]))),
        ..allow(&["clone"])
    });
    syscalls.push(Syscall {
        args: Some(vec![Arg {
            index: 1,
            value: NAMESPACE_FLAGS,
            value_two: 0,
            op: "SCMP_CMP_MASKED_EQ".into(),
        }]),
        includes: Some(Filter {
            arches: Some(vec!["s390".into(), "s390x".into()]),
            ..Default::default()
        }),
        excludes: Some(without_sys_admin(None)),
        ..allow(&["clone"])
    });
    // clone3's flags are behind a pointer seccomp cannot read: ENOSYS makes libcs
    // fall back to clone, which the rules above check.
    syscalls.push(Syscall {
        names: Some(vec!["clone3".into()]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(38),
        excludes: Some(without_sys_admin(None)),
        ..Default::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(1),
        arch_map: Some(
            [
                ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"][..]),
                ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
                ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
                ("SCMP_ARCH_RISCV64", &[]),
            ]
            .iter()
            .map(|(a, subs)| ArchMap {
                architecture: a.to_string(),
                sub_architectures: Some(subs.iter().map(|s| s.to_string()).collect()),
            })
            .collect(),
        ),
        syscalls: Some(syscalls),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::to_oci_on;
    use serde_json::{json, Value};

    const AMD64: (&str, &str) = ("amd64", "SCMP_ARCH_X86_64");

    fn names_for(v: &Value, action: &str) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["action"] == action && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn default_profile_follows_capabilities_and_arch() {
        let caps: Vec<String> = vec!["CAP_CHOWN".into(), "CAP_NET_RAW".into()];
        let v = to_oci_on(&default_profile(), &caps, AMD64, (6, 1)).expect("profile");
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let allowed = names_for(&v, "SCMP_ACT_ALLOW");
        for n in ["read", "arch_prctl", "ptrace", "openat2"] {
            assert!(allowed.iter().any(|a| a == n), "{n} must be allowed");
        }
        for n in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "cacheflush",
            "chroot",
        ] {
            assert!(!allowed.iter().any(|a| a == n), "{n} must be refused");
        }
        assert_eq!(names_for(&v, "SCMP_ACT_ERRNO"), vec!["clone3".to_string()]);
        // clone is allowed only without namespace flags, with arg 0 on amd64.
        let clone: Vec<&Value> = v["syscalls"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["names"] == json!(["clone"]))
            .collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["index"], 0);
        assert_eq!(clone[0]["args"][0]["value"], NAMESPACE_FLAGS);

        // CAP_SYS_ADMIN opens mount and plain clone/clone3; CAP_SYS_CHROOT chroot.
        let caps: Vec<String> = vec!["CAP_SYS_ADMIN".into(), "CAP_SYS_CHROOT".into()];
        let v = to_oci_on(&default_profile(), &caps, AMD64, (6, 1)).expect("profile");
        let allowed = names_for(&v, "SCMP_ACT_ALLOW");
        for n in ["mount", "clone", "clone3", "chroot", "setns"] {
            assert!(allowed.iter().any(|a| a == n), "{n} must be allowed");
        }
        assert!(names_for(&v, "SCMP_ACT_ERRNO").is_empty());
        // An old kernel does not get ptrace.
        let v = to_oci_on(&default_profile(), &[], AMD64, (4, 4)).expect("profile");
        assert!(!names_for(&v, "SCMP_ACT_ALLOW")
            .iter()
            .any(|a| a == "ptrace"));
        // On arm64: the arm syscalls, not arch_prctl.
        let v = to_oci_on(
            &default_profile(),
            &[],
            ("arm64", "SCMP_ARCH_AARCH64"),
            (6, 1),
        )
        .expect("profile");
        let allowed = names_for(&v, "SCMP_ACT_ALLOW");
        assert!(allowed.iter().any(|a| a == "cacheflush"));
        assert!(!allowed.iter().any(|a| a == "arch_prctl"));
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
    }
}
