//! The protocol between the daemon and `berth-shim`, defined once for both
//! sides: the shim's arguments ([`StartArgs`], and [`ExecArgs`] for
//! `berth-shim exec`), the lines it reports when the process started, failed or
//! (for execs) ended ([`Report`]), and the exit record it leaves
//! ([`crate::exit::ExitRecord`]).
//!
//! Versioned for live restore: a daemon reads what shims of older daemons wrote.
//! Reports carry `"v"` since version 1; a report without it is version 0 (the
//! same fields). Fields a reader does not know are ignored, fields it misses take
//! their defaults, so a shim and a daemon one version apart understand each other.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// `berth-shim --id ID --bundle DIR …`: how the daemon starts a container's shim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartArgs {
    pub id: String,
    pub bundle: PathBuf,
    /// libcontainer's (or runc's) state directory.
    pub state_root: PathBuf,
    /// The json-file log.
    pub log: PathBuf,
    /// Where the exit record goes.
    pub exit: PathBuf,
    /// A FIFO the daemon writes the client's stdin into (`docker run -i`).
    pub stdin: Option<PathBuf>,
    /// Keep stdin open for writing while the container runs (`OpenStdin` without
    /// `StdinOnce`).
    pub stdin_hold: bool,
    /// The container has a terminal.
    pub tty: bool,
    /// A FIFO of `rows cols` lines for terminal resizes.
    pub resize: Option<PathBuf>,
    /// The terminal's first size: (rows, cols).
    pub size: Option<(u64, u64)>,
    /// The log's rotation: `--log-opt max-size` (`10m`) and `max-file`.
    pub log_max_size: Option<String>,
    pub log_max_file: Option<u32>,
    /// A runc-compatible binary instead of the built-in libcontainer.
    pub runc: Option<PathBuf>,
    /// A client is attached before the start (`docker run`, `docker start -a`):
    /// after its report line the shim keeps stdout open and copies the
    /// container's output there too, as [`frame_header`]s and their bytes
    /// without a terminal, raw with one. It stops when the reader goes.
    pub attach: bool,
    /// Where the shim listens for clients attaching while the container runs
    /// (see [`crate::attachsock`]).
    pub attach_socket: Option<PathBuf>,
}

/// The header of one chunk of output on an attach stream: Docker's stdcopy
/// frame (stream 1 stdout, 2 stderr; three zero bytes; the big-endian length),
/// so the daemon can hand the frames to a client as they come.
pub fn frame_header(stream: u8, len: u32) -> [u8; 8] {
    let l = len.to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

impl StartArgs {
    /// The shim's command line, without the program.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut l = Line::default();
        l.push("--id", &self.id);
        l.push("--bundle", &self.bundle);
        l.push("--state-root", &self.state_root);
        l.push("--log", &self.log);
        l.push("--exit", &self.exit);
        l.opt("--log-max-size", self.log_max_size.as_ref());
        l.opt("--log-max-file", self.log_max_file.map(|n| n.to_string()));
        if let Some(p) = &self.stdin {
            l.push("--stdin", p);
            if self.stdin_hold {
                l.push("--stdin-hold", "1");
            }
        }
        l.terminal(self.tty, &self.resize, self.size);
        l.opt("--runc", self.runc.as_ref());
        if self.attach {
            l.push("--attach", "1");
        }
        l.opt("--attach-socket", self.attach_socket.as_ref());
        l.0
    }

    /// Reads the shim's command line (without the program).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<StartArgs, Error> {
        let bad = |m: String| Error::Shim(m);
        let mut a = StartArgs::default();
        let (mut id, mut bundle, mut state_root, mut log, mut exit) =
            (None, None, None, None, None);
        let mut it = args.into_iter();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| bad(format!("{k} needs a value")))?;
            let flag = || v == "1" || v == "true";
            match k.as_str() {
                "--id" => id = Some(v),
                "--bundle" => bundle = Some(PathBuf::from(v)),
                "--state-root" => state_root = Some(PathBuf::from(v)),
                "--log" => log = Some(PathBuf::from(v)),
                "--exit" => exit = Some(PathBuf::from(v)),
                "--stdin" => a.stdin = Some(PathBuf::from(v)),
                "--stdin-hold" => a.stdin_hold = flag(),
                "--tty" => a.tty = flag(),
                "--resize" => a.resize = Some(PathBuf::from(v)),
                "--size" => a.size = Some(size(&v)?),
                "--runc" => a.runc = Some(PathBuf::from(v)),
                "--attach" => a.attach = flag(),
                "--attach-socket" => a.attach_socket = Some(PathBuf::from(v)),
                "--log-max-size" => a.log_max_size = Some(v),
                "--log-max-file" => {
                    a.log_max_file = Some(
                        v.parse()
                            .map_err(|_| bad(format!("bad --log-max-file {v}")))?,
                    )
                }
                other => return Err(bad(format!("unknown argument {other}"))),
            }
        }
        a.id = required(id, "--id")?;
        a.bundle = required(bundle, "--bundle")?;
        a.state_root = required(state_root, "--state-root")?;
        a.log = required(log, "--log")?;
        a.exit = required(exit, "--exit")?;
        Ok(a)
    }
}

/// A command line of `--flag value` pairs.
#[derive(Default)]
struct Line(Vec<OsString>);

impl Line {
    fn push(&mut self, flag: &str, v: impl Into<OsString>) {
        self.0.push(flag.into());
        self.0.push(v.into());
    }

    fn opt(&mut self, flag: &str, v: Option<impl Into<OsString>>) {
        if let Some(v) = v {
            self.push(flag, v);
        }
    }

    /// The flags both command lines share: terminal, its first size, runtime.
    fn terminal(&mut self, tty: bool, resize: &Option<PathBuf>, size: Option<(u64, u64)>) {
        if tty {
            self.push("--tty", "1");
        }
        self.opt("--resize", resize.clone());
        self.opt("--size", size.map(|(h, w)| format!("{h}x{w}")));
    }
}

/// `berth-shim exec --id ID --process FILE …`: one process of a `docker exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecArgs {
    pub id: String,
    pub state_root: PathBuf,
    /// The process's OCI `process` object.
    pub process: PathBuf,
    /// The exec's own directory (its console socket goes there).
    pub dir: PathBuf,
    pub tty: bool,
    pub resize: Option<PathBuf>,
    /// (rows, cols).
    pub size: Option<(u64, u64)>,
    pub runc: Option<PathBuf>,
}

impl ExecArgs {
    /// The command line after `berth-shim exec`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut l = Line::default();
        l.push("--id", &self.id);
        l.push("--state-root", &self.state_root);
        l.push("--process", &self.process);
        l.push("--dir", &self.dir);
        l.terminal(self.tty, &self.resize, self.size);
        l.opt("--runc", self.runc.as_ref());
        l.0
    }

    /// Reads the command line after `berth-shim exec`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ExecArgs, Error> {
        let bad = |m: String| Error::Shim(m);
        let mut a = ExecArgs::default();
        let (mut id, mut state_root, mut process, mut dir) = (None, None, None, None);
        let mut it = args.into_iter();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| bad(format!("{k} needs a value")))?;
            match k.as_str() {
                "--id" => id = Some(v),
                "--state-root" => state_root = Some(PathBuf::from(v)),
                "--process" => process = Some(PathBuf::from(v)),
                "--dir" => dir = Some(PathBuf::from(v)),
                "--tty" => a.tty = v == "1" || v == "true",
                "--resize" => a.resize = Some(PathBuf::from(v)),
                "--size" => a.size = Some(size(&v)?),
                "--runc" => a.runc = Some(PathBuf::from(v)),
                other => return Err(bad(format!("unknown argument {other}"))),
            }
        }
        a.id = required(id, "--id")?;
        a.state_root = required(state_root, "--state-root")?;
        a.process = required(process, "--process")?;
        a.dir = required(dir, "--dir")?;
        Ok(a)
    }
}

/// `24x80` (or `24,80`, `24 80`).
fn size(v: &str) -> Result<(u64, u64), Error> {
    v.split_once(['x', ',', ' '])
        .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
        .ok_or_else(|| Error::Shim(format!("bad --size {v}")))
}

fn required<T>(v: Option<T>, flag: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::Shim(format!("{flag} is required")))
}

/// What a shim (or an exec's shim) reports on its report channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The process runs, as this PID (in the daemon's PID namespace).
    Started { pid: i32 },
    /// It never ran: why, and Docker's exit code for it (125, 126, 127).
    Failed { error: String, exit_code: i32 },
    /// An exec's process ended (execs report their end on the same channel).
    Exited { exit_code: i32 },
}

/// A report line as written: every version's fields, all optional.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
}

impl Report {
    /// The line the shim writes (with its newline).
    pub fn to_line(&self) -> String {
        let mut w = Wire {
            v: Some(VERSION),
            ..Default::default()
        };
        match self {
            Report::Started { pid } => w.pid = Some(*pid),
            Report::Failed { error, exit_code } => {
                w.error = Some(error.clone());
                w.exit_code = Some(*exit_code);
            }
            Report::Exited { exit_code } => w.exit_code = Some(*exit_code),
        }
        format!("{}\n", serde_json::to_string(&w).unwrap_or_default())
    }

    /// Reads a line a shim of this or an older version wrote.
    pub fn parse(line: &str) -> Result<Report, Error> {
        let w: Wire = serde_json::from_str(line.trim())
            .map_err(|e| Error::Shim(format!("unreadable report {:?}: {e}", line.trim())))?;
        if w.v.is_some_and(|v| v > VERSION + 1) {
            return Err(Error::Shim(format!(
                "report of protocol version {} (this daemon speaks {VERSION})",
                w.v.unwrap_or_default()
            )));
        }
        Ok(match (w.pid, w.error, w.exit_code) {
            (Some(pid), _, _) => Report::Started { pid },
            (None, Some(error), code) => Report::Failed {
                error,
                exit_code: code.unwrap_or(125),
            },
            (None, None, Some(exit_code)) => Report::Exited { exit_code },
            (None, None, None) => return Err(Error::Shim("empty report".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let a = StartArgs {
            id: "abc".into(),
            bundle: "/run/b".into(),
            state_root: "/run/s".into(),
            log: "/var/l.log".into(),
            exit: "/run/b/exit.json".into(),
            stdin: Some("/x/stdin.fifo".into()),
            stdin_hold: true,
            tty: true,
            resize: Some("/x/resize.fifo".into()),
            size: Some((24, 80)),
            log_max_size: Some("10m".into()),
            log_max_file: Some(3),
            runc: Some("/usr/bin/runc".into()),
            attach: true,
            attach_socket: Some("/run/b/attach.sock".into()),
        };
        let args: Vec<String> = a
            .to_args()
            .into_iter()
            .map(|s| s.to_string_lossy().to_string())
            .collect();
        assert_eq!(StartArgs::parse(args).ok(), Some(a));
        let e = StartArgs::parse(["--id".to_string(), "x".into()]).err();
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("shim: --bundle is required".into())
        );
    }

    #[test]
    fn exec_arguments_round_trip() {
        let a = ExecArgs {
            id: "abc".into(),
            state_root: "/run/s".into(),
            process: "/run/e/process.json".into(),
            dir: "/run/e".into(),
            tty: true,
            resize: Some("/run/e/resize".into()),
            size: Some((30, 100)),
            runc: None,
        };
        let args = a
            .to_args()
            .into_iter()
            .map(|s| s.to_string_lossy().to_string());
        assert_eq!(ExecArgs::parse(args).ok(), Some(a));
    }

    #[test]
    fn reports_of_older_shims_are_read() {
        // Version 0 (no "v"): what shims before the typed protocol wrote.
        assert_eq!(
            Report::parse("{\"pid\":42}\n").ok(),
            Some(Report::Started { pid: 42 })
        );
        assert_eq!(
            Report::parse(r#"{"error":"exec: \"x\": not found","exit_code":127}"#).ok(),
            Some(Report::Failed {
                error: "exec: \"x\": not found".into(),
                exit_code: 127
            })
        );
        assert_eq!(
            Report::parse(r#"{"exit_code":3}"#).ok(),
            Some(Report::Exited { exit_code: 3 })
        );
        // A newer shim's extra fields are ignored.
        assert_eq!(
            Report::parse(r#"{"v":2,"pid":7,"cgroup":"/x"}"#).ok(),
            Some(Report::Started { pid: 7 })
        );
        for r in [
            Report::Started { pid: 1 },
            Report::Failed {
                error: "e".into(),
                exit_code: 126,
            },
            Report::Exited { exit_code: 0 },
        ] {
            assert_eq!(Report::parse(&r.to_line()).ok(), Some(r));
        }
        assert!(Report::parse("").is_err() && Report::parse("{}").is_err());
    }
}
