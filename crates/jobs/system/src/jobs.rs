//! `/berth/jobs`: the engine's running jobs, listed, inspected and cancelled.
//! These are quick jobs, so they never list themselves.

use std::time::Duration;

use berth_api::jobs::{JobProgress, JobSummary};
use berth_api::{ApiError, Result};
use berth_engine::{names, Engine, Job, JobInfo, JobStatus, Reply};

/// How long `DELETE` waits for a cancelled job to end before answering 202.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

pub(crate) fn register(engine: &Engine) {
    engine.register_quick(names::jobs::LIST, |job: Job| async move {
        let list: Vec<JobSummary> = job.engine().jobs().iter().map(summary).collect();
        Ok(Reply::json(&list))
    });
    engine.register_quick(names::jobs::INSPECT, |job: Job| async move {
        let id = job_id(&job)?;
        let info = job.engine().job(id).ok_or_else(|| no_such(id))?;
        Ok(Reply::json(&summary(&info)))
    });
    engine.register_quick(names::jobs::CANCEL, |job: Job| async move {
        let id = job_id(&job)?;
        let (info, ended) = job
            .engine()
            .cancel_job(id, CANCEL_WAIT)
            .await
            .ok_or_else(|| no_such(id))?;
        tracing::info!(cancelled = id, job = %info.name, ended, "job cancelled by request");
        if ended {
            Ok(Reply::empty(204))
        } else {
            // Still winding down: say so, with what it looks like now.
            let now = job.engine().job(id).unwrap_or(info);
            Ok(Reply::json_status(202, &summary(&now)))
        }
    });
}

fn job_id(job: &Job) -> Result<u64> {
    let raw = job.args.required("id")?;
    raw.parse()
        .map_err(|_| ApiError::invalid(format!("invalid job ID: {raw:?}")))
}

fn no_such(id: u64) -> ApiError {
    ApiError::not_found(format!("no such job: {id}"))
}

fn summary(j: &JobInfo) -> JobSummary {
    let started = time::OffsetDateTime::from(j.started)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let status = match &j.status {
        JobStatus::Running => "running",
        JobStatus::Cancelling => "cancelling",
        JobStatus::Done => "done",
        JobStatus::Failed(_) => "failed",
        JobStatus::Cancelled => "cancelled",
    };
    JobSummary {
        id: j.id,
        name: j.name.clone(),
        args: j.args.clone(),
        started,
        status: status.to_string(),
        progress: j.progress.as_ref().map(|p| JobProgress {
            message: p.message.clone(),
            current: p.current,
            total: p.total,
        }),
    }
}
