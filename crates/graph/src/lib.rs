//! The image graph: content, layer, image and reference stores under
//! `<data-root>/graph`, and overlay mounts of images' layers.
//!
//! Layout (every metadata file written atomically):
//! - `layers/<chain-id hex>/diff/`: one layer, unpacked once, shared by every image
//!   that has it; `layers/<chain-id hex>/layer.json` is written last, so a directory
//!   without it is the leftover of a crash and is removed at start-up.
//! - `images/<id hex>.json`: image configs (the ID is the config's digest);
//!   `images/<id hex>.meta.json`: when it was last tagged.
//! - `content/<digest hex>`: manifests, by digest.
//! - `repositories.json`: references (`repo:tag`, `repo@digest`) → image ID.
//! - `tmp/`: staging for layers being unpacked; emptied at start-up.

pub mod digest;
pub mod extract;
pub mod image;
pub mod layer;
pub mod mount;
pub mod reference;
mod store;
pub mod topdir;

pub use digest::{chain_ids, Digest};
pub use image::ImageConfig;
pub use layer::Compression;
pub use layer::Staging;
pub use reference::Reference;
pub use store::{BlobSum, Graph, ImageRecord, LayerMeta};

/// Errors of the graph, each with the thing it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidReference(String),
    #[error("invalid digest: {0}")]
    InvalidDigest(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("invalid layer: {0}")]
    Layer(String),
    #[error("invalid image config: {0}")]
    Config(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
pub mod tarsplit;
