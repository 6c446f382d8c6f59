//! Docker's JSON progress messages, as `docker pull`/`push`/`load` print them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_api::Result;
use berth_engine::{JobProgress, ProgressReporter, StreamWriter};
use serde_json::json;

/// Writes JSON messages, `\r\n`-terminated as dockerd's stream formatter does,
/// and tells the job table the sum of the layers' progress.
#[derive(Clone)]
pub struct Progress {
    w: StreamWriter,
    job: ProgressReporter,
    /// Each layer's (current, total) as last reported.
    layers: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
}

/// Docker's decimal size units (`units.HumanSize`).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", trim_float(v), units[i])
}

fn trim_float(v: f64) -> String {
    // Go's %.4g: four significant digits, no trailing zeros.
    let s = format!(
        "{:.*}",
        3usize.saturating_sub(v.abs().log10().floor().max(0.0) as usize),
        v
    );
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The bar string dockerd sends in `progress` (`[====>   ]  1.2MB/3.4MB`).
pub fn bar(current: u64, total: u64) -> String {
    let width = 50u64;
    if total == 0 {
        return format!("{:>8}", human(current));
    }
    let filled = (width * current.min(total) / total).min(width);
    let mut b = "=".repeat(filled as usize);
    if filled < width {
        b.push('>');
        b.push_str(&" ".repeat((width - filled - 1) as usize));
    }
    format!("[{b}] {:>8}/{}", human(current), human(total))
}

impl Progress {
    pub fn new(w: StreamWriter, job: ProgressReporter) -> Progress {
        Progress {
            w,
            job,
            layers: Arc::default(),
        }
    }

    /// Records a layer's progress and gives the job table the totals.
    fn report(&self, id: &str, status: &str, current: Option<u64>, total: Option<u64>) {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        match (current, total) {
            (Some(c), Some(t)) => {
                layers.insert(id.to_string(), (c, t));
            }
            _ => {
                // A finished layer counts whole.
                if let Some(l) = layers.get_mut(id) {
                    if matches!(status, "Pull complete" | "Pushed" | "Download complete") {
                        l.0 = l.1;
                    }
                }
            }
        }
        let (c, t) = layers
            .values()
            .fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
        let (current, total) = if layers.is_empty() {
            (None, None)
        } else {
            (Some(c), Some(t))
        };
        self.job.set(JobProgress {
            message: format!("{id}: {status}"),
            current,
            total,
        });
    }

    async fn send(&self, v: serde_json::Value) -> Result<()> {
        let mut buf = serde_json::to_vec(&v).unwrap_or_default();
        buf.extend_from_slice(b"\r\n");
        self.w.send(buf).await
    }

    /// A status line without an ID (`Digest: …`, `Status: …`).
    pub async fn status(&self, status: &str) -> Result<()> {
        self.send(json!({ "status": status })).await
    }

    /// A status line for an ID (a layer or a tag).
    pub async fn id(&self, id: &str, status: &str) -> Result<()> {
        self.report(id, status, None, None);
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }))
            .await
    }

    /// A progress line with a bar.
    pub async fn bytes(&self, id: &str, status: &str, current: u64, total: u64) -> Result<()> {
        self.report(id, status, Some(current), Some(total));
        self.send(json!({
            "status": status,
            "progressDetail": { "current": current, "total": total },
            "progress": bar(current, total),
            "id": id,
        }))
        .await
    }

    /// A plain stream line (`{"stream": "…"}`), as `docker load` prints.
    pub async fn stream(&self, text: &str) -> Result<()> {
        self.send(json!({ "stream": text })).await
    }

    /// A free-form JSON message.
    pub async fn raw(&self, v: serde_json::Value) -> Result<()> {
        self.send(v).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1000), "1kB");
        assert_eq!(human(1_234_567), "1.235MB");
        assert_eq!(human(2_139_648), "2.14MB");
        assert!(bar(50, 100).starts_with("[=========================>"));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
    }
}
