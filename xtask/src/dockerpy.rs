//! The docker-py conformance stage: docker-py's own integration suite (from its
//! PyPI sdist, pinned) against a test berthd, with the fixture image under the
//! names the suite uses. `docker-py/expected.txt` lists every test that does not
//! simply pass, with its reason: `deselect` (not run: swarm, plugins, the
//! internet, tools this machine lacks), `fails` (runs and fails on Berth today,
//! with the issue that tracks it) or `flaky` (runs; its outcome does not count,
//! for a reason written beside it). The stage fails when a test outside the list
//! fails; a listed failure that passes is reported so the list can shrink.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// docker-py's newest sdist that ships its tests (7.1.0's has none).
const SDIST: &str = "docker==7.0.0";
const SDIST_DIR: &str = "docker-7.0.0";

fn status(c: &mut Command) -> Result {
    let s = c.status().map_err(|e| format!("running {c:?}: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("{c:?} failed: {s}"))
    }
}

/// The virtualenv with the suite's pinned tools, and the sdist's sources.
fn prepare(work: &Path, lists: &Path) -> Result<(PathBuf, PathBuf)> {
    let venv = work.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    status(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(lists.join("requirements.txt")),
    )?;
    let src = work.join(SDIST_DIR);
    if !src.join("tests/integration").exists() {
        status(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                ])
                .arg(SDIST)
                .arg("-d")
                .arg(work),
        )?;
        status(
            Command::new("tar")
                .arg("xzf")
                .arg(work.join(format!("{SDIST_DIR}.tar.gz")))
                .arg("-C")
                .arg(work),
        )?;
    }
    Ok((python, src))
}

/// The list: tests not run, tests expected to fail, tests whose outcome is ignored.
struct List {
    deselect: Vec<String>,
    fails: BTreeSet<String>,
    flaky: BTreeSet<String>,
}

/// Reads the list for a run at API `api` (`None`: the version the client
/// negotiates). `KIND@V` lines hold only for the run at version V (`@latest`:
/// the negotiated one).
fn read_list(path: &Path, api: Option<&str>) -> Result<List> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut deselect, mut fails, mut flaky) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut w = line.split_whitespace();
        let (kind, id, why) = (w.next(), w.next(), w.next());
        let kind = match kind.and_then(|k| k.split_once('@')) {
            Some((k, v)) if v == api.unwrap_or("latest") => Some(k),
            Some(_) => continue,
            None => kind,
        };
        match (kind, id, why) {
            (Some("deselect"), Some(id), Some(_)) => deselect.push(id.to_string()),
            (Some("fails"), Some(id), Some(_)) => {
                fails.insert(id.to_string());
            }
            (Some("flaky"), Some(id), Some(_)) => {
                flaky.insert(id.to_string());
            }
            _ => {
                return Err(format!(
                    "{}:{}: expected `deselect|fails|flaky[@API] TEST-ID REASON…`",
                    path.display(),
                    n + 1
                ))
            }
        }
    }
    Ok(List {
        deselect,
        fails,
        flaky,
    })
}

/// Test ids that failed or errored, and those that passed, from pytest's
/// JUnit XML (`classname` is the module path and class, dot-separated).
fn outcomes(xml: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut failed, mut passed) = (BTreeSet::new(), BTreeSet::new());
    for case in xml.split("<testcase ").skip(1) {
        // Attributes are found by ` name="`: `name="` alone is inside `classname="`.
        let case = format!(" {case}");
        let attr = |name: &str| -> Option<String> {
            let start = case.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = case[start..].find('"')? + start;
            Some(case[start..end].to_string())
        };
        let (Some(class), Some(name)) = (attr("classname"), attr("name")) else {
            continue;
        };
        let body = case.split("</testcase>").next().unwrap_or(&case);
        // tests.integration.api_container_test.CreateContainerTest
        let mut parts: Vec<&str> = class.split('.').collect();
        let cls = parts.pop().unwrap_or("");
        let id = format!("{}.py::{cls}::{name}", parts.join("/"));
        if body.contains("<failure") || body.contains("<error") {
            failed.insert(id);
        } else if !body.contains("<skipped") {
            passed.insert(id);
        }
    }
    (failed, passed)
}

/// Whether `test` is listed: by its id, or by its file's or class's.
fn listed(list: &BTreeSet<String>, test: &str) -> bool {
    list.iter().any(|e| {
        test == e || test.starts_with(&format!("{e}::")) || test.starts_with(&format!("{e}/"))
    })
}

/// Runs the suite against `daemon` (a `unix://` host whose images include the
/// fixture under the suite's names). `work`: a directory for the venv, the
/// sources and the results.
pub fn run(work: &Path, lists: &Path, host: &str, api: Option<&str>) -> Result {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let (python, src) = prepare(work, lists)?;
    let List {
        deselect,
        fails: expected,
        flaky,
    } = read_list(&lists.join("expected.txt"), api)?;
    let label = api.unwrap_or("latest");
    let xml = work.join(format!("results-{label}.xml"));
    let _ = std::fs::remove_file(&xml);
    // The suite writes contexts and client config under the user's home: a
    // fresh one per run.
    // Its contexts go beside the client config it finds, else into the current
    // directory: give it one.
    let home = work.join("home");
    let _ = std::fs::remove_dir_all(&home);
    let config = home.join(".docker");
    std::fs::create_dir_all(&config)
        .and_then(|()| std::fs::write(config.join("config.json"), "{}"))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let mut c = Command::new(&python);
    c.current_dir(&src)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", &config)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "120",
        ])
        .arg(format!("--junitxml={}", xml.display()))
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_TEST_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    if let Some(v) = api {
        c.env("DOCKER_TEST_API_VERSION", v);
    }
    for d in &deselect {
        c.arg("--deselect").arg(d);
    }
    c.arg("tests/integration");
    // Its exit code says only that something failed; the list decides what counts.
    let _ = c.status().map_err(|e| format!("running pytest: {e}"))?;
    let report = std::fs::read_to_string(&xml)
        .map_err(|e| format!("pytest wrote no results ({}): {e}", xml.display()))?;
    let (failed, passed) = outcomes(&report);
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|t| !listed(&expected, t) && !listed(&flaky, t))
        .collect();
    let fixed: Vec<&String> = passed.iter().filter(|t| listed(&expected, t)).collect();
    for f in &fixed {
        println!("docker-py (API {label}): now passes, remove it from docker-py/expected.txt: {f}");
    }
    for u in &unexpected {
        println!("docker-py (API {label}): failed, and not in docker-py/expected.txt: {u}");
    }
    println!(
        "docker-py conformance (API {label}): {} passed, {} failed as listed, {} failed unexpectedly, {} deselected",
        passed.len(),
        failed.len() - unexpected.len(),
        unexpected.len(),
        deselect.len()
    );
    if unexpected.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "docker-py: {} tests outside the list failed",
            unexpected.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_outcomes_become_test_ids() {
        let xml = r#"<testsuites><testsuite name="docker-py">
<testcase classname="tests.integration.api_container_test.CreateContainerTest" name="test_ok" time="0.1" />
<testcase classname="tests.integration.api_container_test.CreateContainerTest" name="test_bad" time="0.1"><failure message="x">boom</failure></testcase>
<testcase classname="tests.integration.models_images_test.ImageTest" name="test_err" time="0.1"><error message="y">setup</error></testcase>
<testcase classname="tests.integration.api_swarm_test.SwarmTest" name="test_skip" time="0"><skipped message="z" /></testcase>
</testsuite></testsuites>"#;
        let (failed, passed) = outcomes(xml);
        assert_eq!(
            failed.into_iter().collect::<Vec<_>>(),
            [
                "tests/integration/api_container_test.py::CreateContainerTest::test_bad",
                "tests/integration/models_images_test.py::ImageTest::test_err",
            ]
        );
        assert_eq!(
            passed.into_iter().collect::<Vec<_>>(),
            ["tests/integration/api_container_test.py::CreateContainerTest::test_ok"]
        );
    }

    #[test]
    fn a_file_or_class_lists_what_is_inside() {
        let list: BTreeSet<String> = [
            "tests/integration/api_build_test.py",
            "tests/integration/api_exec_test.py::ExecDemuxTest",
            "tests/integration/credentials",
        ]
        .map(String::from)
        .into();
        assert!(listed(
            &list,
            "tests/integration/api_build_test.py::BuildTest::test_x"
        ));
        assert!(listed(
            &list,
            "tests/integration/api_exec_test.py::ExecDemuxTest::test_y"
        ));
        assert!(listed(
            &list,
            "tests/integration/credentials/store_test.py::TestStore::test_z"
        ));
        assert!(!listed(
            &list,
            "tests/integration/api_exec_test.py::ExecTest::test_y"
        ));
        assert!(!listed(
            &list,
            "tests/integration/api_build_test.py_other::A::b"
        ));
    }

    #[test]
    fn lines_can_hold_for_one_api_version() {
        let dir = std::env::temp_dir().join(format!("berth-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("expected.txt");
        std::fs::write(&p, "fails tests/integration/a.py all\nfails@latest tests/integration/b.py newest only\nfails@1.41 tests/integration/c.py old only\n").expect("write");
        let old = read_list(&p, Some("1.41")).expect("list");
        let new = read_list(&p, None).expect("list");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            old.fails.contains("tests/integration/a.py")
                && old.fails.contains("tests/integration/c.py")
        );
        assert!(!old.fails.contains("tests/integration/b.py"));
        assert!(
            new.fails.contains("tests/integration/b.py")
                && !new.fails.contains("tests/integration/c.py")
        );
    }

    #[test]
    fn the_checked_in_list_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-py");
        // At API 1.41 every test that runs passes now; the newest still has
        // docker-py's own outdated expectations.
        let l = read_list(&dir.join("expected.txt"), Some("1.41")).expect("list");
        assert!(!l.deselect.is_empty());
        let latest = read_list(&dir.join("expected.txt"), None).expect("list");
        assert!(!latest.fails.is_empty());
        assert!(l
            .deselect
            .iter()
            .chain(&l.fails)
            .chain(&l.flaky)
            .all(|d| d.starts_with("tests/integration/")));
    }
}
