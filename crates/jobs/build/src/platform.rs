//! Platform strings (`os[/arch[/variant]]`) as containerd's parser judges them.

const OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];
const ARCHES: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
    "x86_64",
    "aarch64",
    "armhf",
    "armel",
    "i386",
];

/// Checks `p`; the error is containerd's text.
pub fn check(p: &str) -> Result<(), String> {
    let parts: Vec<String> = p.split('/').map(|s| s.to_ascii_lowercase()).collect();
    let bad = || format!("{p:?}: unknown operating system or architecture: invalid argument");
    match parts.as_slice() {
        [one] if OSES.contains(&one.as_str()) || ARCHES.contains(&one.as_str()) => Ok(()),
        [os, arch] | [os, arch, _]
            if OSES.contains(&os.as_str()) && ARCHES.contains(&arch.as_str()) =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn platforms() {
        assert!(super::check("linux/amd64").is_ok());
        assert!(super::check("linux/arm64/v8").is_ok());
        assert!(super::check("linux").is_ok());
        let e = super::check("foobar").expect_err("bad");
        assert!(e.contains("unknown operating system"), "{e}");
        assert!(super::check("linux/nope").is_err());
    }
}
