//! The volume API: `POST /volumes/create`, `GET /volumes`, `GET /volumes/{name}`,
//! `DELETE /volumes/{name}`, `POST /volumes/prune`. Which containers use a volume
//! comes from the container family through [`VolumeUsage`], plugged in by the daemon.

use berth_engine::names;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Engine, Job, Reply};
use berth_volume::{Volume, Volumes};
use serde_json::{json, Value};

/// Which containers (IDs) use a volume, running or not.
pub trait VolumeUsage: Send + Sync {
    fn users(&self, volume: &str) -> Vec<String>;
}

pub struct VolumeJobs {
    pub volumes: Arc<Volumes>,
    usage: OnceLock<Arc<dyn VolumeUsage>>,
}

impl VolumeJobs {
    pub fn new(volumes: Arc<Volumes>) -> Arc<VolumeJobs> {
        Arc::new(VolumeJobs {
            volumes,
            usage: OnceLock::new(),
        })
    }

    pub fn set_usage(&self, u: Arc<dyn VolumeUsage>) {
        let _ = self.usage.set(u);
    }

    fn users(&self, name: &str) -> Vec<String> {
        self.usage.get().map(|u| u.users(name)).unwrap_or_default()
    }
}

pub use berth_apierr::volume as api_error;

/// A volume as `GET /volumes/{name}` shows it.
pub fn view(vols: &Volumes, v: &Volume, usage: Option<(i64, i64)>) -> Value {
    let mut out = json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": vols.path(&v.name),
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": "local",
    });
    if let Some((size, refs)) = usage {
        out["UsageData"] = json!({ "Size": size, "RefCount": refs });
    }
    out
}

fn event(engine: &Engine, v: &Volume, action: &str) {
    let mut attrs = BTreeMap::new();
    attrs.insert("driver".to_string(), v.driver.clone());
    engine.events().publish("volume", action, &v.name, attrs);
}

/// Creates a volume and publishes `create`, for the container family too (a
/// `-v name:/path` of a volume that does not exist yet).
pub fn create_volume(
    engine: &Engine,
    vols: &Volumes,
    name: Option<&str>,
    driver: &str,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    anonymous: bool,
) -> Result<Volume> {
    let existed = name.is_some_and(|n| vols.get(n).is_ok());
    let v = vols
        .create(name, driver, options, labels, anonymous)
        .map_err(api_error)?;
    if !existed {
        event(engine, &v, "create");
    }
    Ok(v)
}

/// Removes a volume and publishes `destroy`.
pub fn remove_volume(engine: &Engine, vols: &Volumes, name: &str) -> Result<()> {
    let v = vols.get(name).map_err(api_error)?;
    vols.remove(name).map_err(api_error)?;
    event(engine, &v, "destroy");
    Ok(())
}

async fn create(job: Job, j: Arc<VolumeJobs>) -> Result<Reply> {
    let req: Value = job.args.json()?;
    let opts: BTreeMap<String, String> =
        serde_json::from_value(req["DriverOpts"].clone()).unwrap_or_default();
    let labels: BTreeMap<String, String> =
        serde_json::from_value(req["Labels"].clone()).unwrap_or_default();
    let name = req["Name"].as_str().map(str::to_string);
    let driver = req["Driver"].as_str().unwrap_or("local").to_string();
    let engine = job.engine().clone();
    let vols = j.volumes.clone();
    let v = tokio::task::spawn_blocking(move || {
        create_volume(
            &engine,
            &vols,
            name.as_deref(),
            &driver,
            opts,
            labels,
            false,
        )
    })
    .await
    .map_err(|e| ApiError::system(e.to_string()))??;
    Ok(Reply::json_status(201, &view(&j.volumes, &v, None)))
}

async fn list(job: Job, j: Arc<VolumeJobs>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["dangling", "name", "label", "label!", "driver"])?;
    let mut out = Vec::new();
    for v in j.volumes.list() {
        let dangling = j.users(&v.name).is_empty();
        let keep = filters.any_or_absent("dangling", |d| (d == "true" || d == "1") == dangling)
            && filters.any_or_absent("name", |n| v.name.contains(n))
            && filters.any_or_absent("driver", |d| d == v.driver)
            && filters
                .get("label")
                .iter()
                .all(|l| label_matches(l, &v.labels))
            && !filters
                .get("label!")
                .iter()
                .any(|l| label_matches(l, &v.labels));
        if keep {
            out.push(view(&j.volumes, &v, None));
        }
    }
    Ok(Reply::json(&json!({ "Volumes": out, "Warnings": null })))
}

async fn inspect(job: Job, j: Arc<VolumeJobs>) -> Result<Reply> {
    let v = j
        .volumes
        .get(job.args.required("name")?)
        .map_err(api_error)?;
    Ok(Reply::json(&view(&j.volumes, &v, None)))
}

async fn delete(job: Job, j: Arc<VolumeJobs>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let force = job.args.bool("force");
    if j.volumes.get(&name).is_err() {
        if force {
            return Ok(Reply::empty(204));
        }
        return Err(ApiError::not_found(format!("get {name}: no such volume")));
    }
    let users = j.users(&name);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    let engine = job.engine().clone();
    let vols = j.volumes.clone();
    tokio::task::spawn_blocking(move || remove_volume(&engine, &vols, &name))
        .await
        .map_err(|e| ApiError::system(e.to_string()))??;
    Ok(Reply::empty(204))
}

async fn prune(job: Job, j: Arc<VolumeJobs>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["label", "label!", "all"])?;
    // API 1.42 on: only anonymous volumes unless `all=true`.
    let all = job.args.version < ApiVersion::new(1, 42)
        || filters.get("all").iter().any(|a| a == "true" || a == "1");
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in j.volumes.list() {
        if !(all || v.anonymous) || !j.users(&v.name).is_empty() {
            continue;
        }
        if !filters
            .get("label")
            .iter()
            .all(|l| label_matches(l, &v.labels))
            || filters
                .get("label!")
                .iter()
                .any(|l| label_matches(l, &v.labels))
        {
            continue;
        }
        let size = j.volumes.size(&v.name);
        if remove_volume(job.engine(), &j.volumes, &v.name).is_ok() {
            reclaimed += size;
            deleted.push(v.name.clone());
        }
    }
    Ok(Reply::json(
        &json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// Registers the volume jobs.
pub fn register(engine: &Engine, j: Arc<VolumeJobs>) {
    macro_rules! job {
        (quick $name:expr, $f:path) => {{
            let j = j.clone();
            engine.register_quick($name, move |job: Job| $f(job, j.clone()));
        }};
        ($name:expr, $f:path) => {{
            let j = j.clone();
            engine.register($name, move |job: Job| $f(job, j.clone()));
        }};
    }
    job!(names::volume::CREATE, create);
    job!(quick names::volume::LIST, list);
    job!(quick names::volume::INSPECT, inspect);
    job!(names::volume::DELETE, delete);
    job!(names::volume::PRUNE, prune);
}
