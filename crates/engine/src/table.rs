//! The table of running jobs: what `GET /berth/jobs` lists, with each job's
//! arguments, start time and progress, and what `DELETE /berth/jobs/{id}` cancels.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::JobStatus;

/// How far a job has come, as its handler last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// What it is doing (`Downloading`, `Step 3/7 : RUN make`, …).
    pub message: String,
    /// Units done and expected (bytes for pulls and pushes), where known.
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// What the job table shows about a running job.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub id: u64,
    pub name: String,
    pub status: JobStatus,
    /// Path and query parameters, secrets replaced (see [`crate::Args::public_params`]).
    pub args: BTreeMap<String, Vec<String>>,
    pub started: SystemTime,
    pub progress: Option<JobProgress>,
}

/// Where a job reports its progress. Cheap to clone; a quick job's reporter
/// (quick jobs are not listed) drops what it is told.
#[derive(Clone, Default)]
pub struct ProgressReporter {
    slot: Option<Arc<Mutex<Option<JobProgress>>>>,
}

impl ProgressReporter {
    pub fn set(&self, progress: JobProgress) {
        if let Some(s) = &self.slot {
            *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
        }
    }

    pub fn message(&self, message: &str) {
        self.set(JobProgress {
            message: message.to_string(),
            ..JobProgress::default()
        });
    }
}

struct Entry {
    info: JobInfo,
    cancel: CancellationToken,
    progress: Arc<Mutex<Option<JobProgress>>>,
    done: Arc<Notify>,
}

impl Entry {
    fn view(&self) -> JobInfo {
        let mut info = self.info.clone();
        info.progress = self
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if info.status == JobStatus::Running && self.cancel.is_cancelled() {
            info.status = JobStatus::Cancelling;
        }
        info
    }
}

#[derive(Default)]
pub(crate) struct JobTable {
    entries: Mutex<HashMap<u64, Entry>>,
}

impl JobTable {
    /// Lists a job that starts now; returns where it reports progress.
    pub(crate) fn insert(
        &self,
        id: u64,
        name: &str,
        args: BTreeMap<String, Vec<String>>,
        cancel: CancellationToken,
    ) -> ProgressReporter {
        let progress = Arc::new(Mutex::new(None));
        let entry = Entry {
            info: JobInfo {
                id,
                name: name.to_string(),
                status: JobStatus::Running,
                args,
                started: SystemTime::now(),
                progress: None,
            },
            cancel,
            progress: progress.clone(),
            done: Arc::new(Notify::new()),
        };
        self.lock().insert(id, entry);
        ProgressReporter {
            slot: Some(progress),
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        if let Some(e) = self.lock().remove(&id) {
            e.done.notify_waiters();
        }
    }

    pub(crate) fn list(&self) -> Vec<JobInfo> {
        let mut v: Vec<JobInfo> = self.lock().values().map(Entry::view).collect();
        v.sort_by_key(|j| j.id);
        v
    }

    pub(crate) fn get(&self, id: u64) -> Option<JobInfo> {
        self.lock().get(&id).map(Entry::view)
    }

    /// Cancels job `id` and waits up to `wait` for it to end. `None` if no such
    /// job runs; else what it looked like when cancelled, and whether it ended.
    pub(crate) async fn cancel(&self, id: u64, wait: Duration) -> Option<(JobInfo, bool)> {
        let (info, done) = {
            let jobs = self.lock();
            let e = jobs.get(&id)?;
            e.cancel.cancel();
            (e.view(), e.done.clone())
        };
        let notified = done.notified();
        tokio::pin!(notified);
        // Registered before looking again, so an end in between is not missed.
        notified.as_mut().enable();
        if !self.lock().contains_key(&id) {
            return Some((info, true));
        }
        let ended = tokio::time::timeout(wait, notified).await.is_ok();
        Some((info, ended))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
