//! `/berth/jobs` and `berthd jobs`: a slow pull is listed with its progress and
//! cancelled from there, leaving no half-written image.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_api::jobs::JobSummary;
use berth_testkit::slowproxy::SlowProxy;

use crate::daemon;
use crate::durability::big_image;

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn status(resp: &str) -> &str {
    resp.split_whitespace().nth(1).unwrap_or("")
}

fn jobs_cli(host: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("jobs")
        .args(["-H", host])
        .args(args)
        .output()
        .expect("berthd jobs")
}

#[test]
fn a_slow_pull_is_listed_with_progress_and_cancelled_cleanly() {
    let d = daemon();
    let parent = d.data_root.parent().expect("dir").join("reg");
    let (reg, _) = big_image(&parent);
    // ~40 MB at 1 MB/s: long enough to look at and cancel.
    let proxy = SlowProxy::start(&reg.addr, 1 << 20).expect("proxy");
    let image = format!("{}/big:1", proxy.addr);
    let pull = d
        .docker()
        .args(["pull", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pull");

    // Listed, with its image argument, the registry credentials' header left
    // out, and bytes counted as they come.
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let resp = d.get("/berth/jobs");
        assert_eq!(status(&resp), "200", "{resp}");
        assert!(!resp.contains("X-Registry-Auth"), "{resp}");
        let jobs: Vec<JobSummary> = serde_json::from_str(body(&resp)).expect("jobs JSON");
        let moving = jobs.into_iter().find(|j| {
            j.name == "image.create"
                && j.args.get("fromImage").map(|v| v[0].as_str())
                    == Some(image.trim_end_matches(":1"))
                && j.progress
                    .as_ref()
                    .is_some_and(|p| p.current.unwrap_or(0) > 0 && p.total > p.current)
        });
        if let Some(j) = moving {
            break j;
        }
        assert!(Instant::now() < deadline, "pull never listed: {resp}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job.status, "running");
    assert!(job.started.ends_with('Z'), "{job:?}");

    let inspect = d.get(&format!("/berth/jobs/{}", job.id));
    let one: JobSummary = serde_json::from_str(body(&inspect)).expect("job JSON");
    assert_eq!(one.id, job.id);

    let table = jobs_cli(&d.host(), &[]);
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{} ", job.id)))
        .unwrap_or_else(|| panic!("no row for {}: {table}", job.id));
    assert!(
        row.contains("image.create") && row.contains("running"),
        "{row}"
    );
    assert!(row.contains("% "), "no progress in {row}");

    let cancel = jobs_cli(&d.host(), &["cancel", &job.id.to_string()]);
    assert!(
        cancel.status.success(),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    assert!(String::from_utf8_lossy(&cancel.stdout).contains("cancelled"));

    // The client is told, the job is gone, nothing of the image is left.
    let out = pull.wait_with_output().expect("pull ends");
    assert!(!out.status.success(), "pull succeeded after its cancel");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("request cancelled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = d.get(&format!("/berth/jobs/{}", job.id));
    assert_eq!(status(&gone), "404", "{gone}");
    assert!(gone.contains("no such job"), "{gone}");
    let again = jobs_cli(&d.host(), &["cancel", &job.id.to_string()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such job"));
    assert!(d.cli_ok(&["images", "-q"]).trim().is_empty());
    let tmp = d.data_root.join("graph/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|r| r.count()).unwrap_or(0),
        0,
        "staging left behind"
    );
    // What was kept is whole: the same image pulls and runs at full speed.
    let direct = format!("{}/big:1", reg.addr);
    d.cli_ok(&["pull", "-q", &direct]);
    d.cli_ok(&["run", "--rm", &direct]);
}

#[test]
fn jobs_endpoint_answers_bad_ids_as_docker_would() {
    let d = daemon();
    let r = d.get("/berth/jobs/abc");
    assert_eq!(status(&r), "400", "{r}");
    assert!(r.contains("invalid job ID"), "{r}");
    let r = d.raw(b"DELETE /berth/jobs/999999 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), "404", "{r}");
    // Nothing but quick jobs ran: an empty list, not an error.
    let r = d.get("/berth/jobs");
    assert_eq!(body(&r).trim(), "[]", "{r}");
}

/// Polls `/berth/jobs` until `pick` finds a job.
fn wait_for_job(d: &berth_testkit::TestDaemon, pick: impl Fn(&JobSummary) -> bool) -> JobSummary {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = d.get("/berth/jobs");
        let jobs: Vec<JobSummary> = serde_json::from_str(body(&resp)).expect("jobs JSON");
        if let Some(j) = jobs.into_iter().find(&pick) {
            return j;
        }
        assert!(Instant::now() < deadline, "job never listed: {resp}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_build_is_listed_by_step_and_cancelled_leaving_no_image_or_container() {
    let d = daemon();
    let bb = crate::images::busybox(&d);
    let ctx = crate::build::context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nARG TOKEN\nRUN echo one\nRUN sleep 120\nRUN echo never\n"),
    )]);
    let build = crate::build::build_cmd(
        &d,
        ctx.path(),
        &["-t", "cancelme", "--build-arg", "TOKEN=s3cret", "."],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("build");
    let job = wait_for_job(&d, |j| {
        j.name == "build"
            && j.progress
                .as_ref()
                .is_some_and(|p| p.message == "Step 4/5 : RUN sleep 120")
    });
    let progress = job.progress.clone().expect("progress");
    assert_eq!((progress.current, progress.total), (Some(4), Some(5)));
    assert_eq!(job.args["t"], vec!["cancelme".to_string()]);
    assert_eq!(job.args["buildargs"], vec!["<redacted>".to_string()]);
    let listed = d.get("/berth/jobs");
    assert!(!listed.contains("s3cret"), "{listed}");

    let r = d.raw(
        format!(
            "DELETE /berth/jobs/{} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
            job.id
        )
        .as_bytes(),
    );
    // The step's container is stopped, not waited out.
    assert_eq!(status(&r), "204", "{r}");
    let out = build.wait_with_output().expect("build ends");
    assert!(!out.status.success(), "build succeeded after its cancel");
    assert!(d.cli_ok(&["images", "-q", "cancelme"]).trim().is_empty());
    assert!(
        d.cli_ok(&["ps", "-aq"]).trim().is_empty(),
        "build containers left"
    );
}
