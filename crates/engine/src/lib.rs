//! The Engine: every API request becomes a named [`Job`] run by a registered handler.
//!
//! The engine owns the job table (name → handler), runs each job on its own task inside
//! a tracing span, tracks its status, cancels it when its client goes away, and on
//! shutdown cancels what still runs and calls the shutdown hooks. It also carries the
//! events bus. It knows nothing about HTTP: a [`Reply`] says what to send (JSON, a byte
//! or JSON-message stream, or a hijacked raw connection) and the server encodes it.

mod args;
pub mod blocking;
mod events;
mod job;
pub mod names;
mod reply;
mod table;

pub use args::{Args, Body, BodyStream};
pub use events::{EventBus, EventSubscription};
pub use job::{Job, JobStatus};
pub use reply::{BoxedIo, Reply, ReplyBody, StreamKind, StreamWriter};
pub use table::{JobInfo, JobProgress, ProgressReporter};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_api::{ApiError, Result};
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Handler = Arc<dyn Fn(Job) -> BoxFuture<Result<Reply>> + Send + Sync>;
type Hook = Box<dyn FnOnce() -> BoxFuture<()> + Send>;
/// Told of every job that ends: its name, how long it ran, and whether it failed.
pub type JobObserver = Arc<dyn Fn(&str, Duration, bool) + Send + Sync>;

/// The engine. Cheap to clone: all clones share one job table.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each handler, and whether it is quick (see [`Engine::register_quick`]).
    handlers: RwLock<HashMap<String, (Handler, bool)>>,
    jobs: table::JobTable,
    next_id: AtomicU64,
    events: EventBus,
    shutdown: CancellationToken,
    shutting_down: AtomicBool,
    tracker: TaskTracker,
    hooks: Mutex<Vec<(String, Hook)>>,
    /// Where jobs run: the runtime the engine was made in, whichever runtime
    /// dispatches them (the API server serves from a thread of its own).
    runtime: Option<tokio::runtime::Handle>,
    observer: RwLock<Option<JobObserver>>,
}

/// A job that has been dispatched: its reply arrives on `reply`; dropping `guard`
/// cancels the job (the server keeps it alive as long as the client is connected).
pub struct Dispatched {
    pub id: u64,
    /// Resolves with the job's reply (for a quick job, by running it).
    pub reply: BoxFuture<std::result::Result<Reply, oneshot::error::RecvError>>,
    pub guard: DropGuard,
    /// The job's cancellation (what the guard cancels), for a server that learns
    /// its client went away before the response ends.
    pub cancel: CancellationToken,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            inner: Arc::new(Inner {
                handlers: RwLock::new(HashMap::new()),
                jobs: table::JobTable::default(),
                next_id: AtomicU64::new(1),
                events: EventBus::new(),
                shutdown: CancellationToken::new(),
                shutting_down: AtomicBool::new(false),
                tracker: TaskTracker::new(),
                hooks: Mutex::new(Vec::new()),
                runtime: tokio::runtime::Handle::try_current().ok(),
                observer: RwLock::new(None),
            }),
        }
    }

    /// Registers `handler` under `name`. A later registration of the same name replaces it.
    pub fn register<F, Fut>(&self, name: &str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply>> + Send + 'static,
    {
        self.insert(name, Arc::new(move |job| Box::pin(handler(job))), false);
    }

    /// Registers a job that answers at once and never streams (ping, version,
    /// lists, inspects): it runs inside its caller's task, sparing the hand-off
    /// to a task of its own and the wake-up of another worker thread that each
    /// request would otherwise cost. Status, span and cancellation are the same.
    pub fn register_quick<F, Fut>(&self, name: &str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply>> + Send + 'static,
    {
        self.insert(name, Arc::new(move |job| Box::pin(handler(job))), true);
    }

    fn insert(&self, name: &str, h: Handler, quick: bool) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (h, quick));
    }

    pub fn has_job(&self, name: &str) -> bool {
        self.inner
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// Sets who is told of every job's end (the daemon's metrics).
    pub fn observe_jobs(&self, observer: JobObserver) {
        *self
            .inner
            .observer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Cancelled when the daemon begins to shut down; long-running jobs watch it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// The jobs that are running now (quick jobs are never listed).
    pub fn jobs(&self) -> Vec<JobInfo> {
        self.inner.jobs.list()
    }

    /// The running job `id`.
    pub fn job(&self, id: u64) -> Option<JobInfo> {
        self.inner.jobs.get(id)
    }

    /// Cancels the running job `id`, as if its client had gone, and waits up to
    /// `wait` for it to end. `None` if no such job runs; else the job as it was
    /// when cancelled and whether it has ended.
    pub async fn cancel_job(&self, id: u64, wait: Duration) -> Option<(JobInfo, bool)> {
        self.inner.jobs.cancel(id, wait).await
    }

    /// Starts the job `name` with `args` on its own task.
    pub fn dispatch(&self, name: &str, args: Args) -> Result<Dispatched> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the daemon is shutting down"));
        }
        let (handler, quick) = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_implemented(format!("{name}: not implemented")))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // A quick job answers within its request: it is not listed among running
        // jobs, its span is a debug one and its cancellation its caller's (dropping
        // the request drops it). What a request costs besides is mostly this
        // bookkeeping, and `GET /_ping` is measured by the thousand.
        let cancel = if quick {
            CancellationToken::new()
        } else {
            self.inner.shutdown.child_token()
        };
        let (tx, rx) = oneshot::channel();
        let span = if quick {
            tracing::debug_span!("job", job = name, id)
        } else {
            tracing::info_span!("job", job = name, id)
        };
        let progress = if quick {
            ProgressReporter::default()
        } else {
            self.inner
                .jobs
                .insert(id, name, args.public_params(), cancel.clone())
        };
        let job = Job::new(id, name, args, cancel.clone(), tx, self.clone(), progress);
        let out = job.output_handle();
        let engine = self.clone();
        let observer = self
            .inner
            .observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let job_name = name.to_string();
        let run = async move {
            tracing::debug!("start");
            let started = std::time::Instant::now();
            let result = handler(job).await;
            let status = out.finish(result).await;
            match &status {
                JobStatus::Failed(e) => tracing::info!(error = %e, "job failed"),
                s => tracing::debug!(status = ?s, "job ended"),
            }
            if let Some(o) = observer {
                o(
                    &job_name,
                    started.elapsed(),
                    matches!(status, JobStatus::Failed(_)),
                );
            }
            if !quick {
                engine.inner.jobs.remove(id);
            }
        }
        .instrument(span);
        let reply: BoxFuture<_> = if quick {
            Box::pin(async move {
                run.await;
                rx.await
            })
        } else {
            match &self.inner.runtime {
                Some(rt) => self.inner.tracker.spawn_on(run, rt),
                None => self.inner.tracker.spawn(run),
            };
            Box::pin(rx)
        };
        Ok(Dispatched {
            id,
            reply,
            cancel: cancel.clone(),
            guard: cancel.drop_guard(),
        })
    }

    /// Runs a job to completion in-process and returns its reply (for jobs that
    /// call other jobs, and for tests).
    pub async fn call(&self, name: &str, args: Args) -> Result<Reply> {
        let d = self.dispatch(name, args)?;
        let reply = d
            .reply
            .await
            .map_err(|_| ApiError::system(format!("{name}: no reply")))?;
        // The caller holds the reply (maybe a stream); the job ends with it, not with us.
        d.guard.disarm();
        Ok(reply)
    }

    /// Registers a hook to run at shutdown; hooks run in reverse order of registration.
    pub fn on_shutdown<F, Fut>(&self, name: &str, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: Hook = Box::new(move || Box::pin(hook()));
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), h));
    }

    /// Stops taking jobs, cancels the running ones, waits up to `grace` for them to
    /// end, then runs the shutdown hooks.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            let left: Vec<String> = self.jobs().into_iter().map(|j| j.name).collect();
            tracing::warn!(?left, "jobs still running after shutdown grace period");
        }
        let hooks: Vec<(String, Hook)> =
            std::mem::take(&mut *self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, hook) in hooks.into_iter().rev() {
            tracing::debug!(hook = %name, "shutdown hook");
            hook().await;
        }
    }
}

#[cfg(test)]
mod tests;
