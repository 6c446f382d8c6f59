//! The seam between a container's lifecycle and what needs root: preparing its
//! bundle (overlay mount, `/etc` files, OCI spec) and running its shim. berthd
//! uses [`Shim`]; the lifecycle's tests use a fake that runs an ordinary process
//! in the container's place, so start, exit, restart policies and restore are
//! tested without root, mounts or namespaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::network::NetSetup;
use berth_api::{ApiError, Result};
use berth_runtime::shim::{Report, StartArgs};
use tokio::io::AsyncBufReadExt;

use crate::model::Record;
use crate::{shim_command, BoxFuture, Containers};

/// A started shim.
pub struct Spawned {
    /// Its first report: the container's PID, or why it did not start.
    pub report: Report,
    /// The shim's own PID (found again after a daemon restart).
    pub shim_pid: i32,
    /// Resolves when the shim has ended (its exit record is then written).
    pub ended: BoxFuture<'static, ()>,
    /// The container's output, when [`StartArgs::attach`] asked for it.
    pub live: Option<crate::live::LiveOutput>,
}

/// How containers are prepared and run.
pub trait Launcher: Send + Sync {
    /// Everything before the shim: root filesystem, files, spec; the bundle's
    /// directory. Blocking.
    fn prepare(&self, c: &Containers, rec: &Record, net: Option<&NetSetup>) -> Result<PathBuf>;
    /// Starts the shim.
    fn spawn(&self, shim: &Path, args: StartArgs) -> BoxFuture<'static, Result<Spawned>>;
    /// Undoes `prepare` once the container ended. Blocking.
    fn cleanup(&self, c: &Containers, id: &str);
}

/// The real thing: `bundle::prepare` and a `berth-shim` process.
pub struct Shim;

impl Launcher for Shim {
    fn prepare(&self, c: &Containers, rec: &Record, net: Option<&NetSetup>) -> Result<PathBuf> {
        crate::bundle::prepare(c, rec, net)
    }

    fn spawn(&self, shim: &Path, args: StartArgs) -> BoxFuture<'static, Result<Spawned>> {
        let attach = args.attach;
        let mut cmd = shim_command(shim);
        cmd.args(args.to_args())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(false);
        Box::pin(async move {
            let mut child = cmd
                .spawn()
                .map_err(|e| ApiError::system(format!("starting the shim: {e}")))?;
            let mut first = String::new();
            let mut live = None;
            if let Some(out) = child.stdout.take() {
                let mut r = tokio::io::BufReader::new(out);
                let _ =
                    tokio::time::timeout(Duration::from_secs(60), r.read_line(&mut first)).await;
                // The rest of stdout, with what the reader already holds of it.
                if attach {
                    live = Some(Box::pin(r) as crate::live::LiveOutput);
                }
            }
            let report = Report::parse(&first).unwrap_or(Report::Failed {
                error: "the shim did not start the container".into(),
                exit_code: 125,
            });
            let shim_pid = child.id().map(|p| p as i32).unwrap_or(0);
            Ok(Spawned {
                report,
                shim_pid,
                ended: Box::pin(async move {
                    let _ = child.wait().await;
                }),
                live,
            })
        })
    }

    fn cleanup(&self, c: &Containers, id: &str) {
        crate::bundle::cleanup(c, id)
    }
}
