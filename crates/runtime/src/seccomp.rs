//! Seccomp profiles in Docker's format (what `--security-opt seccomp=profile.json`
//! sends, and how Docker describes its default) turned into the OCI spec's
//! `linux.seccomp` for one container, with Docker's rules: entries are kept or left
//! out by the container's capabilities, the host's architecture and kernel
//! version; `archMap` contributes the native architecture and its companions.
//!
//! Berth's default profile is an allowlist with the behaviour of Docker's: the
//! syscalls every container may make, more for the capabilities that govern the
//! rest, namespace-creating clone flags refused without CAP_SYS_ADMIN, clone3
//! answered with ENOSYS so that libcs fall back to clone, and everything else
//! refused with EPERM.

use serde::Deserialize;
use serde_json::{json, Value};

/// A profile in Docker's format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    pub default_errno_ret: Option<u32>,
    pub architectures: Option<Vec<String>>,
    pub arch_map: Option<Vec<ArchMap>>,
    pub flags: Option<Vec<String>>,
    pub listener_path: Option<String>,
    pub listener_metadata: Option<String>,
    pub syscalls: Option<Vec<Syscall>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    pub name: Option<String>,
    pub names: Option<Vec<String>>,
    pub action: String,
    pub errno_ret: Option<u32>,
    pub args: Option<Vec<Arg>>,
    pub includes: Option<Filter>,
    pub excludes: Option<Filter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// When an entry applies: capabilities (all of them), architectures (Go's
/// names: amd64, arm64, …) and a minimum kernel version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub caps: Option<Vec<String>>,
    pub arches: Option<Vec<String>>,
    pub min_kernel: Option<String>,
}

/// Parses a profile the way dockerd words its failure.
pub fn parse(text: &str) -> Result<Profile, crate::Error> {
    serde_json::from_str(text)
        .map_err(|e| crate::Error::Seccomp(format!("Decoding seccomp profile failed: {e}")))
}

/// The host's architecture in Go's words (Docker's profiles use them) and libseccomp's.
fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "x86" => ("386", "SCMP_ARCH_X86"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        other => (other, ""),
    }
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The profile for a container with capabilities `caps` (`CAP_…` names), as the
/// spec's `linux.seccomp`.
pub fn to_oci(p: &Profile, caps: &[String]) -> Result<Value, crate::Error> {
    to_oci_on(p, caps, native_arch(), kernel_version()).map_err(crate::Error::Seccomp)
}

pub(crate) fn to_oci_on(
    p: &Profile,
    caps: &[String],
    (arch, scmp_arch): (&str, &str),
    kernel: (u32, u32),
) -> Result<Value, String> {
    let has_cap = |c: &String| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
    let at_least = |min: &str| -> Result<bool, String> {
        let want = parse_version(min)
            .ok_or_else(|| format!("invalid kernel version in seccomp profile: {min:?}"))?;
        Ok(kernel >= want)
    };
    let mut out = json!({ "defaultAction": p.default_action });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    let archs: Vec<String> = match (&p.architectures, &p.arch_map) {
        (Some(a), Some(m)) if !a.is_empty() && !m.is_empty() => {
            return Err("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
        }
        (Some(a), _) if !a.is_empty() => a.clone(),
        (_, Some(m)) => m
            .iter()
            .filter(|e| e.architecture == scmp_arch)
            .flat_map(|e| {
                std::iter::once(e.architecture.clone())
                    .chain(e.sub_architectures.clone().unwrap_or_default())
            })
            .collect(),
        _ => Vec::new(),
    };
    if !archs.is_empty() {
        out["architectures"] = json!(archs);
    }
    if let Some(f) = p.flags.as_ref().filter(|f| !f.is_empty()) {
        out["flags"] = json!(f);
    }
    if let Some(l) = &p.listener_path {
        out["listenerPath"] = json!(l);
    }
    if let Some(l) = &p.listener_metadata {
        out["listenerMetadata"] = json!(l);
    }
    let mut syscalls = Vec::new();
    for s in p.syscalls.iter().flatten() {
        if s.name.is_some() && s.names.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into());
        }
        if let Some(x) = &s.excludes {
            if x.arches.iter().flatten().any(|a| a == arch) {
                continue;
            }
            if x.caps.iter().flatten().any(has_cap) {
                continue;
            }
            if let Some(min) = &x.min_kernel {
                if at_least(min)? {
                    continue;
                }
            }
        }
        if let Some(i) = &s.includes {
            if let Some(a) = i.arches.as_ref().filter(|a| !a.is_empty()) {
                if !a.iter().any(|a| a == arch) {
                    continue;
                }
            }
            if !i.caps.iter().flatten().all(has_cap) {
                continue;
            }
            if let Some(min) = &i.min_kernel {
                if !at_least(min)? {
                    continue;
                }
            }
        }
        let names: Vec<String> = match (&s.name, &s.names) {
            (Some(n), _) => vec![n.clone()],
            (None, Some(n)) => n.clone(),
            (None, None) => Vec::new(),
        };
        if names.is_empty() {
            continue;
        }
        let mut rule = json!({ "names": names, "action": s.action });
        if let Some(e) = s.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if let Some(args) = s.args.as_ref().filter(|a| !a.is_empty()) {
            rule["args"] = json!(args
                .iter()
                .map(|a| json!({
                    "index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op,
                }))
                .collect::<Vec<_>>());
        }
        syscalls.push(rule);
    }
    out["syscalls"] = json!(syscalls);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: (&str, &str) = ("amd64", "SCMP_ARCH_X86_64");

    #[test]
    fn custom_profiles_in_dockers_format() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":511,"op":"SCMP_CMP_EQ"}]},
                            {"names":["uname"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
        )
        .expect("parse");
        let v = to_oci_on(&p, &[], AMD64, (6, 1)).expect("profile");
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(
            v["syscalls"][0],
            json!({"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13})
        );
        assert_eq!(v["syscalls"][1]["args"][0]["value"], 511);
        assert_eq!(v["syscalls"][2]["names"], json!(["uname"]));
        let v = to_oci_on(&p, &["CAP_SYS_ADMIN".into()], AMD64, (6, 1)).expect("profile");
        assert_eq!(v["syscalls"].as_array().map(Vec::len), Some(2));
        // The oci-spec type reads what comes out.
        let typed: Result<oci_spec::runtime::LinuxSeccomp, _> = serde_json::from_value(v);
        assert!(typed.is_ok(), "{typed:?}");

        let e = parse("{not json").expect_err("bad json");
        assert!(
            e.to_string()
                .starts_with("Decoding seccomp profile failed: "),
            "{e}"
        );
        let both = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#)
            .expect("parse");
        assert!(to_oci_on(&both, &[], AMD64, (6, 1))
            .expect_err("name and names")
            .contains("use either 'name' or 'names'"));
        let both = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#)
            .expect("parse");
        assert!(to_oci_on(&both, &[], AMD64, (6, 1)).is_err());
        assert_eq!(parse_version("6.1.0-28-amd64"), Some((6, 1)));
    }
}
