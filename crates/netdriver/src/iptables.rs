//! Berth's accept rules in the host's iptables `filter` table, for hosts where
//! another program's firewall would drop what Berth's bridges forward.
//!
//! A packet passes the `forward` hook only if every base chain there lets it:
//! an accept in Berth's own nftables table does not undo a drop elsewhere.
//! dockerd sets the iptables FORWARD policy to DROP and loads `br_netfilter`
//! (so even traffic between two ports of one bridge goes through that chain),
//! which silently cut Berth's containers off from each other and the outside.
//! Berth therefore keeps one chain of its own in the iptables filter table,
//! named after its nftables table and jumped to from the top of FORWARD, as
//! libvirt and netavark do. It accepts what Berth's bridges need and nothing
//! else: traffic from a bridge, and replies or DNATed (published-port)
//! connections to it. Isolation between networks and `--internal` stay in
//! Berth's nftables table, whose drops still apply.
//!
//! The rules go through the host's `iptables-restore`, whichever backend (nft or
//! legacy) it uses: that is where another daemon's policy lives, and native nft
//! rules written into iptables-nft's tables would make them unreadable to
//! iptables (and so to dockerd). The `iptables` crate runs the same binary one
//! rule at a time; a restore rewrites the chain in one transaction instead.
//! Nothing outside Berth's chain and its one jump is ever changed.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{Error, Result};

const FORWARD: &str = "FORWARD";

/// Where the host's iptables is, if it has one. Without it no iptables rule,
/// and so no iptables policy, can be in force.
fn binary(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether the host has iptables at all.
pub fn available() -> bool {
    binary("iptables").is_some() && binary("iptables-restore").is_some()
}

/// The `iptables-restore --noflush` input that makes `chain` hold exactly the
/// accepts `bridges` need (declaring a chain flushes it; nothing else is touched).
pub fn restore_input(chain: &str, bridges: &[String]) -> String {
    let mut s = format!("*filter\n:{chain} - [0:0]\n");
    for b in bridges {
        s.push_str(&format!("-A {chain} -i {b} -j ACCEPT\n"));
        s.push_str(&format!(
            "-A {chain} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n"
        ));
    }
    s.push_str("COMMIT\n");
    s
}

fn iptables(args: &[&str]) -> Result<std::process::Output> {
    let bin = binary("iptables").ok_or_else(|| Error::Iptables("iptables not found".into()))?;
    Command::new(bin)
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Iptables(format!("running iptables: {e}")))
}

fn has_jump(chain: &str) -> Result<bool> {
    Ok(iptables(&["-t", "filter", "-C", FORWARD, "-j", chain])?
        .status
        .success())
}

/// Makes `chain` accept what `bridges` need and puts its jump at the top of
/// FORWARD (once). A host without iptables needs nothing. Blocking.
pub fn apply(chain: &str, bridges: &[String]) -> Result<()> {
    let Some(restore) = binary("iptables-restore") else {
        return Ok(());
    };
    if binary("iptables").is_none() {
        return Ok(());
    }
    let mut child = Command::new(restore)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Iptables(format!("running iptables-restore: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(restore_input(chain, bridges).as_bytes())
            .map_err(|e| Error::Iptables(format!("writing to iptables-restore: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Iptables(format!("iptables-restore: {e}")))?;
    if !out.status.success() {
        return Err(Error::Iptables(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if !has_jump(chain)? {
        let out = iptables(&["-t", "filter", "-I", FORWARD, "1", "-j", chain])?;
        if !out.status.success() {
            return Err(Error::Iptables(format!(
                "adding the jump to {chain}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// Whether `chain` exists in the filter table.
pub fn exists(chain: &str) -> bool {
    available()
        && iptables(&["-t", "filter", "-S", chain])
            .map(|o| o.status.success())
            .unwrap_or(false)
}

/// Removes the jumps to `chain` and the chain itself; a missing one is not an
/// error. Blocking.
pub fn remove(chain: &str) -> Result<()> {
    if !available() {
        return Ok(());
    }
    // A jump added twice (two daemons racing on one data root's chain) is
    // removed twice; the bound keeps a failing iptables from looping.
    for _ in 0..16 {
        if !has_jump(chain)? {
            break;
        }
        iptables(&["-t", "filter", "-D", FORWARD, "-j", chain])?;
    }
    if exists(chain) {
        for op in ["-F", "-X"] {
            let out = iptables(&["-t", "filter", op, chain])?;
            if !out.status.success() {
                return Err(Error::Iptables(format!(
                    "iptables {op} {chain}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_input_accepts_each_bridge_and_only_its_chain() {
        let s = restore_input("berth-x", &["b0".into(), "br-1".into()]);
        assert!(s.starts_with("*filter\n:berth-x - [0:0]\n"));
        assert!(s.ends_with("COMMIT\n"));
        assert!(s.contains("-A berth-x -i b0 -j ACCEPT\n"));
        assert!(s.contains(
            "-A berth-x -o br-1 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n"
        ));
        // Every rule is in Berth's chain: FORWARD and other chains are never named.
        assert!(s
            .lines()
            .filter(|l| l.starts_with('-'))
            .all(|l| l.starts_with("-A berth-x ")));
        assert_eq!(s.lines().filter(|l| l.starts_with("-A")).count(), 4);
    }

    #[test]
    fn no_bridges_leaves_an_empty_chain() {
        assert_eq!(
            restore_input("berth", &[]),
            "*filter\n:berth - [0:0]\nCOMMIT\n"
        );
    }
}
