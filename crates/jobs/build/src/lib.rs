//! The build job family: `build` (`POST /build`, the classic builder as
//! dockerd 20.10–28 runs it without BuildKit) and `build.prune`.
//!
//! A build reads its context (the request body, or a `remote`) into a private
//! directory, parses the Dockerfile ([`dockerfile`], on the `parse-dockerfile`
//! crate; variable expansion in [`lex`], written here because no crate has
//! BuildKit's rules), and runs the stages ([`stage`]). Containers for RUN and
//! metadata steps, their commits and pulls are other families' jobs, asked for
//! by name through the engine ([`calls`]); COPY, ADD and the cache work on the
//! graph directly ([`images`], [`copy`]).

mod addcopy;
mod calls;
pub mod context;
mod copy;
pub mod dockerfile;
mod error;
mod gofmt;
mod ignore;
mod images;
mod instructions;
pub mod lex;
mod options;
mod out;
mod platform;
mod run;
mod scope;
mod stage;
mod tartail;

use berth_engine::names;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::{ApiError, Result};
use berth_engine::blocking::{body_channel, ChanReader};
use berth_engine::{Engine, Job, Reply, StreamKind};
use berth_graph::{Graph, Reference};
use serde_json::json;

pub use error::BuildError;
use options::Options;
use out::Out;

/// Shared state of the build jobs.
pub struct Builder {
    pub graph: Arc<Graph>,
    /// `<data-root>/builder`: contexts and mounts of running builds under `tmp/`.
    pub root: PathBuf,
}

impl Builder {
    /// Opens the builder's directory, undoing what a killed daemon's builds left
    /// (their mounts and contexts).
    pub fn open(graph: Arc<Graph>, data_root: &Path) -> std::io::Result<Arc<Builder>> {
        let root = data_root.join("builder");
        let tmp = root.join("tmp");
        unmount_under(&tmp);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Arc::new(Builder { graph, root }))
    }
}

/// Unmounts every mount below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = berth_graph::mount::unmount(Path::new(&p));
    }
}

pub fn register(engine: &Engine, b: Arc<Builder>) {
    let b2 = b.clone();
    engine.register(names::build::BUILD, move |job: Job| build(job, b2.clone()));
    engine.register(names::build::PRUNE, move |job: Job| prune(job));
    let _ = b;
}

/// Removes a build's directory (its context and any mount left by a panic).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        unmount_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn receive_context(job: &mut Job, opts: &Options, ctx: &Path) -> Result<String> {
    std::fs::create_dir_all(ctx).map_err(|e| ApiError::system(e.to_string()))?;
    let mut dockerfile = opts.dockerfile.clone();
    if opts.remote.is_empty() {
        let (rx, feeder) = body_channel(job.args.take_body());
        let c = ctx.to_path_buf();
        let r = tokio::task::spawn_blocking(move || context::unpack(ChanReader::new(rx), &c))
            .await
            .map_err(|e| ApiError::system(e.to_string()))?;
        feeder.abort();
        r?;
    } else if context::is_git(&opts.remote) {
        let (remote, work) = (opts.remote.clone(), ctx.with_file_name("git"));
        let c = ctx.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::result::Result<(), BuildError> {
            std::fs::create_dir_all(&work)?;
            context::clone_git(&remote, &work)?;
            std::fs::remove_dir(&c)?;
            std::fs::rename(work.join("context"), &c)?;
            let _ = std::fs::remove_dir_all(&work);
            Ok(())
        })
        .await
        .map_err(|e| ApiError::system(e.to_string()))??;
    } else if opts.remote.starts_with("http://") || opts.remote.starts_with("https://") {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resp = reqwest::get(&opts.remote).await.map_err(|e| {
            ApiError::invalid(format!(
                "error downloading remote context {}: {e}",
                opts.remote
            ))
        })?;
        if !resp.status().is_success() {
            return Err(ApiError::invalid(format!(
                "error downloading remote context {}: {}",
                opts.remote,
                resp.status()
            )));
        }
        let text_plain = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::invalid(format!("error downloading remote context: {e}")))?;
        if text_plain || !(context::is_compressed(&body) || context::is_tar(&body)) {
            // A Dockerfile alone; `dockerfile` does not apply.
            std::fs::write(ctx.join("Dockerfile"), &body)
                .map_err(|e| ApiError::system(e.to_string()))?;
            dockerfile = "Dockerfile".into();
        } else {
            let c = ctx.to_path_buf();
            tokio::task::spawn_blocking(move || context::unpack(std::io::Cursor::new(body), &c))
                .await
                .map_err(|e| ApiError::system(e.to_string()))??;
        }
    } else {
        return Err(ApiError::invalid(format!(
            "unable to prepare context: unable to parse remote {}",
            opts.remote
        )));
    }
    Ok(dockerfile)
}

async fn build(mut job: Job, b: Arc<Builder>) -> Result<Reply> {
    let opts = Options::parse(&job.args)?;
    let dir = images_dir(&b)?;
    let _cleanup = WorkDir(dir.clone());
    let ctx = dir.join("context");
    let t0 = std::time::Instant::now();
    let dockerfile = receive_context(&mut job, &opts, &ctx).await?;
    tracing::debug!(elapsed = ?t0.elapsed(), "context received");
    let c = ctx.clone();
    let text = tokio::task::spawn_blocking(move || context::take_dockerfile(&c, &dockerfile))
        .await
        .map_err(|e| ApiError::system(e.to_string()))??;
    let df = dockerfile::parse(&text).map_err(|e| {
        if e == "file with no instructions" {
            let name = if opts.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                &opts.dockerfile
            };
            ApiError::invalid(format!("failed to parse {name}: {e}"))
        } else {
            ApiError::invalid(e)
        }
    })?;
    let target = if opts.target.is_empty() {
        df.stages.len().saturating_sub(1)
    } else {
        let t = opts.target.to_ascii_lowercase();
        df.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.as_str()))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "failed to reach build target {} in Dockerfile",
                    opts.target
                ))
            })?
    };
    if df.stages.is_empty() {
        return Err(ApiError::invalid(
            "No image was generated. Is your Dockerfile empty?",
        ));
    }
    let total = df.meta_args.len()
        + df.stages[..=target]
            .iter()
            .map(|s| 1 + s.instrs.len())
            .sum::<usize>()
        + usize::from(!opts.labels.is_empty());
    tracing::debug!(elapsed = ?t0.elapsed(), "Dockerfile parsed");
    let out = Out::new(
        job.stream("application/json", StreamKind::JsonMessages)?,
        opts.quiet,
        job.progress(),
    );
    let tmp = Arc::new(Mutex::new(Vec::new()));
    let calls = calls::Calls {
        engine: job.engine().clone(),
    };
    let sources: Vec<_> = opts
        .cache_from
        .iter()
        .filter_map(|n| b.graph.resolve(n).ok().and_then(|id| b.graph.image(&id)))
        .collect();
    let cache_from =
        (!opts.cache_from.is_empty()).then(|| images::cache_sources(&b.graph, &sources));
    let work = dir.join("work");
    std::fs::create_dir_all(&work).map_err(|e| ApiError::system(e.to_string()))?;
    let mut st = stage::Build {
        calls: calls.clone(),
        graph: b.graph.clone(),
        opts: &opts,
        out: &out,
        ctx,
        work,
        escape: df.escape,
        meta: Vec::new(),
        done: Vec::new(),
        tmp: tmp.clone(),
        used_args: Default::default(),
        step: 0,
        total,
        cache_sources: sources,
        cache_from,
        cancel: job.cancel_token(),
    };
    // Cancellation (the client left) is seen between steps and while a RUN
    // runs: nothing the build asked of other jobs is left half-done.
    let result = finish(&mut st, &df, target).await;
    drop(st);
    if let Err(e) = &result {
        // What the build made and did not keep goes; on a failed RUN the
        // container stays unless forcerm (dockerd's rule), a cancel removes all.
        let left: Vec<String> = tmp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for cid in left {
            calls.kill(&cid).await;
            let _ = calls.remove(&cid).await;
        }
        if matches!(e, BuildError::Cancelled) {
            // The engine tells a client still there (a cancel through
            // `/berth/jobs`), and records the job as cancelled.
            return Err(berth_api::ApiError::cancelled());
        }
        let _ = out.error(e).await;
    }
    Ok(Reply::empty(200))
}

async fn finish(
    st: &mut stage::Build<'_>,
    df: &dockerfile::Dockerfile,
    target: usize,
) -> std::result::Result<(), BuildError> {
    let img = st.run(df, target).await?;
    let Some(img) = img else {
        return Err(BuildError::Invalid(
            "No image was generated. Is your Dockerfile empty?".into(),
        ));
    };
    let unused = st.unused_args();
    if !unused.is_empty() {
        st.out
            .text(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ))
            .await?;
    }
    let short: String = img.id.hex().chars().take(12).collect();
    st.out.text(format!("Successfully built {short}\n")).await?;
    for t in &st.opts.tags {
        let r = Reference::parse_tagged(t).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let (g, id, r2) = (st.graph.clone(), img.id.clone(), r.clone());
        images::blocking(move || g.tag(&r2, &id).map(|_| ()).map_err(BuildError::from)).await?;
        st.calls.engine.events().publish(
            "image",
            "tag",
            img.id.as_str(),
            [("name".to_string(), r.familiar())].into(),
        );
        st.out
            .text(format!("Successfully tagged {}\n", r.familiar()))
            .await?;
    }
    st.out.id_only(img.id.as_str()).await
}

fn images_dir(b: &Builder) -> Result<PathBuf> {
    images::scratch_dir(&b.root.join("tmp")).map_err(ApiError::from)
}

/// `POST /build/prune`: the classic builder keeps no cache besides images
/// (removed by image prune), so there is nothing to reclaim, as with dockerd
/// without BuildKit.
async fn prune(_job: Job) -> Result<Reply> {
    Ok(Reply::json(
        &json!({ "CachesDeleted": null, "SpaceReclaimed": 0 }),
    ))
}
