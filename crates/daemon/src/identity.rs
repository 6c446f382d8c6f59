//! The daemon's ID: a UUID created on first start and kept in `<data-root>/engine-id`,
//! as dockerd does, so `/info` reports the same ID across restarts.

use std::path::Path;

pub fn load_or_create(data_root: &Path) -> Result<String, String> {
    let path = data_root.join("engine-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if is_uuid(s.trim()) => return Ok(s.trim().to_string()),
        Ok(s) => tracing::warn!(content = %s.trim(), "engine-id is not a UUID; making a new one"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    }
    let id = new_uuid()?;
    berth_atomicfile::write_mode(&path, id.as_bytes(), 0o600)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(id)
}

fn new_uuid() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| format!("random: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_persists() {
        let d = tempfile::tempdir().expect("tmp");
        let a = load_or_create(d.path()).expect("create");
        assert!(is_uuid(&a), "{a}");
        assert_eq!(load_or_create(d.path()).expect("load"), a);
        std::fs::write(d.path().join("engine-id"), "garbage").expect("corrupt");
        let b = load_or_create(d.path()).expect("replace");
        assert!(is_uuid(&b) && b != a);
    }
}
