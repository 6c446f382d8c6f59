//! `POST /commit`: a container's changes become a new image. The upper directory
//! is read as a layer tar (overlay whiteouts turned back into `.wh.` entries, the
//! daemon's own mount-point files left out), unpacked into the graph as any layer
//! is, and the image config is the parent's with the container's config, the
//! request's changes and one more history entry.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use berth_graph::{chain_ids, Compression, Digest, LayerMeta, Reference};
use serde_json::{json, Map, Value};

use crate::{event, Containers};

fn sys(e: impl std::fmt::Display) -> ApiError {
    ApiError::system(e.to_string())
}

/// Paths the daemon creates in every container (bind-mount targets).
const SKIP: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv"];

fn opaque(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // Safety: a valid path, attribute name and buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn whiteout_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Writes the upper directory as a layer tar.
pub(crate) fn layer_tar<W: Write>(upper: &Path, w: W) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    fn walk<W: Write>(b: &mut tar::Builder<W>, root: &Path, dir: &Path) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if SKIP.iter().any(|s| Path::new(s) == rel) {
                continue;
            }
            let md = std::fs::symlink_metadata(&p)?;
            if md.file_type().is_char_device() && md.rdev() == 0 {
                let name = rel.with_file_name(format!(".wh.{}", e.file_name().to_string_lossy()));
                b.append_data(&mut whiteout_header(), name, std::io::empty())?;
                continue;
            }
            b.append_path_with_name(&p, &rel)?;
            if md.is_dir() {
                if opaque(&p) {
                    b.append_data(
                        &mut whiteout_header(),
                        rel.join(".wh..wh..opq"),
                        std::io::empty(),
                    )?;
                }
                walk(b, root, &p)?;
            }
        }
        Ok(())
    }
    walk(&mut b, upper, upper)?;
    b.into_inner()?.flush()
}

pub(crate) async fn commit(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.str("container").unwrap_or(""))?;
    let rec = entry.snapshot();
    let target = match job.args.str("repo").filter(|r| !r.is_empty()) {
        Some(repo) => {
            let tag = job
                .args
                .str("tag")
                .filter(|t| !t.is_empty())
                .unwrap_or("latest");
            let full = if repo.contains('@') {
                repo.to_string()
            } else {
                format!("{repo}:{tag}")
            };
            Some(Reference::parse_tagged(&full).map_err(|e| ApiError::invalid(e.to_string()))?)
        }
        None => None,
    };
    let req: Value = job.args.json()?;
    let mut cfg: Map<String, Value> = rec.config.as_object().cloned().unwrap_or_default();
    if let Some(o) = req.as_object() {
        for (k, v) in o {
            let set = match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(m) => !m.is_empty(),
                _ => true,
            };
            if set {
                cfg.insert(k.clone(), v.clone());
            }
        }
    }
    berth_api::changes::apply(&mut cfg, job.args.all("changes"))?;
    let pause = job
        .args
        .str("pause")
        .map(|p| p != "0" && p != "false")
        .unwrap_or(true);
    let cg = crate::ops::cgroup(&rec);
    let frozen = if pause && rec.state.running && !rec.state.paused {
        let cg = cg.clone();
        tokio::task::spawn_blocking(move || match cg.freeze(true) {
            Ok(()) => Ok(true),
            // It ended meanwhile (a commit right after a short command's start):
            // nothing is left running to change its files.
            Err(_) if !cg.exists() || cg.pids().is_empty() => Ok(false),
            Err(e) => Err(ApiError::system(format!("pausing for commit: {e}"))),
        })
        .await
        .map_err(sys)??
    } else {
        false
    };
    let graph = c.graph.clone();
    let upper = c.dir(&rec.id).join("upper");
    let layer = tokio::task::spawn_blocking(
        move || -> Result<(berth_graph::Staging, Digest, u64, u64)> {
            let staging = graph.staging().map_err(sys)?;
            let (r, w) = std::io::pipe().map_err(sys)?;
            let writer = std::thread::spawn(move || layer_tar(&upper, w));
            let unpacked = berth_graph::layer::unpack(r, Compression::None, &staging);
            let wrote = writer.join().map_err(|_| sys("layer writer panicked"))?;
            wrote.map_err(|e| ApiError::system(format!("reading the container's changes: {e}")))?;
            let (diff_id, x, tar_size) = unpacked.map_err(sys)?;
            Ok((staging, diff_id, x.size, tar_size))
        },
    )
    .await
    .map_err(sys);
    if frozen {
        let _ = tokio::task::spawn_blocking(move || cg.freeze(false)).await;
    }
    let (staging, diff_id, size, tar_size) = layer??;
    let image_id = Digest::parse(&rec.image).map_err(sys)?;
    let parent = c
        .graph
        .image(&image_id)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {}", rec.image)))?;
    let mut config: Value = serde_json::from_slice(&parent.config_raw).map_err(sys)?;
    let mut diff_ids = parent.config.rootfs.diff_ids.clone();
    diff_ids.push(diff_id.clone());
    let chains = chain_ids(&diff_ids);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let author = job.args.str("author").unwrap_or("").to_string();
    let comment = job.args.str("comment").unwrap_or("").to_string();
    config["config"] = Value::Object(cfg);
    config["container"] = json!(rec.id);
    config["created"] = json!(now);
    config["author"] = json!(author);
    config["comment"] = json!(comment);
    config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>() });
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    let created_by = std::iter::once(rec.path.clone())
        .chain(rec.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    history.push(
        json!({ "created": now, "author": author, "created_by": created_by, "comment": comment }),
    );
    config["history"] = json!(history);
    let raw = serde_json::to_vec(&config).map_err(sys)?;
    let graph = c.graph.clone();
    let (t2, parent_chain) = (target.clone(), parent.chain_ids.last().cloned());
    let chain = chains.last().cloned().unwrap_or_else(|| diff_id.clone());
    let id = tokio::task::spawn_blocking(move || -> Result<Digest> {
        let meta = LayerMeta {
            chain_id: chain,
            diff_id,
            parent: parent_chain,
            size,
            tar_size,
        };
        graph.commit_layer(staging, meta).map_err(sys)?;
        let id = graph.put_image(&raw).map_err(sys)?;
        if let Some(t) = t2 {
            graph.tag(&t, &id).map_err(sys)?;
        }
        Ok(id)
    })
    .await
    .map_err(sys)??;
    event(
        &job,
        &rec,
        "commit",
        &[
            ("comment", comment),
            ("imageID", id.as_str().to_string()),
            ("imageRef", target.map(|t| t.familiar()).unwrap_or_default()),
        ],
    );
    Ok(Reply::json_status(201, &json!({ "Id": id.as_str() })))
}
