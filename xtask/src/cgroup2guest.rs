//! `xtask cgroup2-guest OUT`: the cgroup v2 machine's job, run by its stage 2
//! (see `cgroup2.rs`). Builds the fixtures and serves them from a registry on the
//! machine's loopback, runs the chosen api tests with `BERTH_CGROUP2=1` (which
//! turns on the v2-only ones) under each cgroup driver, writes the exit code to
//! `OUT/rc` and powers the machine off.

use std::path::Path;
use std::process::Command;

use crate::Result;

pub fn run(args: &[String]) -> Result {
    let out = Path::new(
        args.first()
            .ok_or("cgroup2-guest needs the results directory")?,
    );
    let rc = match job(out) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgroup2-guest: {e}");
            125
        }
    };
    let _ = std::fs::write(out.join("rc"), format!("{rc}\n"));
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    Ok(())
}

/// The `KEY='value'` lines the host wrote.
fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('\'').to_string())
}

fn job(out: &Path) -> Result<i32> {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Err("this machine does not run the unified cgroup hierarchy".into());
    }
    let env = std::fs::read_to_string(out.join("job.env")).map_err(|e| format!("the job: {e}"))?;
    let bin = env_value(&env, "TEST_BIN").ok_or("the job names no test binary")?;
    let tests = env_value(&env, "TESTS").unwrap_or_default();
    let fixtures = Path::new("/tmp/fixtures");
    let built = crate::fixtures::build_all(fixtures)?;
    let reg = berth_testkit::registry::Registry::start(Path::new("/tmp"))?;
    crate::fixtures::push_all(&built, &reg.addr)?;
    let script = std::fs::read_to_string(out.join("script.sh")).unwrap_or_default();
    if !script.is_empty() {
        let berthd = Path::new(&bin)
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("berthd"))
            .unwrap_or_default();
        let s = Command::new("sh")
            .args(["-c", &script])
            .env("BERTH_TEST_REGISTRY", &reg.addr)
            .env("BERTHD", berthd)
            .status()
            .map_err(|e| format!("running the script: {e}"))?;
        return Ok(s.code().unwrap_or(128));
    }
    // Under each driver: systemd's, the default of a v2 host booted with systemd
    // (as this machine is), then cgroupfs.
    let mut rc = 0;
    for exec_opt in [None, Some("native.cgroupdriver=cgroupfs")] {
        eprintln!(
            "cgroup2-guest: registry on {}, running {tests} ({})",
            reg.addr,
            exec_opt.unwrap_or("the default cgroup driver")
        );
        let mut c = Command::new(&bin);
        c.args(tests.split_whitespace())
            .args(["--test-threads", "2"])
            .env("BERTH_TEST_REGISTRY", &reg.addr)
            .env("BERTH_FIXTURES", fixtures)
            .env("BERTH_CGROUP2", "1")
            .env("RUST_BACKTRACE", "1");
        if let Some(o) = exec_opt {
            c.env("BERTH_TEST_EXEC_OPT", o);
        }
        let s = c.status().map_err(|e| format!("running {bin}: {e}"))?;
        if rc == 0 {
            rc = s.code().unwrap_or(128);
        }
    }
    drop(reg);
    Ok(rc)
}
