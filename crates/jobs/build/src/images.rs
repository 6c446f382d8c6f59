//! New images from build steps: the cache lookup (a parent's children whose
//! container config matches, as dockerd's `getLocalCachedImage`), and the
//! commits the builder makes without a container (FROM scratch metadata, COPY
//! and ADD layers from a mounted filesystem).

use std::path::{Path, PathBuf};

use berth_graph::{chain_ids, Compression, Digest, Graph, ImageRecord, LayerMeta};
use serde_json::{json, Map, Value};

use crate::error::{BuildError, Result};

/// A step's command as its history writes it (`created_by`): the words joined.
fn cmd_line(key: &Value) -> String {
    key["Cmd"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The fields dockerd's cache `compare()` looks at, normalized.
fn cache_view(c: &Value) -> Value {
    let list = |k: &str| match &c[k] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Null,
    };
    let keys = |k: &str| match &c[k] {
        Value::Object(m) if !m.is_empty() => Value::Array(m.keys().map(|k| json!(k)).collect()),
        _ => Value::Null,
    };
    let labels = match &c["Labels"] {
        Value::Object(m) if !m.is_empty() => Value::Object(m.clone()),
        _ => Value::Null,
    };
    json!({
        "User": c["User"].as_str().unwrap_or(""),
        "Tty": c["Tty"].as_bool().unwrap_or(false),
        "OpenStdin": c["OpenStdin"].as_bool().unwrap_or(false),
        "AttachStdout": c["AttachStdout"].as_bool().unwrap_or(false),
        "AttachStderr": c["AttachStderr"].as_bool().unwrap_or(false),
        "Cmd": list("Cmd"),
        "Env": list("Env"),
        "Entrypoint": list("Entrypoint"),
        "Labels": labels,
        "ExposedPorts": keys("ExposedPorts"),
        "Volumes": keys("Volumes"),
    })
}

/// The newest image made from `parent` (or, for `None`, any image without a
/// parent) on this host whose step had the container config `key`. With
/// `allowed`, only those images count (`cachefrom`).
pub fn lookup(
    graph: &Graph,
    parent: Option<&Digest>,
    key: &Value,
    allowed: Option<&std::collections::BTreeSet<Digest>>,
) -> Option<Digest> {
    if key["OpenStdin"].as_bool().unwrap_or(false) {
        return None;
    }
    let want = cache_view(key);
    let candidates = match parent {
        Some(p) => graph.children(p),
        None => graph
            .images()
            .into_iter()
            .filter(|i| i.parent.is_none())
            .collect(),
    };
    candidates
        .into_iter()
        .filter(|i| allowed.is_none_or(|a| a.contains(&i.id)))
        .filter(|i| {
            i.config
                .container_config
                .as_ref()
                .is_some_and(|c| cache_view(c) == want)
        })
        .max_by_key(|i| i.config.created.clone())
        .map(|i| i.id)
}

/// The `cachefrom` images and their local ancestors.
pub fn cache_sources(graph: &Graph, sources: &[ImageRecord]) -> std::collections::BTreeSet<Digest> {
    let mut out = std::collections::BTreeSet::new();
    for s in sources {
        let mut id = s.id.clone();
        while out.insert(id.clone()) {
            match graph.image(&id).and_then(|i| i.parent) {
                Some(p) => id = p,
                None => break,
            }
        }
    }
    out
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A layer ready to be stored: staging plus what `unpack` found.
pub struct NewLayer {
    pub staging: berth_graph::Staging,
    pub diff_id: Digest,
    pub size: u64,
    pub tar_size: u64,
}

/// What a commit without a container records.
pub struct Commit<'a> {
    pub parent: Option<&'a ImageRecord>,
    pub config: &'a Map<String, Value>,
    pub key: &'a Value,
    pub author: &'a str,
    pub layer: Option<NewLayer>,
}

/// Stores the step's image and reads it back (blocking).
pub fn commit_record(graph: &Graph, c: Commit<'_>) -> Result<ImageRecord> {
    let id = commit(graph, c)?;
    graph
        .image(&id)
        .ok_or_else(|| BuildError::System("committed image vanished".into()))
}

/// Stores the step's image (blocking).
pub fn commit(graph: &Graph, c: Commit<'_>) -> Result<Digest> {
    let mut img: Value = match c.parent {
        Some(p) => {
            serde_json::from_slice(&p.config_raw).map_err(|e| BuildError::System(e.to_string()))?
        }
        None => json!({
            "architecture": host_arch(),
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [] },
            "history": [],
        }),
    };
    let mut diff_ids: Vec<Digest> = c
        .parent
        .map(|p| p.config.rootfs.diff_ids.clone())
        .unwrap_or_default();
    let t = now();
    let created_by = cmd_line(c.key);
    let mut h = json!({ "created": t, "created_by": created_by });
    if !c.author.is_empty() {
        h["author"] = json!(c.author);
    }
    let empty = c.layer.is_none();
    if empty {
        h["empty_layer"] = json!(true);
    }
    if let Some(l) = c.layer {
        let parent_chain = chain_ids(&diff_ids).last().cloned();
        diff_ids.push(l.diff_id.clone());
        let chain = chain_ids(&diff_ids)
            .last()
            .cloned()
            .unwrap_or_else(|| l.diff_id.clone());
        graph.commit_layer(
            l.staging,
            LayerMeta {
                chain_id: chain,
                diff_id: l.diff_id,
                parent: parent_chain,
                size: l.size,
                tar_size: l.tar_size,
            },
        )?;
    }
    let mut history = img["history"].as_array().cloned().unwrap_or_default();
    history.push(h);
    img["history"] = json!(history);
    img["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>() });
    img["config"] = Value::Object(c.config.clone());
    img["container_config"] = c.key.clone();
    img["container"] = json!("");
    img["created"] = json!(t);
    if !c.author.is_empty() {
        img["author"] = json!(c.author);
    }
    let raw = serde_json::to_vec(&img).map_err(|e| BuildError::System(e.to_string()))?;
    let id = graph.put_image(&raw)?;
    if let Some(p) = c.parent {
        graph.set_parent(&id, &p.id)?;
    }
    Ok(id)
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    }
}

/// An image's filesystem mounted for the builder (read-write, on a fresh upper
/// directory that becomes the step's layer); unmounted and removed on drop.
pub struct Mounted {
    pub root: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

impl Mounted {
    pub fn new(graph: &Graph, image: Option<&Digest>, dir: PathBuf) -> Result<Mounted> {
        let lowers = match image {
            Some(id) => graph.lowerdirs(id)?,
            None => Vec::new(),
        };
        let root = dir.join("merged");
        let mut m = Mounted {
            root: root.clone(),
            dir: dir.clone(),
            mounted: false,
        };
        berth_graph::mount::mount_overlay(&lowers, &dir.join("upper"), &dir.join("work"), &root)?;
        m.mounted = true;
        Ok(m)
    }

    /// Unmounts and turns the upper directory into a layer (None if empty).
    pub fn into_layer(mut self, graph: &Graph) -> Result<Option<NewLayer>> {
        berth_graph::mount::unmount(&self.root)?;
        self.mounted = false;
        let staging = graph.staging()?;
        let (r, w) = std::io::pipe()?;
        let upper = self.dir.join("upper");
        let writer = std::thread::spawn(move || berth_graph::layer::diff_tar(&upper, &[], w));
        let unpacked = berth_graph::layer::unpack(r, Compression::None, &staging);
        writer
            .join()
            .map_err(|_| BuildError::System("layer writer panicked".into()))??;
        let (diff_id, x, tar_size) = unpacked?;
        if diff_id.as_str() == EMPTY_TAR {
            return Ok(None);
        }
        Ok(Some(NewLayer {
            staging,
            diff_id,
            size: x.size,
            tar_size,
        }))
    }
}

const EMPTY_TAR: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = berth_graph::mount::unmount(&self.root);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs blocking graph work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BuildError::System(e.to_string()))?
}

/// A unique directory under `work`.
pub fn scratch_dir(work: &Path) -> Result<PathBuf> {
    let d = scratch_path(work);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// A unique path under `work`, not yet made.
pub fn scratch_path(work: &Path) -> PathBuf {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    work.join(hex::encode(b))
}

/// `cachefrom` images without local parents (pulled from a registry): a step is
/// cached when a source's history continues the parent's with this step's
/// command. The image for it is restored from the source's config and layers,
/// as dockerd's `restoreCachedImage`; the source's last step is the source.
pub fn lookup_history(
    graph: &Graph,
    parent: Option<&ImageRecord>,
    key: &Value,
    sources: &mut Vec<ImageRecord>,
) -> Result<Option<Digest>> {
    let cmd = cmd_line(key);
    let hist = |i: &ImageRecord| -> Vec<Value> {
        i.config
            .history
            .iter()
            .map(|h| serde_json::to_value(h).unwrap_or(Value::Null))
            .collect()
    };
    let (p_hist, p_diffs) = match parent {
        Some(p) => (hist(p), p.config.rootfs.diff_ids.clone()),
        None => (Vec::new(), Vec::new()),
    };
    let n = p_hist.len();
    let found = sources.iter().position(|t| {
        let th = hist(t);
        let valid_parent = !th.is_empty()
            && (p_hist.is_empty() && p_diffs.is_empty()
                || (n < th.len()
                    && p_diffs.len() <= t.config.rootfs.diff_ids.len()
                    && th[..n] == p_hist[..]
                    && t.config.rootfs.diff_ids[..p_diffs.len()] == p_diffs[..]));
        valid_parent
            && t.config
                .history
                .get(n)
                .and_then(|h| h.created_by.as_deref())
                == Some(cmd.as_str())
    });
    let Some(i) = found else { return Ok(None) };
    let target = sources[i].clone();
    if target.config.history.len() - 1 == n {
        if let Some(p) = parent {
            graph.set_parent(&target.id, &p.id)?;
        }
        return Ok(Some(target.id));
    }
    // An intermediate image: the parent's history and layers and one more step.
    let mut history: Vec<Value> = p_hist;
    history.push(hist(&target)[n].clone());
    let mut diffs = p_diffs;
    let layer_index = target.config.history[..n]
        .iter()
        .filter(|h| !h.empty_layer)
        .count();
    if !target.config.history[n].empty_layer {
        if let Some(d) = target.config.rootfs.diff_ids.get(layer_index) {
            diffs.push(d.clone());
        }
    }
    let created = target.config.history[n].created.clone();
    let img = json!({
        "architecture": target.config.architecture,
        "os": target.config.os,
        "author": target.config.author,
        "created": created,
        "config": key,
        "rootfs": { "type": "layers", "diff_ids": diffs.iter().map(|d| d.as_str()).collect::<Vec<_>>() },
        "history": history,
    });
    let raw = serde_json::to_vec(&img).map_err(|e| BuildError::System(e.to_string()))?;
    let id = graph.put_image(&raw)?;
    if let Some(p) = parent {
        graph.set_parent(&id, &p.id)?;
    }
    // Stay on this source from here on (dockerd's rule).
    *sources = vec![target];
    Ok(Some(id))
}
