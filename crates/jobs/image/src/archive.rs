//! `docker save` (`GET /images/{name}/get`, `GET /images/get`), `docker load`
//! (`POST /images/load`) and `docker import` (`POST /images/create?fromSrc=`).
//!
//! Saved archives have dockerd 25's layout: an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) plus `manifest.json` and `repositories`, with
//! uncompressed layers reproduced byte for byte, so their digests are the diff IDs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::blocking::{body_channel, ChanReader, ChanWriter};
use berth_engine::{Body, Job, Reply, StreamKind};
use berth_graph::{chain_ids, Compression, Digest, Graph, ImageConfig, LayerMeta, Reference};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::progress::Progress;
use crate::pull::spawn_unpack;
use crate::{api_err, blocking, parse_ref, resolve, Images};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A `Write` that hands chunks to the async side, for tars built on a blocking thread.
fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn append(b: &mut tar::Builder<ChanWriter>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = header(data.len() as u64);
    b.append_data(&mut h, path, data)
}

struct SaveItem {
    id: Digest,
    tags: Vec<Reference>,
}

fn write_archive(graph: &Graph, items: &[SaveItem], w: ChanWriter) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "blobs/", std::io::empty())?;
    b.append_data(&mut dir, "blobs/sha256/", std::io::empty())?;
    let mut written = std::collections::BTreeSet::new();
    let mut manifest_json = Vec::new();
    let mut index = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let rec = graph
            .image(&item.id)
            .ok_or_else(|| std::io::Error::other(format!("No such image: {}", item.id)))?;
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        if written.insert(rec.id.clone()) {
            append(&mut b, &blob(&rec.id), &rec.config_raw)?;
        }
        let mut layers = Vec::new();
        for (chain, diff) in rec.chain_ids.iter().zip(&rec.config.rootfs.diff_ids) {
            let meta = graph
                .layer(chain)
                .ok_or_else(|| std::io::Error::other(format!("layer {chain} missing")))?;
            let size = if meta.tar_size > 0 {
                meta.tar_size
            } else {
                std::io::copy(
                    &mut graph.layer_tar(chain).map_err(std::io::Error::other)?,
                    &mut std::io::sink(),
                )?
            };
            if written.insert(diff.clone()) {
                let mut h = header(size);
                let tar = graph.layer_tar(chain).map_err(std::io::Error::other)?;
                b.append_data(&mut h, blob(diff), tar)?;
            }
            layers.push(json!({ "mediaType": OCI_LAYER, "digest": diff.as_str(), "size": size }));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": rec.id.as_str(), "size": rec.config_raw.len() },
            "layers": layers,
        }))?;
        let md = Digest::of(&manifest);
        if written.insert(md.clone()) {
            append(&mut b, &blob(&md), &manifest)?;
        }
        let tags: Vec<String> = item.tags.iter().map(Reference::familiar).collect();
        let mut entry =
            json!({ "mediaType": OCI_MANIFEST, "digest": md.as_str(), "size": manifest.len() });
        if let Some(t) = item.tags.first() {
            entry["annotations"] = json!({
                "io.containerd.image.name": t.to_string(),
                "org.opencontainers.image.ref.name": t.tag.clone().unwrap_or_default(),
            });
        }
        index.push(entry);
        manifest_json.push(json!({
            "Config": blob(&rec.id),
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
            "Layers": rec.config.rootfs.diff_ids.iter().map(blob).collect::<Vec<_>>(),
        }));
        if let Some(top) = rec.config.rootfs.diff_ids.last() {
            for t in &item.tags {
                repositories
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(t.tag.clone().unwrap_or_default(), top.hex().to_string());
            }
        }
    }
    let index = serde_json::to_vec(
        &json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index }),
    )?;
    append(&mut b, "index.json", &index)?;
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest_json)?,
    )?;
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        append(&mut b, "repositories", &serde_json::to_vec(&repositories)?)?;
    }
    let mut w = b.into_inner()?;
    w.flush()
}

pub(crate) async fn save(mut job: Job, images: Arc<Images>) -> Result<Reply> {
    let names: Vec<String> = match job.args.str("name") {
        Some(n) => vec![n.to_string()],
        None => job.args.all("names").to_vec(),
    };
    if names.is_empty() {
        return Err(ApiError::invalid("no images given to save"));
    }
    let graph = images.graph.clone();
    let items = blocking(move || {
        let mut items: Vec<SaveItem> = Vec::new();
        for n in &names {
            // A bare repository name saves every image tagged in it, as dockerd.
            let repo = Reference::parse(n)
                .ok()
                .filter(|r| r.tag.is_none() && r.digest.is_none())
                .map(|r| r.name());
            let in_repo: Vec<(Reference, Digest)> = match &repo {
                Some(name) => graph
                    .all_refs()
                    .into_iter()
                    .filter(|(r, _)| r.tag.is_some() && r.name() == *name)
                    .collect(),
                None => Vec::new(),
            };
            if !in_repo.is_empty() {
                for (r, id) in in_repo {
                    match items.iter_mut().find(|i| i.id == id) {
                        Some(i) => i.tags.push(r),
                        None => items.push(SaveItem { id, tags: vec![r] }),
                    }
                }
                continue;
            }
            let id = resolve(&graph, n)?;
            // `name:tag` saves that tag; an ID, a digest or an ID prefix none,
            // as dockerd.
            let tags: Vec<Reference> = Reference::parse(n)
                .ok()
                .filter(|r| r.tag.is_some() && graph.lookup_ref(r).as_ref() == Some(&id))
                .into_iter()
                .collect();
            match items.iter_mut().find(|i| i.id == id) {
                Some(i) => i.tags.extend(tags),
                None => items.push(SaveItem { id, tags }),
            }
        }
        Ok(items)
    })
    .await?;
    let out = job.stream("application/x-tar", StreamKind::Raw)?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let graph = images.graph.clone();
    let writer =
        tokio::task::spawn_blocking(move || write_archive(&graph, &items, ChanWriter::new(tx)));
    berth_engine::blocking::forward(&job.cancel_token(), rx, &out).await?;
    writer
        .await
        .map_err(|e| ApiError::system(format!("save: {e}")))?
        .map_err(|e| ApiError::system(format!("save: {e}")))?;
    Ok(Reply::empty(200))
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// One image of an unpacked archive: config path, tags, layer paths.
type Described = (PathBuf, Vec<String>, Vec<PathBuf>);

/// The images described by an unpacked archive.
fn describe(root: &Path) -> Result<Vec<Described>> {
    let inside = |p: &str| -> Result<PathBuf> {
        let rel = Path::new(p);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ApiError::invalid(format!("invalid path in archive: {p:?}")));
        }
        Ok(root.join(rel))
    };
    if let Ok(raw) = std::fs::read(root.join("manifest.json")) {
        let entries: Vec<ManifestEntry> = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::invalid(format!("invalid manifest.json: {e}")))?;
        return entries
            .into_iter()
            .map(|e| {
                let layers = e
                    .layers
                    .iter()
                    .map(|l| inside(l))
                    .collect::<Result<Vec<_>>>()?;
                Ok((inside(&e.config)?, e.repo_tags.unwrap_or_default(), layers))
            })
            .collect();
    }
    let raw = std::fs::read(root.join("index.json")).map_err(|_| {
        ApiError::invalid("invalid archive: it has neither manifest.json nor index.json")
    })?;
    let index: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("invalid index.json: {e}")))?;
    let blob = |d: &str| -> Result<PathBuf> {
        let d = Digest::parse(d).map_err(api_err)?;
        Ok(root.join("blobs/sha256").join(d.hex()))
    };
    let mut out = Vec::new();
    for m in index["manifests"].as_array().cloned().unwrap_or_default() {
        let mraw = std::fs::read(blob(m["digest"].as_str().unwrap_or(""))?)
            .map_err(|e| ApiError::invalid(format!("manifest blob: {e}")))?;
        let man: serde_json::Value = serde_json::from_slice(&mraw)
            .map_err(|e| ApiError::invalid(format!("invalid manifest: {e}")))?;
        if man.get("manifests").is_some() {
            return Err(ApiError::invalid(
                "nested image indexes in archives are not supported",
            ));
        }
        let layers = man["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| blob(l["digest"].as_str().unwrap_or("")))
            .collect::<Result<Vec<_>>>()?;
        let tag = m["annotations"]["io.containerd.image.name"]
            .as_str()
            .or_else(|| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string);
        out.push((
            blob(man["config"]["digest"].as_str().unwrap_or(""))?,
            tag.into_iter().collect(),
            layers,
        ));
    }
    Ok(out)
}

/// Unpacks layer file `path` (any compression) and stores it under `chain`.
fn load_layer(
    graph: &Graph,
    path: &Path,
    expect: &Digest,
    chain: &Digest,
    parent: Option<Digest>,
) -> Result<()> {
    if graph.has_layer(chain) {
        return Ok(());
    }
    let mut f = std::fs::File::open(path)
        .map_err(|e| ApiError::invalid(format!("layer {}: {e}", path.display())))?;
    let mut head = [0u8; 4];
    let n = f
        .read(&mut head)
        .map_err(|e| ApiError::system(e.to_string()))?;
    let f = std::io::Cursor::new(head[..n].to_vec()).chain(f);
    let staging = graph.staging().map_err(api_err)?;
    let (diff_id, x, tar_size) =
        berth_graph::layer::unpack(f, Compression::sniff(&head[..n]), &staging).map_err(api_err)?;
    if &diff_id != expect {
        return Err(ApiError::invalid(format!(
            "invalid archive: layer {} has diff ID {diff_id}, expected {expect}",
            path.display()
        )));
    }
    let meta = LayerMeta {
        chain_id: chain.clone(),
        diff_id,
        parent,
        size: x.size,
        tar_size,
    };
    graph.commit_layer(staging, meta).map_err(api_err)
}

pub(crate) async fn load(mut job: Job, images: Arc<Images>) -> Result<Reply> {
    let quiet = job.args.bool("quiet");
    let body = job.args.take_body();
    let (rx, feeder) = body_channel(body);
    let graph = images.graph.clone();
    // The answer starts at once, as dockerd's: what goes wrong from here on is an
    // error message in the stream (docker-py raises ImageLoadError for it).
    let out = Progress::new(
        job.stream("application/json", StreamKind::JsonMessages)?,
        job.progress(),
    );
    // The archive is unpacked whole first: manifest.json may come after the blobs.
    let loaded = tokio::task::spawn_blocking(move || -> Result<Vec<(Digest, Vec<Reference>)>> {
        let staging = graph.staging().map_err(api_err)?;
        let reader = ChanReader::new(rx);
        berth_graph::extract::extract(reader, &staging.diff()).map_err(|e| match e {
            berth_graph::Error::Layer(m) if m.starts_with("reading tar: ") => {
                ApiError::invalid(format!(
                    "Error processing tar file(exit status 1): {}",
                    &m["reading tar: ".len()..]
                ))
            }
            e => ApiError::invalid(format!("invalid archive: {e}")),
        })?;
        let root = staging.diff();
        let mut out = Vec::new();
        for (config_path, tags, layers) in describe(&root)? {
            let raw = std::fs::read(&config_path)
                .map_err(|e| ApiError::invalid(format!("image config: {e}")))?;
            let config = ImageConfig::parse(&raw).map_err(api_err)?;
            if config.rootfs.diff_ids.len() != layers.len() {
                return Err(ApiError::invalid(
                    "invalid archive: layer count differs from the image config",
                ));
            }
            let chains = chain_ids(&config.rootfs.diff_ids);
            for (i, l) in layers.iter().enumerate() {
                load_layer(
                    &graph,
                    l,
                    &config.rootfs.diff_ids[i],
                    &chains[i],
                    i.checked_sub(1).map(|p| chains[p].clone()),
                )?;
            }
            let id = graph.put_image(&raw).map_err(api_err)?;
            let mut refs = Vec::new();
            for t in tags {
                let r = parse_ref(&t)?;
                graph.tag(&r, &id).map_err(api_err)?;
                refs.push(r);
            }
            out.push((id, refs));
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::system(format!("load: {e}")))?;
    feeder.abort();
    let loaded = loaded?;
    let _ = quiet;
    for (id, refs) in &loaded {
        if refs.is_empty() {
            out.stream(&format!("Loaded image ID: {id}\n")).await?;
        }
        for r in refs {
            out.stream(&format!("Loaded image: {}\n", r.familiar()))
                .await?;
        }
        crate::event(&job, "load", id.as_str(), id.as_str());
    }
    Ok(Reply::empty(200))
}

pub(crate) async fn import(mut job: Job, images: Arc<Images>) -> Result<Reply> {
    let src = job.args.str("fromSrc").unwrap_or("").to_string();
    let repo = job.args.str("repo").unwrap_or("").to_string();
    let tag = job.args.str("tag").unwrap_or("").to_string();
    let target = if repo.is_empty() {
        None
    } else {
        let name = if tag.is_empty() {
            repo.clone()
        } else {
            format!("{repo}:{tag}")
        };
        Some(parse_ref(&name)?)
    };
    let message = job.args.str("message").unwrap_or("").to_string();
    let changes = job.args.all("changes").to_vec();
    let mut cfg = serde_json::Map::new();
    berth_api::changes::apply(&mut cfg, &changes)?;
    let platform = job
        .args
        .str("platform")
        .filter(|p| !p.is_empty())
        .map(berth_registry::Platform::parse)
        .transpose()
        .map_err(crate::registry_err)?;
    let platform = platform.unwrap_or_else(berth_registry::Platform::host);

    let body = if src == "-" {
        job.args.take_body()
    } else {
        // A URL: the archive comes from there, as dockerd's import does.
        let stream = images
            .registry
            .fetch(&src)
            .await
            .map_err(crate::registry_err)?;
        Body::Stream(stream)
    };
    let (raw_rx, feeder) = body_channel(body);
    // Sniff the compression from the first chunk, then unpack the rest as it comes.
    let (tx, rx) = mpsc::channel(8);
    let mut raw_rx = raw_rx;
    let first = raw_rx.recv().await;
    let compression = match &first {
        Some(Ok(b)) => Compression::sniff(b),
        _ => Compression::None,
    };
    let unpack = spawn_unpack(&images, rx, compression);
    if let Some(f) = first {
        let _ = tx.send(f).await;
    }
    while let Some(chunk) = raw_rx.recv().await {
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    feeder.abort();
    let (staging, diff_id, size, tar_size) = unpack
        .await
        .map_err(|e| ApiError::system(format!("import: {e}")))??;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let comment = if message.is_empty() {
        format!("Imported from {src}")
    } else {
        message.clone()
    };
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": now,
        "config": if cfg.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(cfg) },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.as_str()] },
        "history": [ { "created": now, "created_by": "", "comment": comment } ],
        "comment": message,
    });
    let raw = serde_json::to_vec(&config).map_err(|e| ApiError::system(e.to_string()))?;
    let graph = images.graph.clone();
    let t2 = target.clone();
    let id = blocking(move || {
        let meta = LayerMeta {
            chain_id: diff_id.clone(),
            diff_id: diff_id.clone(),
            parent: None,
            size,
            tar_size,
        };
        graph.commit_layer(staging, meta).map_err(api_err)?;
        let id = graph.put_image(&raw).map_err(api_err)?;
        if let Some(t) = t2 {
            graph.tag(&t, &id).map_err(api_err)?;
        }
        Ok(id)
    })
    .await?;
    let out = Progress::new(
        job.stream("application/json", StreamKind::JsonMessages)?,
        job.progress(),
    );
    out.status(id.as_str()).await?;
    crate::event(
        &job,
        "import",
        id.as_str(),
        &target.map(|t| t.familiar()).unwrap_or_default(),
    );
    Ok(Reply::empty(200))
}
