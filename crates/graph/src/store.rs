//! The stores and their persistence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::{chain_ids, Digest};
use crate::image::ImageConfig;
use crate::layer::Staging;
use crate::reference::Reference;
use crate::{io_err, Error};

/// A layer's metadata (`layer.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of file content in this layer alone.
    pub size: u64,
    /// Bytes of the layer's uncompressed tar.
    #[serde(default)]
    pub tar_size: u64,
}

/// A compressed form of a layer known to exist in a registry repository, so a push
/// can skip uploads (dockerd's "v2 metadata").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSum {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// `registry/path` of a repository that has it.
    pub repository: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ImageMeta {
    #[serde(default)]
    last_tag_time: Option<String>,
    /// The image this one was made from on this host (commit, build step);
    /// pulled and loaded images have none, as under dockerd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<Digest>,
}

/// An image as the stores hold it.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub id: Digest,
    pub config_raw: Vec<u8>,
    pub config: ImageConfig,
    pub chain_ids: Vec<Digest>,
    pub last_tag_time: Option<String>,
    /// The local parent image (see [`Graph::set_parent`]).
    pub parent: Option<Digest>,
}

#[derive(Default)]
struct State {
    images: BTreeMap<Digest, ImageRecord>,
    /// Full reference string (`docker.io/library/busybox:latest`) → image ID.
    refs: BTreeMap<String, Digest>,
    layers: BTreeMap<Digest, LayerMeta>,
}

#[derive(Serialize, Deserialize, Default)]
struct RepositoriesFile {
    #[serde(rename = "Refs")]
    refs: BTreeMap<String, Digest>,
}

/// The graph. All methods do blocking file I/O: call them off the async runtime.
pub struct Graph {
    root: PathBuf,
    state: Mutex<State>,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

impl Graph {
    /// Opens (creating) the graph under `root`, loads it, and removes what a crash
    /// left half-done.
    pub fn open(root: &Path) -> Result<Graph, Error> {
        for d in ["layers", "images", "content", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        // Layers are staged under tmp/: each a block group of its own (see topdir).
        crate::topdir::mark(&root.join("tmp"));
        let g = Graph {
            root: root.to_path_buf(),
            state: Mutex::new(State::default()),
        };
        g.load()?;
        Ok(g)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self) -> Result<(), Error> {
        let tmp = self.root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            tracing::info!(path = %e.path().display(), "removing unfinished layer staging");
            let _ = std::fs::remove_dir_all(e.path());
        }
        let mut st = State::default();
        let layers = self.root.join("layers");
        for e in std::fs::read_dir(&layers)
            .map_err(io_err(&layers))?
            .flatten()
        {
            let meta_path = e.path().join("layer.json");
            let meta: Option<LayerMeta> = std::fs::read(&meta_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match meta {
                Some(m)
                    if m.chain_id.hex() == e.file_name().to_string_lossy()
                        && e.path().join("diff").is_dir() =>
                {
                    st.layers.insert(m.chain_id.clone(), m);
                }
                _ => {
                    tracing::info!(path = %e.path().display(), "removing incomplete layer");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let images = self.root.join("images");
        let _ = berth_atomicfile::clean_temps(&images);
        for e in std::fs::read_dir(&images)
            .map_err(io_err(&images))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".json").filter(|h| !h.ends_with(".meta")) else {
                continue;
            };
            let raw = std::fs::read(e.path()).map_err(io_err(&e.path()))?;
            let id = Digest::of(&raw);
            let parsed = ImageConfig::parse(&raw);
            let valid = id.hex() == hex && parsed.is_ok();
            let config = match (valid, parsed) {
                (true, Ok(c)) => c,
                _ => {
                    tracing::warn!(path = %e.path().display(), "removing corrupt image config");
                    let _ = std::fs::remove_file(e.path());
                    continue;
                }
            };
            let chains = chain_ids(&config.rootfs.diff_ids);
            if let Some(missing) = chains.iter().find(|c| !st.layers.contains_key(*c)) {
                tracing::warn!(image = %id, layer = %missing, "removing image whose layer is missing");
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let meta: ImageMeta = std::fs::read(images.join(format!("{hex}.meta.json")))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            st.images.insert(
                id.clone(),
                ImageRecord {
                    id,
                    config_raw: raw,
                    config,
                    chain_ids: chains,
                    last_tag_time: meta.last_tag_time,
                    parent: meta.parent,
                },
            );
        }
        let repos = self.root.join("repositories.json");
        if let Ok(b) = std::fs::read(&repos) {
            let f: RepositoriesFile = serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "repositories.json is corrupt; starting with no tags");
                RepositoriesFile::default()
            });
            st.refs = f
                .refs
                .into_iter()
                .filter(|(_, id)| st.images.contains_key(id))
                .collect();
        }
        // Layers no image uses (an interrupted pull or delete) are garbage.
        let used: BTreeSet<Digest> = st
            .images
            .values()
            .flat_map(|i| i.chain_ids.iter().cloned())
            .collect();
        let unused: Vec<Digest> = st
            .layers
            .keys()
            .filter(|c| !used.contains(*c))
            .cloned()
            .collect();
        for c in unused {
            tracing::info!(layer = %c, "removing layer no image uses");
            st.layers.remove(&c);
            let _ = self.remove_layer_dir(&c);
        }
        *self.state() = st;
        Ok(())
    }

    fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }

    fn remove_layer_dir(&self, chain: &Digest) -> Result<(), Error> {
        // Rename first so a crash mid-delete leaves a staging dir, not a half layer.
        let dir = self.layer_dir(chain);
        let trash = self.root.join("tmp").join(format!("del-{}", random_hex()));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => std::fs::remove_dir_all(&trash).map_err(io_err(&trash)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    pub fn has_layer(&self, chain: &Digest) -> bool {
        self.state().layers.contains_key(chain)
    }

    pub fn layer(&self, chain: &Digest) -> Option<LayerMeta> {
        self.state().layers.get(chain).cloned()
    }

    /// The directory holding a layer's unpacked content.
    pub fn layer_diff(&self, chain: &Digest) -> PathBuf {
        self.layer_dir(chain).join("diff")
    }

    /// Compressed forms of a layer seen in registries.
    pub fn blobsums(&self, chain: &Digest) -> Vec<BlobSum> {
        std::fs::read(self.layer_dir(chain).join("blobsums.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remembers that `sum` holds layer `chain`.
    pub fn add_blobsum(&self, chain: &Digest, sum: BlobSum) -> Result<(), Error> {
        let _guard = self.state();
        let mut sums = self.blobsums(chain);
        if sums.contains(&sum) {
            return Ok(());
        }
        sums.push(sum);
        let path = self.layer_dir(chain).join("blobsums.json");
        let bytes = serde_json::to_vec(&sums).map_err(|e| Error::Layer(e.to_string()))?;
        berth_atomicfile::write(&path, &bytes).map_err(io_err(&path))
    }

    /// The original tar of a stored layer, reproduced byte for byte.
    pub fn layer_tar(&self, chain: &Digest) -> Result<crate::tarsplit::Reassembler, Error> {
        let dir = self.layer_dir(chain);
        crate::layer::reader(&dir.join("diff"), &dir.join("tar-split"))
    }

    /// A fresh staging directory to unpack a layer into.
    pub fn staging(&self) -> Result<Staging, Error> {
        let dir = self.root.join("tmp").join(random_hex());
        std::fs::create_dir_all(dir.join("diff")).map_err(io_err(&dir))?;
        Ok(Staging::new(dir))
    }

    /// Moves an unpacked layer into the store. If the layer arrived meanwhile by
    /// another pull, the staged copy is dropped.
    pub fn commit_layer(&self, mut staging: Staging, meta: LayerMeta) -> Result<(), Error> {
        if self.has_layer(&meta.chain_id) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&meta).map_err(|e| Error::Layer(e.to_string()))?;
        berth_atomicfile::write(&staging.dir.join("layer.json"), &bytes)
            .map_err(io_err(&staging.dir))?;
        let dest = self.layer_dir(&meta.chain_id);
        match std::fs::rename(&staging.dir, &dest) {
            Ok(()) => {
                staging.committed = true;
                let _ = berth_atomicfile::sync_dir(&self.root.join("layers"));
                self.state().layers.insert(meta.chain_id.clone(), meta);
                Ok(())
            }
            // Another pull committed the same layer first.
            Err(_) if dest.join("layer.json").exists() => Ok(()),
            Err(e) => Err(io_err(&dest)(e)),
        }
    }

    /// Stores an image config whose layers are all present; returns its ID.
    pub fn put_image(&self, config_raw: &[u8]) -> Result<Digest, Error> {
        let config = ImageConfig::parse(config_raw)?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        let id = Digest::of(config_raw);
        {
            let st = self.state();
            if let Some(missing) = chains.iter().find(|c| !st.layers.contains_key(*c)) {
                return Err(Error::Layer(format!(
                    "layer {missing} of image {id} is missing"
                )));
            }
            if st.images.contains_key(&id) {
                return Ok(id);
            }
        }
        let path = self.root.join("images").join(format!("{}.json", id.hex()));
        berth_atomicfile::write(&path, config_raw).map_err(io_err(&path))?;
        let rec = ImageRecord {
            id: id.clone(),
            config_raw: config_raw.to_vec(),
            config,
            chain_ids: chains,
            last_tag_time: None,
            parent: None,
        };
        self.state().images.insert(id.clone(), rec);
        Ok(id)
    }

    pub fn image(&self, id: &Digest) -> Option<ImageRecord> {
        self.state().images.get(id).cloned()
    }

    pub fn images(&self) -> Vec<ImageRecord> {
        self.state().images.values().cloned().collect()
    }

    /// Total size of an image: the sum of its layers' sizes.
    pub fn image_size(&self, rec: &ImageRecord) -> u64 {
        let st = self.state();
        rec.chain_ids
            .iter()
            .filter_map(|c| st.layers.get(c))
            .map(|l| l.size)
            .sum()
    }

    /// Sum of the sizes of all layers in the store.
    pub fn layers_size(&self) -> u64 {
        self.state().layers.values().map(|l| l.size).sum()
    }

    /// Stores a manifest by its digest.
    pub fn put_content(&self, raw: &[u8]) -> Result<Digest, Error> {
        let d = Digest::of(raw);
        let path = self.root.join("content").join(d.hex());
        if !path.exists() {
            berth_atomicfile::write(&path, raw).map_err(io_err(&path))?;
        }
        Ok(d)
    }

    pub fn content(&self, d: &Digest) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("content").join(d.hex())).ok()
    }

    fn save_refs(&self, st: &State) -> Result<(), Error> {
        let f = RepositoriesFile {
            refs: st.refs.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&f).map_err(|e| Error::Config(e.to_string()))?;
        let path = self.root.join("repositories.json");
        berth_atomicfile::write(&path, &bytes).map_err(io_err(&path))
    }

    fn touch_tag_time(&self, id: &Digest, st: &mut State) {
        let t = now_rfc3339();
        let Some(rec) = st.images.get_mut(id) else {
            return;
        };
        rec.last_tag_time = Some(t);
        if let Err(e) = self.save_meta(rec) {
            tracing::warn!(error = %e, "writing image metadata");
        }
    }

    fn save_meta(&self, rec: &ImageRecord) -> Result<(), Error> {
        let path = self
            .root
            .join("images")
            .join(format!("{}.meta.json", rec.id.hex()));
        let meta = ImageMeta {
            last_tag_time: rec.last_tag_time.clone(),
            parent: rec.parent.clone(),
        };
        let b = serde_json::to_vec(&meta).map_err(|e| Error::Config(e.to_string()))?;
        berth_atomicfile::write(&path, &b).map_err(io_err(&path))
    }

    /// Records that image `id` was made from `parent` on this host: `docker
    /// history` walks these links, `docker images` hides untagged parents and
    /// the builder finds its cache among a parent's children.
    pub fn set_parent(&self, id: &Digest, parent: &Digest) -> Result<(), Error> {
        let mut st = self.state();
        if !st.images.contains_key(parent) {
            return Err(Error::NoSuchImage(parent.to_string()));
        }
        let rec = st
            .images
            .get_mut(id)
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        if rec.parent.as_ref() == Some(parent) {
            return Ok(());
        }
        rec.parent = Some(parent.clone());
        let rec = rec.clone();
        self.save_meta(&rec)
    }

    /// The images whose recorded parent is `id`.
    pub fn children(&self, id: &Digest) -> Vec<ImageRecord> {
        self.state()
            .images
            .values()
            .filter(|i| i.parent.as_ref() == Some(id))
            .cloned()
            .collect()
    }

    /// Points `reference` at image `id`. Returns the image it pointed at before.
    pub fn tag(&self, reference: &Reference, id: &Digest) -> Result<Option<Digest>, Error> {
        let mut st = self.state();
        if !st.images.contains_key(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        let old = st.refs.insert(reference.to_string(), id.clone());
        // Tagging again what the tag names already (every rebuild with `-t`)
        // changes only the tag time.
        if old.as_ref() == Some(id) {
            if reference.tag.is_some() {
                self.touch_tag_time(id, &mut st);
            }
            return Ok(old);
        }
        if let Err(e) = self.save_refs(&st) {
            match &old {
                Some(o) => st.refs.insert(reference.to_string(), o.clone()),
                None => st.refs.remove(&reference.to_string()),
            };
            return Err(e);
        }
        if reference.tag.is_some() {
            self.touch_tag_time(id, &mut st);
        }
        Ok(old)
    }

    /// Removes `reference`; returns the image it named.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>, Error> {
        let mut st = self.state();
        let old = st.refs.remove(&reference.to_string());
        if old.is_some() {
            self.save_refs(&st)?;
        }
        Ok(old)
    }

    /// The references that name image `id`.
    pub fn refs_of(&self, id: &Digest) -> Vec<Reference> {
        self.state()
            .refs
            .iter()
            .filter(|(_, v)| *v == id)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .collect()
    }

    /// Every reference with its image.
    pub fn all_refs(&self) -> Vec<(Reference, Digest)> {
        self.state()
            .refs
            .iter()
            .filter_map(|(k, v)| Reference::parse(k).ok().map(|r| (r, v.clone())))
            .collect()
    }

    /// The image a reference names, if tagged.
    pub fn lookup_ref(&self, r: &Reference) -> Option<Digest> {
        self.state().refs.get(&r.to_string()).cloned()
    }

    /// Resolves what a user typed (`busybox`, `busybox:1`, `repo@sha256:…`, a full or
    /// short image ID) to an image, with Docker's precedence: a reference first, then
    /// an ID or unique ID prefix.
    pub fn resolve(&self, name: &str) -> Result<Digest, Error> {
        let not_found = || Error::NoSuchImage(name.to_string());
        if let Ok(d) = Digest::parse(name) {
            return self
                .state()
                .images
                .contains_key(&d)
                .then_some(d)
                .ok_or_else(not_found);
        }
        if let Ok(r) = Reference::parse_tagged(name) {
            if let Some(id) = self.lookup_ref(&r) {
                return Ok(id);
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let st = self.state();
        let mut hits = st.images.keys().filter(|d| d.hex().starts_with(prefix));
        match (hits.next(), hits.next()) {
            (Some(d), None) => Ok(d.clone()),
            _ => Err(not_found()),
        }
    }

    /// Deletes image `id`, its references, and the layers no other image uses.
    /// Returns the chain IDs of the layers removed.
    pub fn delete_image(&self, id: &Digest) -> Result<Vec<Digest>, Error> {
        let (removed, layers_gone) = {
            let mut st = self.state();
            let Some(rec) = st.images.remove(id) else {
                return Err(Error::NoSuchImage(id.to_string()));
            };
            st.refs.retain(|_, v| v != id);
            self.save_refs(&st)?;
            let used: BTreeSet<Digest> = st
                .images
                .values()
                .flat_map(|i| i.chain_ids.iter().cloned())
                .collect();
            let gone: Vec<Digest> = rec
                .chain_ids
                .iter()
                .rev()
                .filter(|c| !used.contains(*c))
                .cloned()
                .collect();
            for c in &gone {
                st.layers.remove(c);
            }
            (rec, gone)
        };
        let base = self.root.join("images");
        let _ = std::fs::remove_file(base.join(format!("{}.json", removed.id.hex())));
        let _ = std::fs::remove_file(base.join(format!("{}.meta.json", removed.id.hex())));
        let _ = berth_atomicfile::sync_dir(&base);
        for c in &layers_gone {
            self.remove_layer_dir(c)?;
        }
        Ok(layers_gone)
    }

    /// The unpacked layer directories of an image, top layer first (overlay's order).
    pub fn lowerdirs(&self, id: &Digest) -> Result<Vec<PathBuf>, Error> {
        let rec = self
            .image(id)
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        Ok(rec
            .chain_ids
            .iter()
            .rev()
            .map(|c| self.layer_diff(c))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(g: &Graph, content: &[u8], parent: Option<Digest>) -> (Digest, Digest) {
        let s = g.staging().expect("staging");
        std::fs::write(s.diff().join("f"), content).expect("write");
        let diff_id = Digest::of(content);
        let chain = match &parent {
            None => diff_id.clone(),
            Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
        };
        g.commit_layer(
            s,
            LayerMeta {
                chain_id: chain.clone(),
                diff_id: diff_id.clone(),
                parent,
                size: content.len() as u64,
                tar_size: 0,
            },
        )
        .expect("commit");
        (diff_id, chain)
    }

    fn config(diffs: &[&Digest], cmd: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": diffs},
        }))
        .expect("json")
    }

    #[test]
    fn images_refs_and_shared_layers() {
        let t = tempfile::tempdir().expect("tmp");
        let g = Graph::open(t.path()).expect("open");
        let (d1, c1) = layer(&g, b"base", None);
        let (d2, c2) = layer(&g, b"top", Some(c1.clone()));
        let a = g.put_image(&config(&[&d1], "a")).expect("a");
        let b = g.put_image(&config(&[&d1, &d2], "b")).expect("b");
        assert_eq!(g.image_size(&g.image(&b).expect("b")), 7);
        let ra = Reference::parse_tagged("app").expect("ref");
        g.tag(&ra, &a).expect("tag");
        assert_eq!(g.resolve("app").expect("by name"), a);
        assert_eq!(g.resolve("app:latest").expect("by tag"), a);
        assert_eq!(g.resolve(&a.hex()[..8]).expect("by prefix"), a);
        assert_eq!(g.resolve(a.as_str()).expect("by id"), a);
        assert!(matches!(g.resolve("nope"), Err(Error::NoSuchImage(_))));
        assert_eq!(
            g.lowerdirs(&b).expect("lowers"),
            vec![g.layer_diff(&c2), g.layer_diff(&c1)]
        );
        // A layer shared with another image stays.
        let gone = g.delete_image(&b).expect("delete b");
        assert_eq!(gone, vec![c2.clone()]);
        assert!(g.has_layer(&c1) && !g.has_layer(&c2));
        // State survives a reopen.
        drop(g);
        let g = Graph::open(t.path()).expect("reopen");
        assert_eq!(g.resolve("app").expect("tag kept"), a);
        assert!(g.image(&b).is_none());
        assert_eq!(g.delete_image(&a).expect("delete a"), vec![c1]);
        assert!(g.images().is_empty());
    }

    #[test]
    fn image_with_missing_layer_is_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let g = Graph::open(t.path()).expect("open");
        let d = Digest::of(b"nothing");
        assert!(matches!(
            g.put_image(&config(&[&d], "x")),
            Err(Error::Layer(_))
        ));
        assert!(matches!(g.put_image(b"{not json"), Err(Error::Config(_))));
    }

    #[test]
    fn crash_leftovers_are_cleaned_at_open() {
        let t = tempfile::tempdir().expect("tmp");
        {
            let g = Graph::open(t.path()).expect("open");
            let (d1, _) = layer(&g, b"kept", None);
            g.put_image(&config(&[&d1], "k")).expect("image");
            layer(&g, b"orphan", None);
            let s = g.staging().expect("staging");
            std::fs::write(s.diff().join("half"), b"x").expect("w");
            std::mem::forget(s);
        }
        std::fs::create_dir_all(t.path().join("layers").join("f".repeat(64)).join("diff"))
            .expect("no meta");
        std::fs::write(
            t.path()
                .join("images")
                .join(format!("{}.json", "0".repeat(64))),
            b"{}",
        )
        .expect("corrupt");
        let g = Graph::open(t.path()).expect("reopen");
        assert_eq!(g.images().len(), 1);
        assert_eq!(
            std::fs::read_dir(t.path().join("layers"))
                .expect("ls")
                .count(),
            1
        );
        assert_eq!(
            std::fs::read_dir(t.path().join("tmp")).expect("ls").count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(t.path().join("images"))
                .expect("ls")
                .count(),
            1
        );
    }
}
