//! Pulls an image from a registry and unpacks it into a directory, with
//! `berth-registry` and `berth-graph` alone (no daemon):
//!
//! ```text
//! cargo run -p berth-registry --example pull -- 127.0.0.1:5000/busybox:latest /tmp/img
//! ```
//!
//! Prints the image ID and each layer's directory, lowest first (what an overlay
//! mount of the image would stack).

use berth_graph::{chain_ids, Compression, Digest, Graph, ImageConfig, LayerMeta};
use berth_registry::{AuthConfig, Client, Config, Platform, RemoteRef};
use futures_util::StreamExt;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(image), Some(dir)) = (args.next(), args.next()) else {
        return Err("usage: pull REGISTRY/NAME:TAG DIR".into());
    };
    let reference: RemoteRef = image.parse()?;
    let graph = Graph::open(std::path::Path::new(&dir))?;
    let client = Client::new(Config::default());
    let session = client.session(&reference, &AuthConfig::default());
    let resolved = session.resolve(&reference, &Platform::host()).await?;
    let config = ImageConfig::parse(&resolved.config_raw)?;
    let chains = chain_ids(&config.rootfs.diff_ids);
    for (i, desc) in resolved.layers.iter().enumerate() {
        let chain = chains.get(i).ok_or("more layers than diff IDs")?.clone();
        if graph.has_layer(&chain) {
            continue;
        }
        // The blob is checked against its digest as it arrives; a small example
        // keeps it in memory rather than piping it into the unpacker.
        let mut blob = Vec::new();
        let mut stream = session.blob(&reference, desc).await?;
        while let Some(chunk) = stream.next().await {
            blob.extend_from_slice(&chunk?);
        }
        let staging = graph.staging()?;
        let compression = Compression::from_media_type(&desc.media_type)?;
        let (diff_id, extracted, tar_size) =
            berth_graph::layer::unpack(blob.as_slice(), compression, &staging)?;
        if config.rootfs.diff_ids.get(i) != Some(&diff_id) {
            return Err(format!("layer {i}: diff ID {diff_id} is not the config's").into());
        }
        let meta = LayerMeta {
            chain_id: chain,
            diff_id,
            parent: i.checked_sub(1).and_then(|p| chains.get(p)).cloned(),
            size: extracted.size,
            tar_size,
        };
        graph.commit_layer(staging, meta)?;
    }
    let id: Digest = graph.put_image(&resolved.config_raw)?;
    println!("{id}");
    for dir in graph.lowerdirs(&id)?.iter().rev() {
        println!("{}", dir.display());
    }
    Ok(())
}
