//! Creates a volume with `berth-volume` alone, mounts it, writes into it and
//! removes it again:
//!
//! ```text
//! cargo run -p berth-volume --example tmpfs_volume -- /tmp/volumes
//! ```
//!
//! The volume has the local driver's options `type=tmpfs device=tmpfs
//! o=size=1m` (`docker volume create --opt …`), so mounting it mounts a tmpfs
//! (this needs root). Prints where it was mounted and what it read back.

use std::collections::BTreeMap;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let root = std::env::args().nth(1).ok_or("usage: tmpfs_volume ROOT")?;
    let vols = berth_volume::Volumes::open(std::path::Path::new(&root))?;
    let options: BTreeMap<String, String> =
        [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let v = vols.create(Some("example"), "local", options, BTreeMap::new(), false)?;
    let dir = vols.mount(&v.name)?;
    std::fs::write(dir.join("hello"), b"from a tmpfs volume\n")?;
    let back = std::fs::read_to_string(dir.join("hello"))?;
    let fs = std::fs::read_to_string("/proc/self/mounts")?
        .lines()
        .find(|l| l.split_whitespace().nth(1) == dir.to_str())
        .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
        .unwrap_or_default();
    println!("{} {fs}", dir.display());
    print!("{back}");
    vols.unmount(&v.name);
    vols.remove(&v.name)?;
    Ok(())
}
