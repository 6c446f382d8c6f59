//! Runs a command in a container with `berth-runtime` alone: builds the OCI
//! spec with Docker's defaults for a root filesystem, writes the bundle, starts
//! `berth-shim` on it through the shim protocol, waits for the end and prints the
//! exit record and the json-file log (needs root):
//!
//! ```text
//! cargo run -p berth-runtime --example run_bundle -- target/debug/berth-shim ROOTFS DIR sh -c 'echo hi'
//! ```
//!
//! ROOTFS is used as the container's root (read-only); DIR gets the bundle, the
//! runtime's state, the log and the exit record.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_runtime::cgroups::Cgroup;
use berth_runtime::exit::ExitRecord;
use berth_runtime::shim::{Report, StartArgs};
use berth_runtime::spec::{build, host_capabilities, RunConfig};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(shim), Some(rootfs), Some(dir)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: run_bundle SHIM ROOTFS DIR CMD [ARG…]".into());
    };
    let cmd: Vec<String> = args.collect();
    let dir = PathBuf::from(dir);
    let id = format!("berth-example-{}", std::process::id());
    let cgroup = format!("/berth-example/{id}");
    let cfg = RunConfig {
        rootfs: PathBuf::from(rootfs),
        readonly_rootfs: true,
        args: if cmd.is_empty() {
            vec!["true".into()]
        } else {
            cmd
        },
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cwd: "/".into(),
        hostname: "example".into(),
        cgroups_path: Some(cgroup.clone()),
        host_caps: host_capabilities(),
        nofile: (1024, 1024),
        ..Default::default()
    };
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&build(&cfg)?)?,
    )?;
    let start = StartArgs {
        id: id.clone(),
        bundle: bundle.clone(),
        state_root: dir.join("state"),
        log: dir.join("container.log"),
        exit: dir.join("exit.json"),
        ..Default::default()
    };
    let mut child = Command::new(&shim)
        .args(start.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut first)?;
    }
    let report = Report::parse(&first)?;
    println!("{report:?}");
    if let Report::Failed { error, .. } = report {
        child.wait()?;
        Cgroup::new(&cgroup).remove();
        return Err(error.into());
    }
    // The shim stays until the container ends, then leaves its exit record.
    child.wait()?;
    let exit = ExitRecord::read(&start.exit)?;
    println!("exit code {}", exit.exit_code);
    print!(
        "{}",
        std::fs::read_to_string(&start.log).unwrap_or_default()
    );
    Cgroup::new(&cgroup).remove();
    Cgroup::new("/berth-example").remove();
    Ok(())
}
