//! `POST /images/{name}/push`: uploads the layers the registry lacks, then the
//! manifest, and reports its digest as dockerd does.

use std::io::Read;
use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply, StreamKind};
use berth_graph::{BlobSum, Digest, Graph, Reference};
use berth_registry::{RemoteRef, Session};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::progress::Progress;
use crate::pull::{auth_of, remote};
use crate::{api_err, blocking, registry_err, Images};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A layer compressed into a temp file, with its digest and size.
struct Compressed {
    path: std::path::PathBuf,
    digest: Digest,
    size: u64,
    _dir: berth_graph::Staging,
}

fn compress(graph: &Graph, chain: &Digest) -> Result<Compressed> {
    let staging = graph.staging().map_err(api_err)?;
    let path = staging.diff().join("layer.tar.gz");
    let mut tar = graph.layer_tar(chain).map_err(api_err)?;
    let file = std::fs::File::create(&path).map_err(|e| ApiError::system(e.to_string()))?;
    struct HashWrite<W> {
        inner: W,
        h: Sha256,
        n: u64,
    }
    impl<W: std::io::Write> std::io::Write for HashWrite<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(b)?;
            self.h.update(&b[..n]);
            self.n += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let hw = HashWrite {
        inner: std::io::BufWriter::new(file),
        h: Sha256::new(),
        n: 0,
    };
    let mut gz = flate2::write::GzEncoder::new(hw, flate2::Compression::default());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tar
            .read(&mut buf)
            .map_err(|e| ApiError::system(format!("reading layer {chain}: {e}")))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut gz, &buf[..n])
            .map_err(|e| ApiError::system(e.to_string()))?;
    }
    let mut hw = gz.finish().map_err(|e| ApiError::system(e.to_string()))?;
    std::io::Write::flush(&mut hw).map_err(|e| ApiError::system(e.to_string()))?;
    let digest =
        Digest::parse(&format!("sha256:{}", hex::encode(hw.h.finalize()))).map_err(api_err)?;
    Ok(Compressed {
        path,
        digest,
        size: hw.n,
        _dir: staging,
    })
}

async fn push_layer(
    images: Arc<Images>,
    target: RemoteRef,
    session: Arc<Session>,
    chain: Digest,
    out: Progress,
) -> Result<(Digest, u64)> {
    let short = chain.short().to_string();
    let repo = format!("{}/{}", target.registry(), target.repository());
    let _permit = images
        .uploads()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::cancelled())?;
    // A compressed form this registry has seen: nothing to upload.
    for sum in images.graph.blobsums(&chain) {
        let same_registry = sum.repository.split('/').next() == Some(target.registry());
        if !same_registry {
            continue;
        }
        if session
            .blob_exists(&target, sum.digest.as_str())
            .await
            .map_err(registry_err)?
        {
            out.id(&short, "Layer already exists").await?;
            return Ok((sum.digest, sum.size));
        }
        if sum.repository != repo {
            let from_path = sum
                .repository
                .split_once('/')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default();
            let from = RemoteRef::with_tag(
                target.registry().to_string(),
                from_path.clone(),
                "latest".into(),
            );
            if session
                .mount_blob(&target, &from, sum.digest.as_str())
                .await
                .is_ok()
            {
                out.id(&short, &format!("Mounted from {from_path}")).await?;
                return Ok((sum.digest, sum.size));
            }
        }
    }
    let graph = images.graph.clone();
    let c2 = chain.clone();
    let comp = blocking(move || compress(&graph, &c2)).await?;
    if session
        .blob_exists(&target, comp.digest.as_str())
        .await
        .map_err(registry_err)?
    {
        out.id(&short, "Layer already exists").await?;
    } else {
        let file = tokio::fs::File::open(&comp.path)
            .await
            .map_err(|e| ApiError::system(e.to_string()))?;
        let total = comp.size;
        let out2 = out.clone();
        let short2 = short.clone();
        let stream = futures_util::stream::unfold((file, 0u64), move |(mut f, sent)| {
            let out = out2.clone();
            let short = short2.clone();
            async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 1024 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        let sent = sent + n as u64;
                        let _ = out.bytes(&short, "Pushing", sent, total).await;
                        Some((Ok(Bytes::from(buf)), (f, sent)))
                    }
                    Err(e) => Some((Err(oci_err(e)), (f, sent))),
                }
            }
        });
        session
            .push_blob(&target, comp.digest.as_str(), comp.size, stream)
            .await
            .map_err(registry_err)?;
        out.id(&short, "Pushed").await?;
    }
    let sum = BlobSum {
        digest: comp.digest.clone(),
        size: comp.size,
        media_type: DOCKER_LAYER.into(),
        repository: repo,
    };
    let graph = images.graph.clone();
    let c3 = chain.clone();
    blocking(move || graph.add_blobsum(&c3, sum).map_err(api_err)).await?;
    Ok((comp.digest, comp.size))
}

fn oci_err(e: std::io::Error) -> oci_client::errors::OciDistributionError {
    oci_client::errors::OciDistributionError::IoError(e)
}

pub(crate) async fn push(mut job: Job, images: Arc<Images>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let tag = job
        .args
        .str("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let full = match &tag {
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let r: Reference = crate::parse_ref(&full)?;
    let graph = images.graph.clone();
    let r2 = r.clone();
    let id = blocking(move || {
        graph.lookup_ref(&r2).ok_or_else(|| {
            ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                r2.familiar_name()
            ))
        })
    })
    .await?;
    let rec = images
        .graph
        .image(&id)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    let auth = auth_of(&job)?;
    let target = remote(&r);
    let session = Arc::new(
        images
            .registry
            .session_for(&target, &auth, true)
            .await
            .map_err(registry_err)?,
    );
    let out = Progress::new(
        job.stream("application/json", StreamKind::JsonMessages)?,
        job.progress(),
    );
    out.status(&format!("The push refers to repository [{}]", r.name()))
        .await?;
    for c in rec.chain_ids.iter().rev() {
        out.id(c.short(), "Preparing").await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in rec.chain_ids.iter().enumerate() {
        let fut = push_layer(
            images.clone(),
            target.clone(),
            session.clone(),
            c.clone(),
            out.clone(),
        );
        tasks.spawn(async move { (i, fut.await) });
    }
    let mut layers = vec![None; rec.chain_ids.len()];
    while let Some(res) = tasks.join_next().await {
        let (i, r) = res.map_err(|e| ApiError::system(format!("push task: {e}")))?;
        layers[i] = Some(r?);
    }
    // The config goes up as it is stored, so the image ID stays the same.
    let config_digest = rec.id.clone();
    if !session
        .blob_exists(&target, config_digest.as_str())
        .await
        .map_err(registry_err)?
    {
        let data = Bytes::from(rec.config_raw.clone());
        let size = data.len() as u64;
        let stream = futures_util::stream::iter(vec![Ok(data)]);
        session
            .push_blob(&target, config_digest.as_str(), size, stream)
            .await
            .map_err(registry_err)?;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": DOCKER_CONFIG, "size": rec.config_raw.len(), "digest": config_digest.as_str() },
        "layers": layers.iter().flatten().map(|(d, s)| json!({ "mediaType": DOCKER_LAYER, "size": s, "digest": d.as_str() })).collect::<Vec<_>>(),
    });
    let raw = serde_json::to_vec_pretty(&manifest).map_err(|e| ApiError::system(e.to_string()))?;
    let size = raw.len();
    let digest = session
        .push_manifest(&target, raw.clone(), DOCKER_MANIFEST)
        .await
        .map_err(registry_err)?;
    let d = Digest::parse(&digest).map_err(api_err)?;
    let graph = images.graph.clone();
    let r3 = r.clone();
    blocking(move || {
        graph.put_content(&raw).map_err(api_err)?;
        graph
            .tag(&r3.with_digest(&d), &id)
            .map_err(api_err)
            .map(drop)
    })
    .await?;
    let tag_label = r.tag.clone().unwrap_or_else(|| "latest".into());
    out.status(&format!("{tag_label}: digest: {digest} size: {size}"))
        .await?;
    out.raw(json!({ "progressDetail": {}, "aux": { "Tag": tag_label, "Digest": digest, "Size": size } })).await?;
    crate::event(&job, "push", &r.familiar(), &r.familiar());
    Ok(Reply::empty(200))
}
