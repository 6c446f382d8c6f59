//! Dispatch of COPY and ADD (and of WORKDIR on a stage with no image yet):
//! sources gathered and hashed for the cache key, then copied into the
//! parent's filesystem on a fresh layer (see [`crate::copy`]).

use std::path::PathBuf;

use serde_json::Value;

use crate::copy::{self, Owner, Plan, Source};
use crate::dockerfile::CopySpec;
use crate::error::{BuildError, Result};
use crate::images::{self, blocking, Mounted};
use crate::lex::process_word;
use crate::stage::{Build, State};

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// ADD's download of `url` into `dir`; the file is named as the URL's path ends
/// (or as Content-Disposition says).
async fn download(url: &str, dir: &std::path::Path) -> Result<Source> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| BuildError::System(e.to_string()))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| BuildError::Invalid(format!("failed to GET {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(BuildError::Invalid(format!(
            "failed to GET {url} with status {}",
            resp.status()
        )));
    }
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=").nth(1))
        .map(|f| f.trim_matches(['"', ' ', ';']).to_string());
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()
        });
    let path_name = url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let name = disposition
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .unwrap_or(path_name);
    let name = if name.is_empty() {
        "download".to_string()
    } else {
        name
    };
    let body = resp
        .bytes()
        .await
        .map_err(|e| BuildError::Invalid(format!("failed to GET {url}: {e}")))?;
    let path = dir.join(&name);
    std::fs::write(&path, &body)?;
    if let Some(t) = modified {
        let ts = nix::sys::time::TimeSpec::new(t.unix_timestamp(), 0);
        let _ = nix::sys::stat::utimensat(
            None,
            &path,
            &ts,
            &ts,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        );
    }
    Ok(Source {
        path,
        name,
        is_dir: false,
        downloaded: true,
    })
}

pub async fn copy(b: &mut Build<'_>, st: &mut State, spec: &CopySpec) -> Result<()> {
    let what = if spec.add { "ADD" } else { "COPY" };
    let failed = |e: BuildError| match e {
        BuildError::Invalid(m) => BuildError::Invalid(format!("{what} failed: {m}")),
        e => e,
    };
    let env = st.expand_env();
    let srcs = spec
        .srcs
        .iter()
        .map(|s| process_word(s, &env, b.escape))
        .collect::<Result<Vec<_>, _>>()?;
    let dest = process_word(&spec.dest, &env, b.escape)?;
    let chown = spec
        .chown
        .as_ref()
        .map(|c| process_word(c, &env, b.escape))
        .transpose()?;
    // Made only when needed (a mount, a download, a miss).
    let work = images::scratch_path(&b.work);
    // Another stage's or image's filesystem, mounted for reading.
    let mut from_mount: Option<Mounted> = None;
    let root: PathBuf = match &spec.from {
        Some(from) => {
            let img = match b.stage_image(from) {
                Some(img) => img,
                None => Some(b.image(from, "").await?),
            };
            let (g, dir) = (b.graph.clone(), work.join("from"));
            let id = img.map(|i| i.id);
            let m = blocking(move || Mounted::new(&g, id.as_ref(), dir)).await?;
            let r = m.root.clone();
            from_mount = Some(m);
            r
        }
        None => b.ctx.clone(),
    };
    // Downloads first; then, in one trip to a blocking thread, the local sources
    // found and everything hashed.
    let mut downloads = Vec::new();
    for s in srcs.iter().filter(|s| is_url(s)) {
        if !spec.add || spec.from.is_some() {
            return Err(failed(BuildError::Invalid(
                "source can't be a URL for COPY".into(),
            )));
        }
        let dl = work.join("download").join(downloads.len().to_string());
        std::fs::create_dir_all(&dl)?;
        downloads.push((s.clone(), download(s, &dl).await.map_err(failed)?));
    }
    let r = root.clone();
    let (sources, hash) = blocking(move || {
        let mut sources = Vec::new();
        for s in &srcs {
            match downloads.iter().position(|(u, _)| u == s) {
                Some(i) => sources.push(downloads.remove(i).1),
                None => sources.extend(copy::find(&r, s)?),
            }
        }
        if sources.is_empty() {
            return Err(BuildError::Invalid("no source files were specified".into()));
        }
        let hash = copy::source_hash(&sources)?;
        Ok((sources, hash))
    })
    .await
    .map_err(failed)?;
    // No space after the owner: dockerd writes it so, and caches compare it.
    let chown_comment = chown
        .as_ref()
        .map(|c| format!("--chown={c}"))
        .unwrap_or_default();
    let key = b.comment_string_key(st, &format!("{what} {chown_comment}{hash} in {dest} "));
    if b.probe(st, &key).await? {
        return Ok(());
    }
    let wd = st
        .config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let dest_abs = if dest.starts_with('/') {
        dest.clone()
    } else {
        format!("{}/{dest}", wd.trim_end_matches('/'))
    };
    let keep_owner = spec.from.is_some() && chown.is_none();
    let (g, parent, config, author) = (
        b.graph.clone(),
        st.image.clone(),
        b.commit_config(st),
        st.maintainer.clone(),
    );
    let unpack = spec.add;
    let img = blocking(move || {
        let m = Mounted::new(&g, parent.as_ref().map(|p| &p.id), work.join("layer"))?;
        let owner = match &chown {
            Some(c) => Some(copy::parse_chown(&m.root, c)?),
            None if keep_owner => None,
            None => Some(Owner { uid: 0, gid: 0 }),
        };
        let plan = Plan {
            sources,
            dest: dest_abs,
            owner,
            unpack,
        };
        copy::perform(&m.root, &plan)?;
        let layer = m.into_layer(&g)?;
        drop(from_mount);
        let _ = std::fs::remove_dir_all(&work);
        images::commit_record(
            &g,
            images::Commit {
                parent: parent.as_ref(),
                config: &config,
                key: &key,
                author: &author,
                layer,
            },
        )
    })
    .await
    .map_err(failed)?;
    st.image = Some(img);
    Ok(())
}

/// WORKDIR on a stage that has no image yet (`FROM scratch`): the directory
/// made in a mounted empty filesystem becomes the first layer.
pub async fn mkdir_commit(b: &mut Build<'_>, st: &mut State, dir: &str, key: &Value) -> Result<()> {
    let work = images::scratch_dir(&b.work)?;
    let (g, config, author, key, dir) = (
        b.graph.clone(),
        b.commit_config(st),
        st.maintainer.clone(),
        key.clone(),
        dir.to_string(),
    );
    let img = blocking(move || {
        let m = Mounted::new(&g, None, work.join("layer"))?;
        copy::mkdir_all(&m.root, &dir, Owner { uid: 0, gid: 0 })?;
        let layer = m.into_layer(&g)?;
        let _ = std::fs::remove_dir_all(&work);
        images::commit_record(
            &g,
            images::Commit {
                parent: None,
                config: &config,
                key: &key,
                author: &author,
                layer,
            },
        )
    })
    .await?;
    st.image = Some(img);
    Ok(())
}
