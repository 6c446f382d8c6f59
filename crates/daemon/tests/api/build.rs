//! `docker build` through the classic builder, driven by the docker CLI 28 with
//! `DOCKER_BUILDKIT=0` (and unset: the CLI then falls back to the same
//! builder) and by raw API requests where the stream itself is checked.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::TestDaemon;
use serde_json::Value;

use crate::images::busybox;

/// A build context in a temp dir: `files` are `(path, content)`.
pub(crate) fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-ctx-")
        .tempdir()
        .expect("tmp");
    for (p, c) in files {
        let path = d.path().join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, c).expect("write");
    }
    d
}

pub(crate) fn build_cmd(d: &TestDaemon, dir: &Path, args: &[&str]) -> Command {
    let mut c = d.docker();
    c.current_dir(dir)
        .env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args);
    c
}

fn build(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    build_cmd(d, dir, args).output().expect("docker build")
}

fn build_ok(d: &TestDaemon, dir: &Path, args: &[&str]) -> String {
    let o = build(d, dir, args);
    assert!(
        o.status.success(),
        "docker build {args:?} failed:\n{}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        berth_testkit::tail(&d.logs(), 40)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn inspect(d: &TestDaemon, image: &str) -> Value {
    let v: Value = serde_json::from_str(&d.cli_ok(&["image", "inspect", image])).expect("json");
    v[0].clone()
}

fn history(d: &TestDaemon, image: &str) -> Vec<String> {
    d.cli_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.CreatedBy}}",
        image,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn every_instruction_builds_with_dockerds_config_and_history() {
    let d = crate::daemon();
    let b = busybox(&d);
    let df = format!(
        r#"# escape=\
ARG BASE={b}
FROM $BASE AS build
ARG V=1
ENV E1=a E2="b c" \
    E3=${{E1:-x}}-$V
LABEL l1=v1 "l 2"="v 2"
EXPOSE 80 53/udp
VOLUME ["/vol"]
USER root
WORKDIR /w
WORKDIR sub
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL ["/bin/sh", "-c"]
MAINTAINER someone
ONBUILD RUN echo triggered > /onbuild
RUN echo v=$V > /v.txt && echo to-stderr >&2
COPY --chown=1:2 hello.txt rel/
ADD data.tar /unpacked/
COPY dir /copied
ENTRYPOINT ["sh"]
CMD ["-c", "cat /v.txt"]

FROM build AS second
FROM {b}
COPY --from=build /v.txt /from-build
COPY --from=0 /w/sub/rel/hello.txt /by-index
"#
    );
    let ctx = context(&[
        ("Dockerfile", &df),
        ("hello.txt", "hello\n"),
        ("dir/a/b.txt", "b\n"),
    ]);
    // An archive ADD unpacks.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_cksum();
    t.append_data(&mut h, "in/tar.txt", &b"tar"[..])
        .expect("tar");
    std::fs::write(ctx.path().join("data.tar"), t.into_inner().expect("tar")).expect("write");
    let out = build_ok(
        &d,
        ctx.path(),
        &[
            "--build-arg",
            "V=9",
            "--target",
            "build",
            "-t",
            "every:build",
            ".",
        ],
    );
    assert!(out.contains("Step 1/21 : ARG BASE="), "{out}");
    assert!(
        out.contains("Step 21/21 : CMD [\"-c\", \"cat /v.txt\"]"),
        "{out}"
    );
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(
        out.contains(" ---> Removed intermediate container "),
        "{out}"
    );
    assert!(out.contains("Successfully tagged every:build"), "{out}");
    let img = inspect(&d, "every:build");
    let c = &img["Config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"E2=b c") && env.contains(&"E3=a-9"),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("V=")),
        "args stay out of the config"
    );
    assert_eq!(c["Labels"]["l 2"], "v 2");
    assert!(c["ExposedPorts"].get("80/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some());
    assert!(c["Volumes"].get("/vol").is_some());
    assert_eq!(c["WorkingDir"], "/w/sub");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo triggered > /onbuild"])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["sh"]));
    assert_eq!(c["Cmd"], serde_json::json!(["-c", "cat /v.txt"]));
    assert_eq!(img["Author"], "someone");
    assert!(
        img["Parent"]
            .as_str()
            .is_some_and(|p| p.starts_with("sha256:")),
        "{img}"
    );
    let hist = history(&d, "every:build");
    let created: Vec<&str> = hist
        .iter()
        .map(|l| l.split_once(' ').map(|x| x.1).unwrap_or(""))
        .collect();
    assert!(
        created.contains(&"/bin/sh -c #(nop)  ENV E1=a E2=b c E3=a-9"),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop) WORKDIR /w/sub"),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop)  EXPOSE 53/udp 80"),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop)  VOLUME [/vol]"),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop)  CMD [\"-c\" \"cat /v.txt\"]"),
        "{created:?}"
    );
    assert!(
        created.contains(&"|1 V=9 /bin/sh -c echo v=$V > /v.txt && echo to-stderr >&2"),
        "{created:?}"
    );
    assert!(
        created
            .iter()
            .any(|c| c.starts_with("/bin/sh -c #(nop) COPY --chown=1:2file:")),
        "{created:?}"
    );
    // Build steps are named in history by their own IDs.
    assert!(hist[1].starts_with("sha256:"), "{hist:?}");
    let files = d.cli_ok(&[
        "run", "--rm", "--entrypoint", "sh", "every:build", "-c",
        "cat /v.txt; stat -c '%u:%g %n' /w/sub/rel/hello.txt; cat /unpacked/in/tar.txt; echo; cat /copied/a/b.txt; ls -ld /w/sub | cut -c1-10",
    ]);
    assert_eq!(files, "v=9\n1:2 /w/sub/rel/hello.txt\ntar\nb\ndrwxr-xr-x\n");
    // The default command runs.
    assert_eq!(d.cli_ok(&["run", "--rm", "every:build"]), "v=9\n");
    // The whole file: the last stage copies from the first by name and index.
    build_ok(
        &d,
        ctx.path(),
        &["--build-arg", "V=9", "-t", "every:last", "."],
    );
    assert_eq!(
        d.cli_ok(&[
            "run",
            "--rm",
            "every:last",
            "cat",
            "/from-build",
            "/by-index"
        ]),
        "v=9\nhello\n"
    );
    // ONBUILD triggers run in a build FROM the image.
    let child = context(&[(
        "Dockerfile",
        "FROM every:build\nCMD [\"-c\", \"cat /onbuild\"]\n",
    )]);
    let out = build_ok(&d, child.path(), &["-t", "every:child", "."]);
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert_eq!(d.cli_ok(&["run", "--rm", "every:child"]), "triggered\n");
    assert_eq!(inspect(&d, "every:child")["Config"]["OnBuild"], Value::Null);
    // Intermediate images are hidden from `docker images`, shown with -a.
    let listed = d.cli_ok(&["images", "-q"]).lines().count();
    let all = d.cli_ok(&["images", "-aq"]).lines().count();
    assert!(all > listed + 10, "{listed} listed, {all} with -a");
    // Removing the tags removes the untagged parents too.
    d.cli_ok(&["rmi", "every:child", "every:last", "every:build"]);
    assert_eq!(
        d.cli_ok(&["images", "-aq"]).lines().count(),
        1,
        "only busybox is left"
    );
}

#[test]
fn a_second_build_is_cached_and_a_changed_file_reruns_only_what_follows() {
    let d = crate::daemon();
    let b = busybox(&d);
    let df = format!(
        "FROM {b}\nENV A=1\nRUN echo one > /one\nCOPY f /f\nRUN cat /f > /g\nCOPY other /other\n"
    );
    let ctx = context(&[("Dockerfile", &df), ("f", "first"), ("other", "o")]);
    let first = build_ok(&d, ctx.path(), &["-t", "cached", "."]);
    assert!(!first.contains("Using cache"), "{first}");
    let id1 = inspect(&d, "cached")["Id"].clone();
    let second = build_ok(&d, ctx.path(), &["-t", "cached", "."]);
    assert_eq!(second.matches(" ---> Using cache").count(), 5, "{second}");
    assert_eq!(inspect(&d, "cached")["Id"], id1, "the same image");
    // A new mtime alone is no change.
    std::fs::write(ctx.path().join("other"), "o").expect("write");
    assert_eq!(
        build_ok(&d, ctx.path(), &["-t", "cached", "."])
            .matches("Using cache")
            .count(),
        5
    );
    std::fs::write(ctx.path().join("f"), "second").expect("write");
    let third = build_ok(&d, ctx.path(), &["-t", "cached", "."]);
    assert_eq!(
        third.matches(" ---> Using cache").count(),
        2,
        "ENV and the first RUN: {third}"
    );
    assert!(third.contains(" ---> Running in "), "{third}");
    assert_eq!(d.cli_ok(&["run", "--rm", "cached", "cat", "/g"]), "second");
    // --no-cache runs everything.
    let fresh = build_ok(&d, ctx.path(), &["--no-cache", "-t", "cached", "."]);
    assert!(!fresh.contains("Using cache"), "{fresh}");
    // Build args that change a RUN's environment miss the cache.
    let args_df = format!("FROM {b}\nARG X=1\nRUN echo $X > /x\n");
    let actx = context(&[("Dockerfile", &args_df)]);
    build_ok(&d, actx.path(), &["-t", "argc", "."]);
    assert_eq!(
        build_ok(&d, actx.path(), &["-t", "argc", "."])
            .matches("Using cache")
            .count(),
        2
    );
    let changed = build_ok(&d, actx.path(), &["--build-arg", "X=2", "-t", "argc", "."]);
    assert_eq!(changed.matches("Using cache").count(), 1, "{changed}");
    assert_eq!(d.cli_ok(&["run", "--rm", "argc", "cat", "/x"]), "2\n");
}

#[test]
fn dockerfiles_from_outside_the_context_stdin_and_with_targets() {
    let d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[("hello.txt", "hi\n")]);
    let other = context(&[(
        "My.Dockerfile",
        &format!("FROM {b} AS one\nRUN echo one > /stage\nFROM {b} AS two\nCOPY hello.txt /\nRUN echo two > /stage\n"),
    )]);
    let df = other.path().join("My.Dockerfile");
    let df = df.to_string_lossy();
    // Outside the context: the CLI sends a truncated tar.
    build_ok(&d, ctx.path(), &["-f", &df, "-t", "outside", "."]);
    assert_eq!(
        d.cli_ok(&["run", "--rm", "outside", "cat", "/stage", "/hello.txt"]),
        "two\nhi\n"
    );
    build_ok(
        &d,
        ctx.path(),
        &["-f", &df, "--target", "one", "-t", "target", "."],
    );
    assert_eq!(
        d.cli_ok(&["run", "--rm", "target", "cat", "/stage"]),
        "one\n"
    );
    let o = build(&d, ctx.path(), &["-f", &df, "--target", "nope", "."]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("failed to reach build target nope in Dockerfile"));
    // `-f -` and `docker build -`: the Dockerfile on stdin.
    let mut c = build_cmd(&d, ctx.path(), &["-f", "-", "-t", "stdin1", "."]);
    c.stdin(std::fs::File::open(other.path().join("My.Dockerfile")).expect("open"));
    assert!(c.output().expect("build").status.success());
    assert_eq!(
        d.cli_ok(&["run", "--rm", "stdin1", "cat", "/hello.txt"]),
        "hi\n"
    );
    let only = context(&[("Dockerfile", &format!("FROM {b}\nRUN echo bare > /bare\n"))]);
    let mut c = build_cmd(&d, ctx.path(), &["-t", "stdin2", "-"]);
    c.stdin(std::fs::File::open(only.path().join("Dockerfile")).expect("open"));
    assert!(c.output().expect("build").status.success());
    assert_eq!(
        d.cli_ok(&["run", "--rm", "stdin2", "cat", "/bare"]),
        "bare\n"
    );
    // Without DOCKER_BUILDKIT the CLI (no buildx) uses the same builder.
    let mut c = d.docker();
    c.current_dir(only.path())
        .args(["build", "-q", "-t", "unset", "."]);
    let o = c.output().expect("build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout)
        .trim()
        .starts_with("sha256:"));
}

#[test]
fn failures_give_dockerds_errors_and_exit_codes() {
    let d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {b}\nRUN echo before; exit 7\n"),
        ),
        ("empty", ""),
        ("unknown", &format!("FROM {b}\nFROBNICATE x\n")),
        (
            "mount",
            &format!("FROM {b}\nRUN --mount=type=cache,target=/c true\n"),
        ),
        ("missing", &format!("FROM {b}\nCOPY nope /x\n")),
        ("url", &format!("FROM {b}\nCOPY http://127.0.0.1:1/x /x\n")),
    ]);
    let o = build(&d, ctx.path(), &["."]);
    assert_eq!(o.status.code(), Some(7), "the RUN's status is the CLI's");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("The command '/bin/sh -c echo before; exit 7' returned a non-zero code: 7"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("before"));
    // rm without forcerm keeps the failed container, as dockerd.
    assert_eq!(d.cli_ok(&["ps", "-aq"]).lines().count(), 1);
    d.cli_ok(&["container", "prune", "-f"]);
    assert!(!build(&d, ctx.path(), &["--force-rm", "."]).status.success());
    assert_eq!(
        d.cli_ok(&["ps", "-aq"]).lines().count(),
        0,
        "forcerm removes it"
    );
    let fails = |f: &str, want: &str| {
        let o = build(&d, ctx.path(), &["-f", f, "."]);
        assert!(!o.status.success(), "{f}");
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(e.contains(want), "{f}: {e}");
    };
    fails("empty", "the Dockerfile (empty) cannot be empty");
    fails(
        "unknown",
        "dockerfile parse error line 2: unknown instruction: FROBNICATE",
    );
    fails("mount", "the --mount option requires BuildKit.");
    fails("missing", "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist");
    fails("url", "source can't be a URL for COPY");
    // The stream's last message carries the RUN's code (what docker-py reads).
    let body = tar_of(&[("Dockerfile", format!("FROM {b}\nRUN exit 3\n").as_bytes())]);
    let resp = post_build(&d, "/build?rm=1&forcerm=1", &body);
    let last = resp.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    let v: Value = serde_json::from_str(last).expect("json");
    assert_eq!(v["errorDetail"]["code"], 3, "{resp}");
    assert_eq!(
        v["error"],
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    // Errors before any output are HTTP errors.
    let resp = post_build(
        &d,
        "/build?target=x",
        &tar_of(&[("Dockerfile", format!("FROM {b}\n").as_bytes())]),
    );
    assert_eq!(crate::status(&resp), 400, "{resp}");
    assert_eq!(
        crate::status(&post_build(&d, "/build", &tar_of(&[("x", b"")]))),
        400
    );
    assert_eq!(
        crate::status(&post_build(&d, "/build?platform=foobar", &body)),
        400
    );
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).expect("tar");
    }
    t.into_inner().expect("tar")
}

fn post_build(d: &TestDaemon, path: &str, body: &[u8]) -> String {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    d.raw(&req)
}

#[test]
fn dockerignore_and_hostile_contexts_stay_contained() {
    let d = crate::daemon();
    let b = busybox(&d);
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(outside.path().join("secret"), "secret").expect("write");
    let ctx = context(&[
        ("Dockerfile", &format!("FROM {b}\nCOPY . /ctx\n")),
        (".dockerignore", "*.log\n!keep.log\nDockerfile\n"),
        ("a.log", "x"),
        ("keep.log", "k"),
        ("src/main.c", "c"),
        ("dotdot", &format!("FROM {b}\nCOPY ../secret /s\n")),
        ("abslink", &format!("FROM {b}\nCOPY abs /a\n")),
    ]);
    std::os::unix::fs::symlink(outside.path().join("secret"), ctx.path().join("abs"))
        .expect("link");
    build_ok(&d, ctx.path(), &["-t", "ignored", "."]);
    let listing = d.cli_ok(&[
        "run",
        "--rm",
        "ignored",
        "sh",
        "-c",
        "cd /ctx && find . -type f | sort",
    ]);
    // The CLI keeps the Dockerfile for the daemon; the daemon drops it because
    // .dockerignore names it.
    assert!(
        !listing.contains("a.log")
            && listing.contains("keep.log")
            && listing.contains("src/main.c"),
        "{listing}"
    );
    assert!(!listing.contains("./Dockerfile"), "{listing}");
    // `..` and a symlink to an absolute path resolve inside the context.
    let o = build(&d, ctx.path(), &["-f", "dotdot", "."]);
    assert!(!o.status.success(), "COPY ../ must not reach outside");
    let o = build(&d, ctx.path(), &["-f", "abslink", "."]);
    assert!(
        !o.status.success(),
        "an absolute symlink resolves in the context: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A context whose tar climbs out is refused; nothing is written outside.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    let name = format!(
        "../../../../../../../../{}/planted",
        outside.path().display()
    );
    h.as_gnu_mut().expect("gnu").name[..name.len().min(100)]
        .copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    h.set_cksum();
    t.append(&h, &b"x"[..]).expect("tar");
    let mut df = tar::Header::new_gnu();
    let dfc = format!("FROM {b}\n");
    df.set_size(dfc.len() as u64);
    df.set_mode(0o644);
    df.set_cksum();
    t.append_data(&mut df, "Dockerfile", dfc.as_bytes())
        .expect("tar");
    let resp = post_build(&d, "/build", &t.into_inner().expect("tar"));
    assert_eq!(crate::status(&resp), 400, "{resp}");
    assert!(!outside.path().join("planted").exists());
    // ADD of an archive with `..` entries: refused, nothing outside the image.
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_gnu_mut().expect("gnu").name[..10].copy_from_slice(b"../../evil");
    h.set_cksum();
    evil.append(&h, &b"x"[..]).expect("tar");
    let actx = context(&[("Dockerfile", &format!("FROM {b}\nADD evil.tar /x/\n"))]);
    std::fs::write(
        actx.path().join("evil.tar"),
        evil.into_inner().expect("tar"),
    )
    .expect("write");
    let o = build(&d, actx.path(), &["."]);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!Path::new("/evil").exists());
}

#[test]
fn built_images_push_and_pull_back_identical() {
    let d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {b}\nCOPY f /f\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n"),
        ),
        ("f", "file"),
    ]);
    let name = format!(
        "{}/built-{}:1",
        berth_testkit::registry().expect("registry"),
        std::process::id()
    );
    build_ok(&d, ctx.path(), &["-t", &name, "."]);
    let id = inspect(&d, &name)["Id"].clone();
    d.cli_ok(&["push", &name]);
    d.cli_ok(&["rmi", &name]);
    d.cli_ok(&["pull", &name]);
    assert_eq!(
        inspect(&d, &name)["Id"],
        id,
        "the same config, layer for layer"
    );
    assert_eq!(d.cli_ok(&["run", "--rm", &name]), "built\n");
}

#[test]
fn a_client_that_goes_away_cancels_the_build_and_leaves_nothing() {
    let d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {b}\nRUN echo started; sleep 60\n"),
    )]);
    let mut child = build_cmd(&d, ctx.path(), &["."])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The RUN's own output line: its container is running.
    while !seen.contains("\nstarted\n") {
        let n = std::io::Read::read(&mut out, &mut buf).expect("read");
        assert!(n > 0, "the build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !d.cli_ok(&["ps", "-aq"]).trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN container outlived the client: {}\n{}",
            d.cli_ok(&["ps", "-a"]),
            berth_testkit::tail(&d.logs(), 30)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        d.leaked_mounts().iter().all(|m| !m.contains("/builder/")),
        "{:?}",
        d.leaked_mounts()
    );
}

#[test]
fn a_daemon_killed_during_a_build_leaves_nothing_half_made() {
    let mut d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {b}\nCOPY big /big\nRUN echo started; sleep 60\n"),
        ),
        ("big", &"x".repeat(1 << 20)),
    ]);
    let mut child = build_cmd(&d, ctx.path(), &["-t", "never", "."])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("started") {
        let n = std::io::Read::read(&mut out, &mut buf).expect("read");
        assert!(n > 0, "the build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    d.kill9();
    let _ = child.wait();
    d.restart();
    assert!(d.cli(&["image", "inspect", "never"]).status.code() != Some(0));
    let builder = d.data_root.join("builder/tmp");
    assert_eq!(
        std::fs::read_dir(&builder).map(|r| r.count()).unwrap_or(0),
        0,
        "build dirs left"
    );
    d.cli_ok(&["container", "prune", "-f"]);
    assert!(
        d.leaked_mounts().iter().all(|m| !m.contains("/builder/")),
        "{:?}",
        d.leaked_mounts()
    );
}

#[test]
fn scratch_builds_args_and_labels() {
    let d = crate::daemon();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nARG test\nUSER $test\nWORKDIR /w\nCMD [\"x\"]\n",
        ),
        ("nothing", "FROM scratch\n"),
    ]);
    build_ok(
        &d,
        ctx.path(),
        &[
            "--build-arg",
            "test=OK",
            "--label",
            "l=v",
            "-t",
            "scratchy",
            ".",
        ],
    );
    let img = inspect(&d, "scratchy");
    assert_eq!(img["Config"]["User"], "OK");
    assert_eq!(img["Config"]["WorkingDir"], "/w");
    assert_eq!(img["Config"]["Labels"], serde_json::json!({"l": "v"}));
    assert_eq!(
        img["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "WORKDIR's layer"
    );
    let o = build(&d, ctx.path(), &["-f", "nothing", "."]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("No image was generated. Is your Dockerfile empty?"));
    // Unused build args are named.
    let out = build_ok(
        &d,
        ctx.path(),
        &["--build-arg", "test=OK", "--build-arg", "NOPE=1", "."],
    );
    assert!(
        out.contains("[Warning] One or more build-args [NOPE] were not consumed"),
        "{out}"
    );
    // `docker system prune` asks for /build/prune.
    d.cli_ok(&["system", "prune", "-f"]);
}

/// A static file server on loopback for `dir`; killed on drop.
struct Served(std::process::Child, u16);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn wait_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server on {port} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn serve(dir: &Path) -> Served {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    wait_port(port);
    Served(child, port)
}

#[test]
fn remote_contexts_urls_and_git_and_add_from_a_url() {
    let d = crate::daemon();
    let b = busybox(&d);
    let site = context(&[
        ("plain.txt", &format!("FROM {b}\nRUN echo from-url > /u\n")),
        ("file.bin", "downloaded"),
    ]);
    std::fs::write(
        site.path().join("ctx.tar"),
        tar_of(&[
            (
                "Dockerfile",
                format!("FROM {b}\nCOPY in.txt /in.txt\n").as_bytes(),
            ),
            ("in.txt", b"from-tar"),
        ]),
    )
    .expect("write");
    let web = serve(site.path());
    let url = |p: &str| format!("http://127.0.0.1:{}/{p}", web.1);
    let run = |img: &str, file: &str| d.cli_ok(&["run", "--rm", img, "cat", file]);
    // A plain-text URL is the Dockerfile; a tarball URL is the context.
    let resp = post_build(
        &d,
        &format!("/build?t=remote1&remote={}", url("plain.txt")),
        b"",
    );
    assert!(
        resp.contains("Successfully tagged remote1:latest"),
        "{resp}"
    );
    assert_eq!(run("remote1", "/u"), "from-url\n");
    let resp = post_build(
        &d,
        &format!("/build?t=remote2&remote={}", url("ctx.tar")),
        b"",
    );
    assert!(
        resp.contains("Successfully tagged remote2:latest"),
        "{resp}"
    );
    assert_eq!(run("remote2", "/in.txt"), "from-tar");
    // ADD of a URL downloads (not unpacked, mode 0600).
    let actx = context(&[(
        "Dockerfile",
        &format!(
            "FROM {b}\nADD {} /dl/\nADD {} /t.tar\n",
            url("file.bin"),
            url("ctx.tar")
        ),
    )]);
    build_ok(&d, actx.path(), &["-t", "added", "."]);
    assert_eq!(
        d.cli_ok(&[
            "run",
            "--rm",
            "added",
            "sh",
            "-c",
            "cat /dl/file.bin; stat -c ' %a' /dl/file.bin; test -f /t.tar && echo ' kept'"
        ]),
        "downloaded 600\n kept\n"
    );
    // A git repository served on loopback (git daemon), with a ref and a subdirectory.
    let repo = tempfile::tempdir().expect("tmp");
    let src = repo.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/Dockerfile"), format!("FROM {b}\nCOPY f /f\n")).expect("write");
    std::fs::write(src.join("sub/f"), "from-git").expect("write");
    let git = |args: &[&str], cwd: &Path| {
        let o = Command::new("git")
            .args(["-c", "user.email=t@t", "-c", "user.name=t"])
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"], &src);
    git(&["add", "."], &src);
    git(&["commit", "-qm", "x"], &src);
    git(&["clone", "-q", "--bare", "src", "repo.git"], repo.path());
    let port = free_port();
    let mut daemon = Command::new("git")
        .args([
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", repo.path().display()),
        ])
        .arg(repo.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon");
    wait_port(port);
    let remote = format!("git://127.0.0.1:{port}/repo.git%23main:sub");
    let resp = post_build(&d, &format!("/build?t=fromgit&remote={remote}"), b"");
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        resp.contains("Successfully tagged fromgit:latest"),
        "{resp}"
    );
    assert_eq!(run("fromgit", "/f"), "from-git");
}

#[test]
fn compose_builds_with_the_classic_builder() {
    berth_testkit::compose().expect("docker compose (BERTH_COMPOSE): run through cargo xtask test");
    let d = crate::daemon();
    let b = busybox(&d);
    let proj = context(&[
        ("Dockerfile", &format!("FROM {b}\nARG GREETING=hi\nRUN echo $GREETING > /g\nCMD [\"cat\", \"/g\"]\n")),
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n      args:\n        GREETING: from-compose\n    image: composed:1\n",
        ),
    ]);
    let compose = |args: &[&str]| {
        let mut c = d.docker();
        c.current_dir(proj.path())
            .env("DOCKER_BUILDKIT", "0")
            .arg("compose")
            .args(["-p", &format!("cb{}", std::process::id())])
            .args(args);
        let o = c.output().expect("docker compose");
        assert!(
            o.status.success(),
            "compose {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    compose(&["build"]);
    // Compose sends a gzip body and its own label.
    let img = inspect(&d, "composed:1");
    assert_eq!(
        img["Config"]["Labels"]["com.docker.compose.image.builder"],
        "classic"
    );
    let out = compose(&["up", "--build", "--abort-on-container-exit"]);
    assert!(out.contains("from-compose"), "{out}");
    compose(&["down"]);
}

#[test]
fn cache_from_a_pulled_image_reuses_its_steps() {
    let d = crate::daemon();
    let b = busybox(&d);
    let ctx = context(&[
        ("Dockerfile", &format!("FROM {b}\nENV A=1\nCOPY f /f\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n")),
        ("f", "file"),
    ]);
    let name = format!(
        "{}/cachefrom-{}:1",
        berth_testkit::registry().expect("registry"),
        std::process::id()
    );
    build_ok(&d, ctx.path(), &["-t", &name, "."]);
    let id = inspect(&d, &name)["Id"].clone();
    d.cli_ok(&["push", &name]);
    d.cli_ok(&["rmi", &name]);
    // Pulled again it has no local parents: only its history can be matched.
    d.cli_ok(&["pull", &name]);
    assert_eq!(inspect(&d, &name)["Parent"], "");
    let none = build_ok(&d, ctx.path(), &["--cache-from", "nosuchimage", "."]);
    assert!(!none.contains("Using cache"), "{none}");
    let out = build_ok(&d, ctx.path(), &["--cache-from", &name, "-t", "again", "."]);
    assert_eq!(out.matches(" ---> Using cache").count(), 4, "{out}");
    assert_eq!(
        inspect(&d, "again")["Id"],
        id,
        "the last step is the pulled image"
    );
    assert_eq!(d.cli_ok(&["run", "--rm", "again"]), "built\n");
}
