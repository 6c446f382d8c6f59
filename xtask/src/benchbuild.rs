//! The build workloads of `cargo xtask bench`: a 10-step Dockerfile built with the
//! classic builder cold (`--no-cache`), fully cached, and with one file changed
//! (the steps after its COPY run again), on each daemon in turn.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;

/// The context: the Dockerfile and 40 small files.
fn context(dir: &Path, base: &str) -> Result<()> {
    let err = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir.join("src")).map_err(err)?;
    for i in 0..40 {
        std::fs::write(
            dir.join("src").join(format!("f{i}.txt")),
            format!("{i}\n").repeat(200),
        )
        .map_err(err)?;
    }
    std::fs::write(dir.join("changing.txt"), "0\n").map_err(err)?;
    let df = format!(
        "FROM {base}\n\
         ENV APP=/app MODE=bench\n\
         WORKDIR /app\n\
         COPY src/ src/\n\
         RUN cat src/*.txt | wc -l > lines\n\
         LABEL bench=build\n\
         COPY changing.txt .\n\
         RUN cp changing.txt copy && echo done > done\n\
         EXPOSE 8080\n\
         CMD [\"cat\", \"done\"]\n"
    );
    std::fs::write(dir.join("Dockerfile"), df).map_err(err)
}

fn build(host: &str, dir: &Path, extra: &[&str]) -> Result<f64> {
    let cfg = std::env::temp_dir().join("berth-bench-docker-config");
    let t = Instant::now();
    let o = Command::new(berth_testkit::docker_cli())
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", cfg)
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(dir)
        .args(["build", "-q", "-t", "bench-build:1"])
        .args(extra)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("docker build: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        return Err(format!(
            "docker build on {host}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(secs)
}

/// Rows `(name, what, berth seconds, other seconds)`, `runs` samples each.
#[allow(clippy::type_complexity)]
pub fn rows(
    hosts: &[&str],
    base: &str,
    runs: usize,
) -> Result<Vec<(&'static str, &'static str, Vec<Vec<f64>>)>> {
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-build-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    context(dir.path(), base)?;
    let mut cold = vec![Vec::new(); hosts.len()];
    let mut cached = vec![Vec::new(); hosts.len()];
    let mut changed = vec![Vec::new(); hosts.len()];
    for run in 0..runs {
        for (i, h) in hosts.iter().enumerate() {
            cold[i].push(build(h, dir.path(), &["--no-cache"])?);
            cached[i].push(build(h, dir.path(), &[])?);
        }
        std::fs::write(dir.path().join("changing.txt"), format!("{}\n", run + 1))
            .map_err(|e| e.to_string())?;
        for (i, h) in hosts.iter().enumerate() {
            changed[i].push(build(h, dir.path(), &[])?);
        }
    }
    Ok(vec![
        ("build-cold", "10-step Dockerfile, --no-cache", cold),
        ("build-cached", "the same, every step cached", cached),
        (
            "build-changed",
            "one copied file changed (3 steps rerun)",
            changed,
        ),
    ])
}
