//! A real dockerd (Debian's `docker.io`, 20.10) beside the test daemons, as on a
//! host people move from dockerd to Berth on: its own data root, exec root,
//! socket and pidfile, and its defaults otherwise (`docker0` on 172.17.0.0/16,
//! iptables on: FORWARD policy DROP, `br_netfilter` loaded). `cargo xtask test`
//! runs every test with one in force and gives its socket in `BERTH_TEST_DOCKERD`.
//!
//! When it stops, what it added to the host goes: the iptables rules and chains
//! that were not there before it started, its FORWARD policy, and `docker0` if it
//! made it. Berth's rules are never touched here: [`berth_leftovers`] reports them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::Result;

/// The socket (`unix://…`) of the dockerd `cargo xtask test` started, if any.
pub fn host() -> Option<String> {
    std::env::var("BERTH_TEST_DOCKERD")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Runs the docker CLI against the dockerd at `host`.
pub fn docker_at(host: &str, args: &[&str]) -> std::process::Output {
    Command::new(crate::docker_cli())
        .args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running docker: {e}"))
}

pub struct Dockerd {
    pub host: String,
    child: Child,
    dir: PathBuf,
    rules_before: Vec<String>,
    had_docker0: bool,
}

fn iptables_save() -> Vec<String> {
    Command::new("iptables-save")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// (table, line) for every chain declaration and rule in `iptables-save` output.
fn by_table(lines: &[String]) -> Vec<(String, String)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for l in lines {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
        } else if l.starts_with(':') || l.starts_with("-A ") {
            // Counters change; the rest says what the rule is.
            let l = match l.split_once(" [") {
                Some((head, _)) if l.starts_with(':') => head.to_string(),
                _ => l.clone(),
            };
            out.push((table.clone(), l));
        }
    }
    out
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Dockerd {
    /// Starts dockerd with its state in a fresh directory under `parent`, and
    /// loads `image` (a `docker save` archive) into it.
    pub fn start(parent: &Path, image: Option<&Path>) -> Result<Dockerd> {
        let dir = parent.join("test-dockerd");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sock = dir.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let rules_before = iptables_save();
        let had_docker0 = link_exists("docker0");
        let log = std::fs::File::create(dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("dockerd")
            .arg("-H")
            .arg(&host)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting dockerd (apt-get install docker.io): {e}"))?;
        let mut d = Dockerd {
            host,
            child,
            dir,
            rules_before,
            had_docker0,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.docker(&["version"]).status.success() {
                break;
            }
            if let Ok(Some(s)) = d.child.try_wait() {
                return Err(format!("dockerd exited ({s}): {}", d.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("dockerd did not answer: {}", d.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // dockerd sets the FORWARD policy to DROP when it turns IPv4 forwarding
        // on itself, as on a fresh host; where forwarding was on already (a host
        // that ran Berth, or this one's earlier test runs) it leaves the policy
        // alone. The hosts people move from are the former: make it so.
        let forward = Command::new("iptables")
            .args(["-w", "-S", "FORWARD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !forward.starts_with("-P FORWARD DROP") {
            let _ = Command::new("iptables")
                .args(["-w", "-P", "FORWARD", "DROP"])
                .status();
        }
        if let Some(img) = image {
            let o = d.docker(&["load", "-q", "-i", &img.to_string_lossy()]);
            if !o.status.success() {
                return Err(format!(
                    "loading {} into dockerd: {}",
                    img.display(),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
        Ok(d)
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        crate::tail(&s, 20)
    }

    /// Runs the docker CLI against this dockerd.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        docker_at(&self.host, args)
    }

    /// Removes what this dockerd added to the host's iptables and links.
    fn clean_host(&self) {
        let before = by_table(&self.rules_before);
        let after = by_table(&iptables_save());
        let added: Vec<&(String, String)> = after
            .iter()
            .filter(|x| !before.contains(x) && !x.1.contains("BERTH"))
            .collect();
        // Rules first (the chains they jump to cannot go while referenced).
        for (table, rule) in added.iter().filter(|(_, l)| l.starts_with("-A ")) {
            let mut args = vec!["-w".to_string(), "-t".into(), table.clone()];
            args.extend(
                rule.replacen("-A ", "-D ", 1)
                    .split_whitespace()
                    .map(str::to_string),
            );
            let _ = Command::new("iptables")
                .args(&args)
                .stderr(Stdio::null())
                .status();
        }
        for (table, decl) in added.iter().filter(|(_, l)| l.starts_with(':')) {
            let mut parts = decl.trim_start_matches(':').split_whitespace();
            let (Some(chain), Some(policy)) = (parts.next(), parts.next()) else {
                continue;
            };
            if policy == "-" {
                for op in ["-F", "-X"] {
                    let _ = Command::new("iptables")
                        .args(["-w", "-t", table, op, chain])
                        .stderr(Stdio::null())
                        .status();
                }
            } else {
                // A built-in chain whose policy changed (dockerd's FORWARD DROP):
                // back to what it was, ACCEPT when the table was not there.
                let was = before
                    .iter()
                    .find_map(|(t, l)| {
                        let mut p = l.trim_start_matches(':').split_whitespace();
                        (t == table && l.starts_with(':') && p.next() == Some(chain))
                            .then(|| p.next().unwrap_or("ACCEPT").to_string())
                    })
                    .unwrap_or_else(|| "ACCEPT".into());
                let _ = Command::new("iptables")
                    .args(["-w", "-t", table, "-P", chain, &was])
                    .status();
            }
        }
        if !self.had_docker0 && link_exists("docker0") {
            let _ = Command::new("ip")
                .args(["link", "delete", "docker0"])
                .status();
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.clean_host();
        // Its data root holds overlay mounts until they are gone with it.
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.dir.join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Rules of Berth's left on the host: its nftables tables and its iptables
/// chains. Meant to be empty once every test daemon has stopped.
pub fn berth_leftovers() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(o) = Command::new("nft").args(["list", "tables"]).output() {
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .is_some_and(|t| t.starts_with("berth"))
                })
                .map(str::to_string),
        );
    }
    out.extend(iptables_save().into_iter().filter(|l| l.contains("BERTH")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_compared_without_counters() {
        let lines: Vec<String> = [
            "# Generated by iptables-save",
            "*filter",
            ":FORWARD DROP [12:345]",
            ":DOCKER - [0:0]",
            "-A FORWARD -j DOCKER",
            "COMMIT",
            "*nat",
            "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t = by_table(&lines);
        assert_eq!(
            t,
            vec![
                ("filter".to_string(), ":FORWARD DROP".to_string()),
                ("filter".into(), ":DOCKER -".into()),
                ("filter".into(), "-A FORWARD -j DOCKER".into()),
                (
                    "nat".into(),
                    "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE".into()
                ),
            ]
        );
    }
}
