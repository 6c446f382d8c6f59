//! Detach keys: the key sequence that, typed into an attached client's stdin,
//! detaches the client and leaves the container running (`ctrl-p,ctrl-q` unless
//! `detachKeys=` or the container's settings name others), as dockerd reads them.

use berth_api::{ApiError, Result};

/// dockerd's default sequence.
pub(crate) const DEFAULT: &str = "ctrl-p,ctrl-q";

/// `ctrl-p,ctrl-q`, `a,b`: each key a single character or `ctrl-` and one of
/// `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_` (moby's `term.ToBytes`).
pub(crate) fn parse(keys: &str) -> Result<Vec<u8>> {
    let bad = || ApiError::invalid(format!("Invalid detach keys ({keys}) provided"));
    let mut out = Vec::new();
    for key in keys.split(',') {
        let k = key.trim().to_ascii_lowercase();
        match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let b = c.as_bytes()[0];
                out.push(match b {
                    b'a'..=b'z' => b - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                });
            }
            Some(_) => return Err(bad()),
            None if key.len() == 1 => out.push(key.as_bytes()[0]),
            None => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Watches a client's input for the sequence, holding back what may be its start.
pub(crate) struct Watcher {
    keys: Vec<u8>,
    /// How many bytes of the sequence the input has matched so far.
    matched: usize,
}

impl Watcher {
    pub(crate) fn new(keys: Vec<u8>) -> Watcher {
        Watcher { keys, matched: 0 }
    }

    /// Feeds input; appends to `out` what goes on to the container. Returns
    /// true when the sequence is complete (what follows it is dropped).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
            } else {
                // The held-back bytes were input after all.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_moby_reads_them() {
        assert_eq!(parse(DEFAULT).expect("default"), vec![16, 17]);
        assert_eq!(parse("ctrl-a,x").expect("keys"), vec![1, b'x']);
        assert_eq!(parse("ctrl-@,ctrl-[").expect("keys"), vec![0, 27]);
        for bad in ["", "ctrl-", "ctrl-ab", "ab", "ctrl-1"] {
            assert_eq!(
                parse(bad).map_err(|e| e.message),
                Err(format!("Invalid detach keys ({bad}) provided")),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_sequence_detaches_and_near_misses_pass_through() {
        let mut w = Watcher::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!w.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        // The held-back ctrl-p was input: it goes on with what follows.
        assert!(!w.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        // Split across reads.
        out.clear();
        assert!(!w.feed(b"\x10", &mut out));
        assert!(w.feed(b"\x11rest", &mut out));
        assert!(out.is_empty());
        // A repeated first key keeps the match going.
        let mut w = Watcher::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(w.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, b"\x10");
    }
}
