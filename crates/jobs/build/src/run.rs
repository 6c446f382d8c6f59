//! RUN, WORKDIR and HEALTHCHECK: the steps that run or prepare a container.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::dockerfile::{Cmd, Health};
use crate::error::{BuildError, Result};
use crate::lex::process_word;
use crate::stage::{Build, State, BUILTIN_ARGS};

/// `RUN`: a container from the stage's image runs the command with the build
/// args in its environment; its changes are the step's layer.
pub async fn run(b: &mut Build<'_>, st: &mut State, c: &Cmd) -> Result<()> {
    let Some(parent) = st.image.clone() else {
        return Err(BuildError::Invalid(
            "Please provide a source image with `from` prior to run".into(),
        ));
    };
    let cmd = b.command(st, c);
    let mut args = st.arg_env();
    args.sort();
    let save_cmd: Vec<String> = if args.is_empty() {
        cmd.clone()
    } else {
        std::iter::once(format!("|{}", args.len()))
            .chain(args.iter().cloned())
            .chain(cmd.iter().cloned())
            .collect()
    };
    let mut key = st.config.clone();
    key.insert("Cmd".into(), json!(save_cmd));
    key.insert("Entrypoint".into(), Value::Null);
    key.insert("Image".into(), json!(parent.id.as_str()));
    let key = Value::Object(key);
    if b.probe(st, &key).await? {
        return Ok(());
    }
    let mut env = st.env();
    env.extend(st.arg_env());
    // Proxy settings reach RUN without an ARG (and stay out of the cache key).
    for name in BUILTIN_ARGS {
        if st.args.iter().any(|(k, _)| k == name) {
            continue;
        }
        if let Some(Some(v)) = b.opts.build_args.get(*name) {
            env.push(format!("{name}={v}"));
        }
    }
    let mut create = st.config.clone();
    create.insert("Image".into(), json!(parent.id.as_str()));
    create.insert("Cmd".into(), json!(cmd));
    create.insert("Entrypoint".into(), json!([""]));
    create.insert("Env".into(), json!(env));
    create.insert("Healthcheck".into(), json!({ "Test": ["NONE"] }));
    create.insert("AttachStdout".into(), json!(true));
    create.insert("AttachStderr".into(), json!(true));
    create.insert("OpenStdin".into(), json!(false));
    create.insert("Tty".into(), json!(false));
    create.insert(
        "HostConfig".into(),
        Value::Object(b.opts.host_config.clone()),
    );
    let cid = b.create(&Value::Object(create)).await?;
    let io = b.calls.attach(&cid).await?;
    if let Err(e) = b.calls.start(&cid).await {
        if b.opts.force_rm {
            let _ = b.remove(&cid).await;
        }
        return Err(e);
    }
    let cancel = b.cancel.clone();
    tokio::select! {
        r = stream_output(b, io) => r?,
        _ = cancel.cancelled() => {
            b.calls.kill(&cid).await;
            return Err(BuildError::Cancelled);
        }
    }
    let code = b.calls.wait(&cid).await?;
    if code != 0 {
        if b.opts.force_rm {
            b.remove(&cid).await?;
        } else {
            b.keep(&cid);
        }
        return Err(BuildError::Run {
            code,
            message: format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            ),
        });
    }
    b.commit_container(st, &cid, &key).await
}

/// The container's stdout and stderr (red) into the build's stream, as it comes.
async fn stream_output(b: &Build<'_>, mut io: tokio::io::DuplexStream) -> Result<()> {
    let mut head = [0u8; 8];
    loop {
        match io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        let text = String::from_utf8_lossy(&Bytes::from(buf)).to_string();
        if head[0] == 2 {
            b.out.stderr(&text).await?;
        } else {
            b.out.text(text).await?;
        }
    }
}

/// `WORKDIR`: relative to the previous one; the directory is made (owned by
/// root) in a container and committed, as dockerd does.
pub async fn workdir(b: &mut Build<'_>, st: &mut State, w: &str) -> Result<()> {
    let w = process_word(w, &st.expand_env(), b.escape)?;
    let cur = st
        .config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let joined = if w.starts_with('/') {
        w.clone()
    } else {
        format!("{cur}/{w}")
    };
    let dir = format!("/{}", crate::scope::clean_rel(&joined));
    st.config.insert("WorkingDir".into(), json!(dir));
    let key = b.comment_string_key(st, &format!("WORKDIR {dir}"));
    if b.probe(st, &key).await? {
        return Ok(());
    }
    let Some(parent) = st.image.clone() else {
        return crate::addcopy::mkdir_commit(b, st, &dir, &key).await;
    };
    let mut create = key.as_object().cloned().unwrap_or_default();
    create.insert("Image".into(), json!(parent.id.as_str()));
    create.insert(
        "HostConfig".into(),
        Value::Object(b.opts.host_config.clone()),
    );
    let cid = b.create(&Value::Object(create)).await?;
    b.calls.mkdir(&cid, &dir).await?;
    b.commit_container(st, &cid, &key).await
}

fn duration_flag(name: &str, v: &Option<String>) -> Result<i64> {
    let Some(s) = v else { return Ok(0) };
    let ns = crate::gofmt::parse_duration(s)
        .ok_or_else(|| BuildError::Invalid(format!("time: invalid duration {:?}", s)))?;
    if ns != 0 && ns < 1_000_000 {
        return Err(BuildError::Invalid(format!(
            "Interval {name:?} cannot be less than 1ms"
        )));
    }
    Ok(ns)
}

/// HEALTHCHECK's config (`Test`, durations in nanoseconds, `Retries`).
pub fn healthcheck(st: &State, h: &Health) -> Result<Value> {
    let Some(cmd) = &h.cmd else {
        return Ok(json!({ "Test": ["NONE"] }));
    };
    let test: Vec<String> = match cmd {
        Cmd::Shell(line) => vec!["CMD-SHELL".into(), line.clone()],
        Cmd::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
    };
    let _ = st;
    let retries = match &h.retries {
        None => 0,
        Some(r) => {
            let n: i64 = r.parse().map_err(|_| {
                BuildError::Invalid(format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))
            })?;
            if n < 0 {
                return Err(BuildError::Invalid("--retries cannot be negative".into()));
            }
            n
        }
    };
    let mut v = json!({ "Test": test });
    for (field, name, val) in [
        ("Interval", "interval", &h.interval),
        ("Timeout", "timeout", &h.timeout),
        ("StartPeriod", "start-period", &h.start_period),
        ("StartInterval", "start-interval", &h.start_interval),
    ] {
        let ns = duration_flag(name, val)?;
        if ns != 0 {
            v[field] = json!(ns);
        }
    }
    if retries != 0 {
        v["Retries"] = json!(retries);
    }
    Ok(v)
}

/// Go's `%q` of dockerd's `*HealthConfig`, as its history shows it.
pub fn healthcheck_text(hc: &Value) -> String {
    let test = crate::stage::str_list(&hc["Test"]);
    let d = |k: &str| crate::gofmt::quote(&crate::gofmt::duration(hc[k].as_i64().unwrap_or(0)));
    let retries = hc["Retries"].as_i64().unwrap_or(0);
    let r = match char::from_u32(retries as u32) {
        Some(c) if retries > 31 && retries < 127 => format!("'{c}'"),
        _ => format!("'\\x{retries:02x}'"),
    };
    format!(
        "&{{{} {} {} {} {} {}}}",
        crate::gofmt::quote_list(&test),
        d("Interval"),
        d("Timeout"),
        d("StartPeriod"),
        d("StartInterval"),
        r
    )
}
