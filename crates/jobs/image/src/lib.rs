//! The image job family.
//!
//! Each handler parses its request, does the work with [`berth_graph::Graph`] and
//! [`berth_registry::Client`], and answers in Docker's shapes. Graph calls do file I/O,
//! so they run on blocking threads ([`blocking`]).

mod archive;
mod delete;
mod progress;
mod pull;
mod push;
mod views;

use berth_engine::names;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job, Reply};
use berth_graph::{Digest, Graph, Reference};
use tokio::sync::Semaphore;

/// Who uses an image (containers); the container family provides it. Returns
/// `(container ID, running)` pairs.
pub trait ImageUsage: Send + Sync {
    fn users(&self, image: &Digest) -> Vec<(String, bool)>;
}

/// Shared state of the image jobs.
pub struct Images {
    pub graph: Arc<Graph>,
    pub registry: Arc<berth_registry::Client>,
    usage: RwLock<Option<Arc<dyn ImageUsage>>>,
    limits: RwLock<Limits>,
}

/// How many layers move at once, daemon-wide, and how often a download is tried.
/// A reload replaces the semaphores: transfers under way keep their permits.
struct Limits {
    downloads: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
    sizes: (usize, usize),
    attempts: u32,
}

impl Limits {
    fn new(downloads: usize, uploads: usize, attempts: u32) -> Limits {
        let (d, u) = (downloads.max(1), uploads.max(1));
        Limits {
            downloads: Arc::new(Semaphore::new(d)),
            uploads: Arc::new(Semaphore::new(u)),
            sizes: (d, u),
            attempts: attempts.max(1),
        }
    }
}

/// dockerd's `max-download-attempts` default.
pub const DOWNLOAD_ATTEMPTS: u32 = 5;

impl Images {
    pub fn new(graph: Arc<Graph>, registry: Arc<berth_registry::Client>) -> Arc<Images> {
        let c = registry.config();
        Arc::new(Images {
            graph,
            registry,
            usage: RwLock::new(None),
            limits: RwLock::new(Limits::new(
                c.max_concurrent_downloads,
                c.max_concurrent_uploads,
                DOWNLOAD_ATTEMPTS,
            )),
        })
    }

    /// `max-concurrent-downloads`, `max-concurrent-uploads` and
    /// `max-download-attempts`, at start-up and on reload.
    pub fn set_limits(&self, downloads: usize, uploads: usize, attempts: u32) {
        let mut l = self.limits.write().unwrap_or_else(|p| p.into_inner());
        if l.sizes != (downloads.max(1), uploads.max(1)) {
            *l = Limits::new(downloads, uploads, attempts);
        }
        l.attempts = attempts.max(1);
    }

    pub(crate) fn downloads(&self) -> Arc<Semaphore> {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .downloads
            .clone()
    }

    pub(crate) fn uploads(&self) -> Arc<Semaphore> {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .uploads
            .clone()
    }

    pub(crate) fn download_attempts(&self) -> u32 {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .attempts
    }

    pub fn set_usage(&self, u: Arc<dyn ImageUsage>) {
        *self.usage.write().unwrap_or_else(|p| p.into_inner()) = Some(u);
    }

    /// Image count, total layer bytes and `docker system df` rows.
    pub fn usage(&self) -> (u64, u64, Vec<serde_json::Value>) {
        let recs = self.graph.images();
        let rows = recs
            .iter()
            .map(|rec| {
                let (tags, digests): (Vec<_>, Vec<_>) = self
                    .graph
                    .refs_of(&rec.id)
                    .into_iter()
                    .partition(|r| r.digest.is_none());
                let size = self.graph.image_size(rec);
                serde_json::json!({
                    "Containers": self.users(&rec.id).len(),
                    "Created": rec.config.created_unix(),
                    "Id": rec.id.as_str(),
                    "Labels": rec.config.labels(),
                    "ParentId": "",
                    "RepoDigests": digests.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
                    "RepoTags": tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
                    "SharedSize": -1,
                    "Size": size,
                })
            })
            .collect();
        (recs.len() as u64, self.graph.layers_size(), rows)
    }

    pub(crate) fn users(&self, id: &Digest) -> Vec<(String, bool)> {
        self.usage
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|u| u.users(id))
            .unwrap_or_default()
    }
}

pub(crate) use berth_apierr::{graph as api_err, registry as registry_err};

/// Runs blocking work (file I/O on the graph) off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::system(format!("worker failed: {e}")))?
}

/// Resolves a user-given image name or ID, with Docker's "No such image" error.
pub(crate) fn resolve(graph: &Graph, name: &str) -> Result<Digest> {
    graph
        .resolve(name)
        .map_err(|_| ApiError::not_found(format!("No such image: {name}")))
}

pub(crate) fn event(job: &Job, action: &str, id: &str, name: &str) {
    let mut attrs = BTreeMap::new();
    attrs.insert("name".to_string(), name.to_string());
    job.events().publish("image", action, id, attrs);
}

/// A reference as a user typed it, normalized, with `latest` when untagged.
pub(crate) fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse_tagged(s).map_err(api_err)
}

/// Registers the image jobs.
/// `POST /images/create`: a pull, or with `fromSrc` an import.
async fn create(job: Job, images: Arc<Images>) -> Result<Reply> {
    if job.args.str("fromSrc").is_some() {
        return archive::import(job, images).await;
    }
    pull::pull(job, images).await
}

pub fn register(engine: &Engine, images: Arc<Images>) {
    macro_rules! job {
        (quick $name:expr, $f:path) => {{
            let i = images.clone();
            engine.register_quick($name, move |job: Job| $f(job, i.clone()));
        }};
        ($name:expr, $f:path) => {{
            let i = images.clone();
            engine.register($name, move |job: Job| $f(job, i.clone()));
        }};
    }
    job!(names::image::CREATE, create);
    job!(quick names::image::LIST, views::list);
    job!(quick names::image::INSPECT, views::inspect);
    job!(names::image::HISTORY, views::history);
    job!(names::image::TAG, views::tag);
    job!(names::image::DELETE, delete::delete);
    job!(names::image::PRUNE, delete::prune);
    job!(names::image::SAVE, archive::save);
    job!(names::image::LOAD, archive::load);
    job!(names::image::PUSH, push::push);
    job!(names::image::DISTRIBUTION, pull::distribution);
    job!(names::image::AUTH, pull::auth);
}

/// A reply for jobs that answer with nothing but a status.
pub(crate) fn created() -> Reply {
    Reply::empty(201)
}
