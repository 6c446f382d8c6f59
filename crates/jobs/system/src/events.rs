//! `GET /events`: replay from the bus's history for `since`/`until`, then stream live
//! events until `until` passes or the client goes away.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_api::events::{Event, EVENT_FILTERS};
use berth_api::filters::Filters;
use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply, StreamKind};
use tokio::sync::broadcast::error::RecvError;

/// Parses dockerd's timestamp forms: `SECONDS`, `SECONDS.NANOS`, or RFC 3339.
/// Returns nanoseconds since the epoch.
pub(crate) fn parse_timestamp(s: &str) -> Result<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "failed to parse value as time or duration: \"{s}\""
        ))
    };
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| bad());
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(bad)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub(crate) async fn events(mut job: Job) -> Result<Reply> {
    let since = job
        .args
        .str("since")
        .filter(|s| !s.is_empty())
        .map(parse_timestamp)
        .transpose()?;
    let until = job
        .args
        .str("until")
        .filter(|s| !s.is_empty())
        .map(parse_timestamp)
        .transpose()?;
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(EVENT_FILTERS)?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::invalid(
                "`since` time must be before `until` time",
            ));
        }
    }
    let mut sub = job.events().subscribe();
    let out = job.stream("application/json", StreamKind::Raw)?;
    let in_window = |e: &Event| {
        since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
    };
    if since.is_some() || until.is_some() {
        for e in sub
            .history
            .iter()
            .filter(|e| in_window(e) && e.matches(&filters))
        {
            out.send_json(e).await?;
        }
    }
    let deadline = until.map(|u| {
        let wait = u.saturating_sub(now_nanos()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_nanos(wait)
    });
    loop {
        let until_passed = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until_passed => break,
            _ = job.cancelled() => break,
            _ = out.closed() => break,
            e = sub.rx.recv() => match e {
                Ok(e) => {
                    if in_window(&e) && e.matches(&filters) {
                        out.send_json(&e).await?;
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "events subscriber lagged"),
                Err(RecvError::Closed) => break,
            }
        }
    }
    Ok(Reply::empty(200))
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("1700000000").expect("secs"),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000.5").expect("frac"),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000.000000001").expect("nanos"),
            1_700_000_000_000_000_001
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z").expect("rfc3339"),
            1_700_000_000_000_000_000
        );
        for bad in ["", "x", "1.2.3", "1.1234567891", "1.-1"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
    }
}
