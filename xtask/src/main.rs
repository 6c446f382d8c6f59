//! `cargo xtask`: developer tasks for Berth.
//!
//! - `cargo xtask run [BERTHD FLAGS]`: installs missing system packages, builds a
//!   release `berthd` and runs it on its defaults (or the flags given).
//! - `cargo xtask test [CARGO TEST ARGS]`: installs what the tests need, builds the
//!   fixture images, starts a `docker-registry` on a free 127.0.0.1 port, pushes the
//!   fixtures there, runs every test, and stops the registry; then docker-py's
//!   suite, then the cgroup tests in the cgroup v2 machine.
//! - `cargo xtask fixtures [--out DIR] [--push HOST:PORT]`: builds (and pushes) the
//!   fixture images only.
//! - `cargo xtask bench [--against unix:///other.sock]`: benchmarks (see `bench.rs`).
//! - `cargo xtask cgroup2 [TEST FILTERS]`: boots the pure cgroup v2 machine and runs
//!   the cgroup tests inside it (see `cgroup2.rs`).

mod bench;
mod benchbuild;
mod benchdistro;
mod benchreport;
mod benchsetup;
mod benchwork;
mod cgroup2;
mod cgroup2guest;
mod compose;
mod dockerpy;
mod fixtures;
mod install;
mod layout;
mod packages;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => ("help", vec![]),
    };
    let result = match cmd {
        "run" => run(&rest),
        "test" => test(&rest),
        "fixtures" => fixtures_cmd(&rest),
        "bench" => bench::bench(&rest),
        "cgroup2" => cgroup2::run(&rest),
        "cgroup2-guest" => cgroup2guest::run(&rest),
        "install" => install::install(&rest),
        "layout" => layout::check(&root()),
        _ => {
            eprintln!(
                "usage: cargo xtask run [BERTHD FLAGS] | test [CARGO TEST ARGS] | install [--root DIR] | layout | cgroup2 [TEST FILTERS] | fixtures [--out DIR] [--push HOST:PORT]\n       \
                 | bench [--against unix:///other.sock] [--berth unix://…] [--only NAME] [--json FILE] [--runs N]"
            );
            return if cmd == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut c: Command) -> Result {
    let s = c.status().map_err(|e| format!("running {c:?}: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("{c:?} failed: {s}"))
    }
}

/// Builds release `berthd` and the `berth-shim` it starts containers with.
fn build_release() -> Result {
    // Inside the cgroup v2 machine the host built it already: its emulated
    // CPU would take most of an hour to find that out again.
    if std::env::var_os("BERTH_PREBUILT").is_some() {
        return Ok(());
    }
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "berth-daemon",
        "-p",
        "berth-runtime",
        "--bins",
    ]);
    status(build)
}

fn run(args: &[String]) -> Result {
    packages::ensure(packages::RUN)?;
    build_release()?;
    let bin = root().join("target/release/berthd");
    eprintln!("starting {} {}", bin.display(), args.join(" "));
    use std::os::unix::process::CommandExt;
    let err = Command::new(&bin).args(args).exec();
    Err(format!("exec {}: {err}", bin.display()))
}

fn test(args: &[String]) -> Result {
    packages::ensure(packages::TEST)?;
    let out = root().join("target/fixtures");
    let built = fixtures::build_all(&out)?;
    let compose = compose::ensure(&root().join("target"))?;
    let reg = berth_testkit::registry::Registry::start(&root().join("target"))?;
    eprintln!("test registry on {}", reg.addr);
    fixtures::push_all(&built, &reg.addr)?;
    // Every test runs beside a default-configured dockerd, as on the hosts people
    // move from dockerd on: its iptables policy and br_netfilter are in force.
    let rules_before = berth_testkit::dockerd::berth_leftovers();
    let dockerd = berth_testkit::dockerd::Dockerd::start(
        &root().join("target"),
        Some(&out.join("busybox.tar")),
    )?;
    eprintln!("dockerd beside the tests on {}", dockerd.host);
    let mut t = cargo();
    t.args(["test", "--workspace"])
        .args(args)
        .env("BERTH_TEST_REGISTRY", &reg.addr)
        .env("BERTH_FIXTURES", &out)
        .env("BERTH_TEST_DOCKERD", &dockerd.host)
        .env("BERTH_COMPOSE", &compose);
    let result = run_tests(t)
        .and_then(|()| docker_py(&out))
        .and_then(|()| cgroup2::run(&[]));
    // Every test daemon has stopped: nothing of Berth's may be left in the host's
    // firewall.
    let mut leftovers = berth_testkit::dockerd::berth_leftovers();
    leftovers.retain(|l| !rules_before.contains(l));
    drop(dockerd);
    drop(reg);
    result?;
    if leftovers.is_empty() {
        Ok(())
    } else {
        Err(format!("Berth's rules outlived its daemons: {leftovers:?}"))
    }
}

/// docker-py's integration suite against a test berthd (see `dockerpy`), with
/// the fixture image under the names the suite pulls.
fn docker_py(fixtures: &Path) -> Result {
    let bin = root().join("target/debug/berthd");
    let d = berth_testkit::TestDaemon::start(&bin);
    let load = d.cli(&[
        "load",
        "-q",
        "-i",
        &fixtures.join("busybox.tar").to_string_lossy(),
    ]);
    if !load.status.success() {
        return Err(format!(
            "loading the fixture: {}",
            String::from_utf8_lossy(&load.stderr)
        ));
    }
    // The suite's alpine:3.10, as far as its tests look: busybox with alpine's
    // postgres user and /var/opt (exec as a user by name, exec in a workdir).
    d.cli_ok(&[
        "run",
        "--name",
        "mkalpine",
        "busybox:latest",
        "sh",
        "-c",
        "echo postgres:x:70:70::/var/lib/postgresql:/bin/sh >> /etc/passwd && \
         echo postgres:x:70: >> /etc/group && mkdir -p /var/opt",
    ]);
    d.cli_ok(&["commit", "mkalpine", "alpine:3.10"]);
    d.cli_ok(&["rm", "mkalpine"]);
    d.cli_ok(&["tag", "alpine:3.10", "alpine:latest"]);
    // Twice: at API 1.41, what docker-py speaks with dockerd 20.10 (the baseline
    // the list is held to), and at the newest version it negotiates with Berth.
    let (work, lists) = (
        root().join("target/docker-py"),
        root().join("xtask/docker-py"),
    );
    let result = dockerpy::run(&work, &lists, &d.host(), Some("1.41"))
        .and_then(|()| dockerpy::run(&work, &lists, &d.host(), None));
    // What the suite left running goes before the daemon stops.
    let left = d.cli_ok(&["ps", "-aq"]);
    let ids: Vec<&str> = left.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        d.cli_ok(&args);
    }
    result
}

/// Runs `cargo test`, echoing its output, and ends with one summary line over every
/// test binary (cargo's own last line is often an empty doc-test run).
fn run_tests(mut c: Command) -> Result {
    use std::io::{BufRead, BufReader};
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {c:?}: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let s = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    println!("summary: {passed} passed, {failed} failed, {ignored} skipped");
    if s.success() {
        Ok(())
    } else {
        Err(format!("cargo test failed: {s}"))
    }
}

fn fixtures_cmd(args: &[String]) -> Result {
    let mut out = root().join("target/fixtures");
    let mut push = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a directory")?),
            "--push" => push = Some(it.next().ok_or("--push needs HOST:PORT")?.clone()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    packages::ensure(packages::FIXTURES)?;
    let built = fixtures::build_all(&out)?;
    for b in &built {
        println!("{} {}", b.reference, b.manifest_digest);
    }
    if let Some(addr) = push {
        fixtures::push_all(&built, &addr)?;
    }
    Ok(())
}
