//! `POST /commit`: a container's changes become a new image. The upper directory
//! is read as a layer tar (overlay whiteouts turned back into `.wh.` entries, the
//! daemon's own mount-point files left out), unpacked into the graph as any layer
//! is, and the image config is the parent's with the container's config, the
//! request's changes and one more history entry. A container that changed
//! nothing adds no layer, only a history entry marked `empty_layer`, as dockerd.
//!
//! `container.commit_build` (no route) is the classic builder's commit of a step:
//! the config is the build stage's as given, the container config the step's
//! cache key, and the history entry the key's command.

use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use berth_graph::{chain_ids, Compression, Digest, LayerMeta, Reference};
use serde_json::{json, Map, Value};

use crate::model::Record;
use crate::sys;
use crate::{event, Containers};

/// Paths the daemon creates in every container (bind-mount targets), never part
/// of a commit.
const SKIP: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv"];

/// The digest of a tar with no entries: a container that changed nothing.
const EMPTY_TAR: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What becomes of a container's changes.
struct Spec {
    /// The new image's `config`.
    config: Value,
    container_config: Value,
    created_by: String,
    author: String,
    comment: String,
    target: Option<Reference>,
    pause: bool,
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
    // The image's config is the image format's JSON, not the container's record.
    let container_config = serde_json::to_value(&rec.config).map_err(sys)?;
    let mut cfg: Map<String, Value> = container_config.as_object().cloned().unwrap_or_default();
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
    let spec = Spec {
        config: Value::Object(cfg),
        container_config,
        created_by: std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        author: job.args.str("author").unwrap_or("").to_string(),
        comment: job.args.str("comment").unwrap_or("").to_string(),
        target: target.clone(),
        pause,
    };
    let id = commit_record(&c, &rec, spec).await?;
    event(
        &job,
        &rec,
        "commit",
        &[
            ("comment", job.args.str("comment").unwrap_or("").to_string()),
            ("imageID", id.as_str().to_string()),
            ("imageRef", target.map(|t| t.familiar()).unwrap_or_default()),
        ],
    );
    Ok(Reply::json_status(201, &json!({ "Id": id.as_str() })))
}

/// The builder's commit: body `{"Config": …, "ContainerConfig": …, "Author": …}`.
pub(crate) async fn commit_build(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("container")?)?;
    let rec = entry.snapshot();
    let req: Value = job.args.json()?;
    let container_config = req["ContainerConfig"].clone();
    let created_by = container_config["Cmd"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let spec = Spec {
        config: req["Config"].clone(),
        container_config,
        created_by,
        author: req["Author"].as_str().unwrap_or("").to_string(),
        comment: String::new(),
        target: None,
        pause: false,
    };
    let id = commit_record(&c, &rec, spec).await?;
    job.events().publish(
        "image",
        "create",
        id.as_str(),
        [("name".to_string(), id.as_str().to_string())].into(),
    );
    Ok(Reply::json_status(201, &json!({ "Id": id.as_str() })))
}

async fn commit_record(c: &Arc<Containers>, rec: &Record, spec: Spec) -> Result<Digest> {
    let cg = crate::ops::cgroup(rec);
    let frozen = if spec.pause && rec.state.running && !rec.state.paused {
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
            let staging = graph.staging().map_err(berth_apierr::graph)?;
            let (r, w) = std::io::pipe().map_err(sys)?;
            let writer = std::thread::spawn(move || berth_graph::layer::diff_tar(&upper, SKIP, w));
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
    let empty = diff_id.as_str() == EMPTY_TAR;
    let image_id = Digest::parse(&rec.image).map_err(sys)?;
    let parent = c
        .graph
        .image(&image_id)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {}", rec.image)))?;
    let mut config: Value = serde_json::from_slice(&parent.config_raw).map_err(sys)?;
    let mut diff_ids = parent.config.rootfs.diff_ids.clone();
    if !empty {
        diff_ids.push(diff_id.clone());
    }
    let chains = chain_ids(&diff_ids);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    config["config"] = spec.config;
    config["container"] = json!(rec.id);
    config["container_config"] = spec.container_config;
    config["created"] = json!(now);
    config["author"] = json!(spec.author);
    config["comment"] = json!(spec.comment);
    config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>() });
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    let mut entry = json!({ "created": now, "author": spec.author, "created_by": spec.created_by, "comment": spec.comment });
    if empty {
        entry["empty_layer"] = json!(true);
    }
    history.push(entry);
    config["history"] = json!(history);
    let raw = serde_json::to_vec(&config).map_err(sys)?;
    let graph = c.graph.clone();
    let parent_chain = parent.chain_ids.last().cloned();
    let parent_id = parent.id.clone();
    let target = spec.target;
    let chain = chains.last().cloned().unwrap_or_else(|| diff_id.clone());
    tokio::task::spawn_blocking(move || -> Result<Digest> {
        if !empty {
            let meta = LayerMeta {
                chain_id: chain,
                diff_id,
                parent: parent_chain,
                size,
                tar_size,
            };
            graph
                .commit_layer(staging, meta)
                .map_err(berth_apierr::graph)?;
        }
        let id = graph.put_image(&raw).map_err(berth_apierr::graph)?;
        graph
            .set_parent(&id, &parent_id)
            .map_err(berth_apierr::graph)?;
        if let Some(t) = target {
            graph.tag(&t, &id).map_err(berth_apierr::graph)?;
        }
        Ok(id)
    })
    .await
    .map_err(sys)?
}
