//! The build's answer stream: JSON messages, one per write, as dockerd's
//! builder writes them (`{"stream"}`, stderr in red, `{"aux"}` per stage,
//! pull progress as the pull job writes it, an `errorDetail` last on failure).
//! With `q=1` only the image ID is written.

use berth_engine::{JobProgress, ProgressReporter, StreamWriter};
use serde_json::json;

use crate::error::{BuildError, Result};

pub struct Out {
    w: StreamWriter,
    quiet: bool,
    job: ProgressReporter,
}

fn gone(_: berth_api::ApiError) -> BuildError {
    BuildError::Cancelled
}

impl Out {
    pub fn new(w: StreamWriter, quiet: bool, job: ProgressReporter) -> Out {
        Out { w, quiet, job }
    }

    /// `Step i/N : …`, to the client (unless quiet) and to the job table.
    pub async fn step(&self, step: usize, total: usize, original: &str) -> Result<()> {
        self.job.set(JobProgress {
            message: format!("Step {step}/{total} : {original}"),
            current: Some(step as u64),
            total: Some(total as u64),
        });
        self.text(format!("Step {step}/{total} : {original}\n"))
            .await
    }

    async fn send(&self, v: serde_json::Value) -> Result<()> {
        let mut b = serde_json::to_vec(&v).map_err(|e| BuildError::System(e.to_string()))?;
        b.extend_from_slice(b"\r\n");
        self.w.send(b).await.map_err(gone)
    }

    pub async fn text(&self, s: impl Into<String>) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.send(json!({ "stream": s.into() })).await
    }

    pub async fn stderr(&self, s: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.send(json!({ "stream": format!("\u{1b}[91m{s}\u{1b}[0m") }))
            .await
    }

    pub async fn aux(&self, id: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.send(json!({ "aux": { "ID": id } })).await
    }

    /// A message another job wrote (pull progress), passed on as it is.
    pub async fn raw(&self, line: &[u8]) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        let mut b = line.to_vec();
        b.extend_from_slice(b"\r\n");
        self.w.send(b).await.map_err(gone)
    }

    /// `q=1`'s one line.
    pub async fn id_only(&self, id: &str) -> Result<()> {
        if self.quiet {
            self.send(json!({ "stream": format!("{id}\n") })).await?;
        }
        Ok(())
    }

    pub async fn error(&self, e: &BuildError) -> Result<()> {
        let m = e.to_string();
        self.send(json!({ "errorDetail": { "code": e.code(), "message": m }, "error": m }))
            .await
    }
}
