//! IDs in Docker's shape: 64 lowercase hex digits (containers, networks, execs).

use std::sync::atomic::{AtomicU64, Ordering};

/// A new random ID.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    if getrandom::getrandom(&mut b).is_err() {
        // The kernel's generator does not fail on any Linux Berth runs on; should
        // it, time, process and a counter still keep IDs distinct.
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..16].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        b[16..24].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let a = super::random_id();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, super::random_id());
    }
}
