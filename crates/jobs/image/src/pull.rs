//! `POST /images/create`: pull from a registry (or import, see `archive`), plus
//! `GET /distribution/{name}/json` and `POST /auth`.

use berth_engine::blocking::ChanReader;
use std::sync::Arc;
use std::time::Duration;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply, StreamKind};
use berth_graph::{chain_ids, BlobSum, Compression, Digest, ImageConfig, LayerMeta, Reference};
use berth_registry::{AuthConfig, Descriptor, Platform, RemoteRef, Session};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::progress::Progress;
use crate::{api_err, blocking, event, registry_err, Images};

pub(crate) fn remote(r: &Reference) -> RemoteRef {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => RemoteRef::with_digest(r.domain.clone(), r.path.clone(), d.to_string()),
        (Some(t), None) => RemoteRef::with_tag(r.domain.clone(), r.path.clone(), t.clone()),
        (None, None) => RemoteRef::with_tag(r.domain.clone(), r.path.clone(), "latest".into()),
    }
}

pub(crate) fn auth_of(job: &Job) -> Result<AuthConfig> {
    AuthConfig::from_header(job.args.header("X-Registry-Auth")).map_err(registry_err)
}

/// Blocks on a channel of chunks: the extractor's view of a download.
/// Unpacks the stream of chunks `rx` into a new layer on a blocking thread.
pub(crate) fn spawn_unpack(
    images: &Arc<Images>,
    rx: mpsc::Receiver<std::result::Result<Bytes, String>>,
    compression: Compression,
) -> tokio::task::JoinHandle<Result<(berth_graph::Staging, Digest, u64, u64)>> {
    let graph = images.graph.clone();
    tokio::task::spawn_blocking(move || {
        let staging = graph.staging().map_err(api_err)?;
        let (diff_id, x, tar_size) =
            berth_graph::layer::unpack(ChanReader::new(rx), compression, &staging)
                .map_err(api_err)?;
        Ok((staging, diff_id, x.size, tar_size))
    })
}

pub(crate) async fn pull(mut job: Job, images: Arc<Images>) -> Result<Reply> {
    let from = job.args.required("fromImage")?.to_string();
    let tag = job.args.str("tag").unwrap_or("").to_string();
    let name = match tag.as_str() {
        "" => from.clone(),
        t if t.starts_with("sha256:") => format!("{from}@{t}"),
        t => format!("{from}:{t}"),
    };
    let r = crate::parse_ref(&name)?;
    let platform = match job.args.str("platform").filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p).map_err(registry_err)?,
        None => Platform::host(),
    };
    let auth = auth_of(&job)?;
    let (endpoint, session, resolved) = resolve(&images, &r, &auth, &platform).await?;
    let config = ImageConfig::parse(&resolved.config_raw).map_err(api_err)?;
    if config.rootfs.diff_ids.len() != resolved.layers.len() {
        return Err(ApiError::invalid(format!(
            "image config has {} layers but the manifest {}",
            config.rootfs.diff_ids.len(),
            resolved.layers.len()
        )));
    }
    let out = Progress::new(
        job.stream("application/json", StreamKind::JsonMessages)?,
        job.progress(),
    );
    let label = r
        .tag
        .clone()
        .unwrap_or_else(|| r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default());
    out.id(&label, &format!("Pulling from {}", r.path)).await?;

    let chains = chain_ids(&config.rootfs.diff_ids);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, desc) in resolved.layers.iter().enumerate() {
        let short = desc
            .digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        if images.graph.has_layer(&chains[i]) {
            out.id(&short, "Already exists").await?;
            continue;
        }
        out.id(&short, "Pulling fs layer").await?;
        let ctx = LayerJob {
            images: images.clone(),
            remote: endpoint.clone(),
            session: session.clone(),
            desc: desc.clone(),
            diff_id: config.rootfs.diff_ids[i].clone(),
            chain_id: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
            out: out.clone(),
            short,
        };
        let cancel = job.cancel_token();
        tasks.spawn(async move {
            tokio::select! {
                r = ctx.run() => r,
                _ = cancel.cancelled() => Err(ApiError::cancelled()),
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        let res = res.map_err(|e| ApiError::system(format!("layer task: {e}")))?;
        // Dropping the set on an error aborts the other downloads.
        res?;
    }

    let graph = images.graph.clone();
    let (config_raw, manifest_raw) = (resolved.config_raw.clone(), resolved.manifest_raw.clone());
    let list_digest = Digest::parse(&resolved.digest).map_err(api_err)?;
    let r2 = r.clone();
    let (id, previous) = blocking(move || {
        let id = graph.put_image(&config_raw).map_err(api_err)?;
        graph.put_content(&manifest_raw).map_err(api_err)?;
        let previous = match r2.tag {
            Some(_) => graph.tag(&r2, &id).map_err(api_err)?,
            None => graph.lookup_ref(&r2),
        };
        graph
            .tag(&r2.with_digest(&list_digest), &id)
            .map_err(api_err)?;
        Ok((id, previous))
    })
    .await?;
    out.status(&format!("Digest: {}", resolved.digest)).await?;
    let status = if previous.as_ref() == Some(&id) {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    out.status(&format!("Status: {status} {}", r.familiar()))
        .await?;
    event(&job, "pull", &r.familiar(), &r.familiar());
    tracing::info!(image = %id, reference = %r, "pulled");
    Ok(Reply::empty(200))
}

/// Finds the manifest of `r`: on each mirror first for a Hub name (one that
/// fails is passed over, as dockerd does), then on its own registry.
async fn resolve(
    images: &Images,
    r: &Reference,
    auth: &AuthConfig,
    platform: &Platform,
) -> Result<(RemoteRef, Arc<Session>, berth_registry::Resolved)> {
    let mut endpoints = images.registry.endpoints(&remote(r));
    let last = endpoints.pop().unwrap_or_else(|| remote(r));
    for mirror in endpoints {
        let session = match images.registry.session_for(&mirror, auth, false).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(mirror = mirror.registry(), error = %e, "mirror failed; trying the next endpoint");
                continue;
            }
        };
        match session.resolve(&mirror, platform).await {
            Ok(resolved) => {
                tracing::info!(mirror = mirror.registry(), reference = %r, "pulling through mirror");
                return Ok((mirror, session, resolved));
            }
            Err(e) => {
                tracing::warn!(mirror = mirror.registry(), error = %e, "mirror failed; trying the next endpoint")
            }
        }
    }
    let session = Arc::new(
        images
            .registry
            .session_for(&last, auth, false)
            .await
            .map_err(registry_err)?,
    );
    let resolved = session
        .resolve(&last, platform)
        .await
        .map_err(|e| match e {
            berth_registry::Error::NotFound(m) if !m.contains("no matching manifest") => {
                ApiError::not_found(format!(
                    "manifest for {} not found: manifest unknown: manifest unknown",
                    r.familiar()
                ))
            }
            other => registry_err(other),
        })?;
    Ok((last, session, resolved))
}

/// dockerd's cadence of download progress (every 1% or 512 KiB, whichever
/// is less, at most ten a second), and at least every 10 s while bytes come:
/// the kubelet, through cri-dockerd, cancels a pull that reports nothing for
/// a minute, and at dial-up rates 512 KiB takes longer than that.
fn report_now(got: u64, reported: u64, total: u64, since: Duration) -> bool {
    let every = match total / 100 {
        0 => 512 * 1024,
        pct => pct.min(512 * 1024),
    };
    got == total
        || (got - reported >= every && since >= Duration::from_millis(100))
        || (got > reported && since >= Duration::from_secs(10))
}

struct LayerJob {
    images: Arc<Images>,
    remote: RemoteRef,
    session: Arc<Session>,
    desc: Descriptor,
    diff_id: Digest,
    chain_id: Digest,
    parent: Option<Digest>,
    out: Progress,
    short: String,
}

impl LayerJob {
    async fn run(self) -> Result<()> {
        let downloads = self.images.downloads();
        let _permit = match downloads.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.out.id(&self.short, "Waiting").await?;
                downloads
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::cancelled())?
            }
        };
        let compression = Compression::from_media_type(&self.desc.media_type).map_err(api_err)?;
        let mut attempt = 1;
        let attempts = self.images.download_attempts();
        loop {
            match self.attempt(compression).await {
                Ok(()) => return Ok(()),
                Err(Failure::Transient(msg)) if attempt < attempts => {
                    let wait = 1u64 << (attempt - 1);
                    tracing::warn!(layer = %self.desc.digest, error = %msg, attempt, "download failed; retrying");
                    self.out
                        .id(
                            &self.short,
                            &format!(
                                "Retrying in {wait} second{}",
                                if wait == 1 { "" } else { "s" }
                            ),
                        )
                        .await?;
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    attempt += 1;
                }
                Err(Failure::Transient(msg)) | Err(Failure::Fatal(msg)) => {
                    return Err(ApiError::system(msg))
                }
                Err(Failure::Api(e)) => return Err(e),
            }
        }
    }

    async fn attempt(&self, compression: Compression) -> std::result::Result<(), Failure> {
        let total = self.desc.size.max(0) as u64;
        let mut blob = self
            .session
            .blob(&self.remote, &self.desc)
            .await
            .map_err(Failure::from_registry)?;
        let (tx, rx) = mpsc::channel(8);
        let unpack = spawn_unpack(&self.images, rx, compression);
        let mut got = 0u64;
        let mut reported = 0u64;
        let mut last = std::time::Instant::now();
        let mut failure = None;
        while let Some(chunk) = blob.next().await {
            match chunk {
                Ok(b) => {
                    got += b.len() as u64;
                    if tx.send(Ok(b)).await.is_err() {
                        break; // the extractor failed; its error says why
                    }
                    if report_now(got, reported, total, last.elapsed()) {
                        reported = got;
                        last = std::time::Instant::now();
                        self.out
                            .bytes(&self.short, "Downloading", got, total)
                            .await
                            .map_err(Failure::Api)?;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    failure = Some(Failure::from_registry(e));
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpack
            .await
            .map_err(|e| Failure::Fatal(format!("extracting: {e}")))?;
        if let Some(f) = failure {
            return Err(f);
        }
        let (staging, diff_id, size, tar_size) = unpacked.map_err(Failure::Api)?;
        self.out
            .id(&self.short, "Verifying Checksum")
            .await
            .map_err(Failure::Api)?;
        self.out
            .id(&self.short, "Download complete")
            .await
            .map_err(Failure::Api)?;
        if diff_id != self.diff_id {
            return Err(Failure::Fatal(format!(
                "layer {} has diff ID {diff_id}, but the image config says {}",
                self.desc.digest, self.diff_id
            )));
        }
        self.out
            .bytes(&self.short, "Extracting", total, total)
            .await
            .map_err(Failure::Api)?;
        let graph = self.images.graph.clone();
        let meta = LayerMeta {
            chain_id: self.chain_id.clone(),
            diff_id,
            parent: self.parent.clone(),
            size,
            tar_size,
        };
        let sum = BlobSum {
            digest: Digest::parse(&self.desc.digest).map_err(|e| Failure::Api(api_err(e)))?,
            size: total,
            media_type: self.desc.media_type.clone(),
            repository: format!("{}/{}", self.remote.registry(), self.remote.repository()),
        };
        let chain = self.chain_id.clone();
        blocking(move || {
            graph.commit_layer(staging, meta).map_err(api_err)?;
            graph.add_blobsum(&chain, sum).map_err(api_err)
        })
        .await
        .map_err(Failure::Api)?;
        self.out
            .id(&self.short, "Pull complete")
            .await
            .map_err(Failure::Api)?;
        Ok(())
    }
}

enum Failure {
    Transient(String),
    Fatal(String),
    Api(ApiError),
}

impl Failure {
    fn from_registry(e: berth_registry::Error) -> Failure {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Api(registry_err(e))
        }
    }
}

/// `GET /distribution/{name}/json`: the descriptor and platforms of a remote image.
pub(crate) async fn distribution(job: Job, images: Arc<Images>) -> Result<Reply> {
    let r = crate::parse_ref(job.args.required("name")?)?;
    let auth = auth_of(&job)?;
    let resolved = images
        .registry
        .session_for(&remote(&r), &auth, false)
        .await
        .map_err(registry_err)?
        .resolve(&remote(&r), &Platform::host())
        .await
        .map_err(registry_err)?;
    let config = ImageConfig::parse(&resolved.config_raw).map_err(api_err)?;
    let top_type = if resolved.digest != resolved.manifest_digest {
        "application/vnd.oci.image.index.v1+json".to_string()
    } else {
        resolved.media_type.clone()
    };
    Ok(Reply::json(&serde_json::json!({
        "Descriptor": { "mediaType": top_type, "digest": resolved.digest, "size": resolved.manifest_raw.len() },
        "Platforms": [ { "architecture": config.architecture, "os": config.os } ],
    })))
}

/// `POST /auth`: checks credentials against a registry.
pub(crate) async fn auth(job: Job, images: Arc<Images>) -> Result<Reply> {
    let a: AuthConfig = job.args.json()?;
    let server = a
        .server_address
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let server = server.split('/').next().unwrap_or("");
    let host = if server.is_empty() || server.ends_with("docker.io") {
        "docker.io"
    } else {
        server
    };
    images.registry.login(host, &a).await.map_err(|e| match e {
        berth_registry::Error::Unauthorized(m) => {
            ApiError::new(berth_api::ErrorKind::Unauthorized, m)
        }
        other => registry_err(other),
    })?;
    Ok(Reply::json(
        &serde_json::json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

#[cfg(test)]
mod cadence_tests {
    use super::*;

    #[test]
    fn progress_comes_as_dockerds_and_at_least_every_ten_seconds() {
        let ms = Duration::from_millis;
        // 1% of 10 MB is 100 kB: sooner than 512 KiB.
        assert!(report_now(100_001, 0, 10_000_000, ms(150)));
        assert!(!report_now(90_000, 0, 10_000_000, ms(150)));
        // Never more than ten a second, but the last one always.
        assert!(!report_now(200_000, 0, 10_000_000, ms(50)));
        assert!(report_now(10_000_000, 9_999_000, 10_000_000, ms(1)));
        // Large layers: 512 KiB, or ten seconds of a trickle.
        assert!(!report_now(400_000, 0, 1 << 30, ms(9_000)));
        assert!(report_now(400_000, 0, 1 << 30, ms(10_000)));
        assert!(!report_now(400_000, 400_000, 1 << 30, ms(20_000)));
    }
}
