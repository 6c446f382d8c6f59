//! Unpacks a layer tarball (plain, gzip or zstd) into a layer store with
//! `berth-graph` alone, every path resolved inside the layer:
//!
//! ```text
//! cargo run -p berth-graph --example unpack -- layer.tar.gz /tmp/store
//! ```
//!
//! Prints the layer's diff ID, its directory, and then its tar read back from the
//! store (tar-split), whose digest is the same diff ID.

use std::io::Read;

use berth_graph::{Compression, Digest, Graph, LayerMeta};
use sha2::{Digest as _, Sha256};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(tar), Some(dir)) = (args.next(), args.next()) else {
        return Err("usage: unpack LAYER.tar[.gz|.zst] STORE".into());
    };
    let blob = std::fs::read(&tar)?;
    let graph = Graph::open(std::path::Path::new(&dir))?;
    let staging = graph.staging()?;
    let compression = Compression::sniff(&blob);
    let (diff_id, extracted, tar_size) =
        berth_graph::layer::unpack(blob.as_slice(), compression, &staging)?;
    // A base layer: its chain ID is its diff ID.
    let meta = LayerMeta {
        chain_id: diff_id.clone(),
        diff_id: diff_id.clone(),
        parent: None,
        size: extracted.size,
        tar_size,
    };
    if !graph.has_layer(&diff_id) {
        graph.commit_layer(staging, meta)?;
    }
    println!("{diff_id}");
    println!("{}", graph.layer_diff(&diff_id).display());
    let mut back = Vec::new();
    graph.layer_tar(&diff_id)?.read_to_end(&mut back)?;
    let again = Digest::parse(&format!("sha256:{}", hex::encode(Sha256::digest(&back))))?;
    println!("{again}");
    if again != diff_id {
        return Err("the stored layer does not read back as the same tar".into());
    }
    Ok(())
}
