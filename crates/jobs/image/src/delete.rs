//! `DELETE /images/{name}` and `POST /images/prune`, with dockerd's rules: untag
//! first, delete when nothing names the image, refuse while containers use it.

use std::sync::Arc;

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use berth_graph::{Digest, Graph, Reference};
use serde_json::{json, Value};

use crate::{api_err, blocking, resolve, Images};

/// What a deletion did, in the order dockerd reports it.
#[derive(Default)]
struct Report {
    rows: Vec<Value>,
    untagged: Vec<(Digest, String)>,
    deleted: Vec<Digest>,
}

impl Report {
    fn untag(&mut self, graph: &Graph, r: &Reference, id: &Digest) -> Result<()> {
        graph.untag(r).map_err(api_err)?;
        self.rows.push(json!({ "Untagged": r.familiar() }));
        self.untagged.push((id.clone(), r.familiar()));
        Ok(())
    }
}

fn conflict(name: &str, why: String) -> ApiError {
    ApiError::conflict(format!(
        "conflict: unable to delete {name} (must be forced) - {why}"
    ))
}

fn short(id: &Digest) -> &str {
    id.short()
}

/// How a deletion treats an image's local parents and its own children.
#[derive(Clone, Copy)]
struct Mode {
    force: bool,
    /// The image lost its last name through this request: an image that other
    /// images were built on stays, untagged, without an error (dockerd's quiet
    /// conflicts).
    quiet: bool,
    /// Untagged parents left without children go too (`noprune` unset).
    prune: bool,
}

/// Deletes an image no reference names any more, unless a container uses it or
/// other images were made from it; then its untagged parents, as dockerd does.
fn delete_unreferenced(
    images: &Images,
    id: &Digest,
    mode: Mode,
    report: &mut Report,
) -> Result<()> {
    if !images.graph.refs_of(id).is_empty() {
        return Ok(());
    }
    if !images.graph.children(id).is_empty() {
        if mode.quiet {
            return Ok(());
        }
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            short(id)
        )));
    }
    let force = mode.force;
    if let Some((c, running)) = images.users(id).first() {
        let state = if *running { "running" } else { "stopped" };
        if *running || !force {
            return Err(ApiError::conflict(format!(
                "conflict: unable to delete {} (cannot be forced) - image is being used by {state} container {}",
                short(id),
                &c[..c.len().min(12)]
            )));
        }
    }
    let parent = images.graph.image(id).and_then(|r| r.parent);
    let layers = images.graph.delete_image(id).map_err(api_err)?;
    report.rows.push(json!({ "Deleted": id.as_str() }));
    report.deleted.push(id.clone());
    for l in layers {
        report.rows.push(json!({ "Deleted": l.as_str() }));
    }
    match parent {
        Some(p)
            if mode.prune && images.graph.image(&p).is_some() && images.users(&p).is_empty() =>
        {
            let quiet = Mode {
                force: false,
                quiet: true,
                prune: true,
            };
            delete_unreferenced(images, &p, quiet, report)
        }
        _ => Ok(()),
    }
}

fn image_delete(images: &Images, name: &str, force: bool, prune: bool) -> Result<Report> {
    let graph = &images.graph;
    let id = resolve(graph, name)?;
    let mut report = Report::default();
    // A name that is a reference (not an ID or ID prefix) untags just that.
    let named_ref = Reference::parse_tagged(name)
        .ok()
        .filter(|r| graph.lookup_ref(r).as_ref() == Some(&id));
    let users = images.users(&id);
    match named_ref {
        // A name untags just that name, forced or not; the image goes once nothing
        // names it and no container uses it (a used one stays, untagged).
        Some(r) => {
            // Its only tag (in one repository) would leave a container's image
            // dangling: refused unless forced, as dockerd does.
            let refs = graph.refs_of(&id);
            let tags = refs.iter().filter(|x| x.digest.is_none()).count();
            let repos: std::collections::BTreeSet<String> = refs.iter().map(|x| x.name()).collect();
            if let Some((c, _)) = users
                .first()
                .filter(|_| !force && tags <= 1 && repos.len() == 1)
            {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    &c[..c.len().min(12)],
                    short(&id)
                )));
            }
            report.untag(graph, &r, &id)?;
            // The repository's last tag gone, its digest references go too (as
            // dockerd does, whatever other repositories still tag the image); the
            // image goes when nothing names it and no container uses it.
            let rest = graph.refs_of(&id);
            if !rest
                .iter()
                .any(|x| x.digest.is_none() && x.name() == r.name())
            {
                for d in rest
                    .iter()
                    .filter(|x| x.digest.is_some() && x.name() == r.name())
                {
                    report.untag(graph, d, &id)?;
                }
            }
            // Forced, stopped containers do not keep it; running ones do, quietly.
            if users.is_empty() || (force && users.iter().all(|(_, running)| !running)) {
                let mode = Mode {
                    force,
                    quiet: true,
                    prune,
                };
                delete_unreferenced(images, &id, mode, &mut report)?;
            }
        }
        _ => {
            let refs = graph.refs_of(&id);
            if !force {
                let repos: std::collections::BTreeSet<String> =
                    refs.iter().map(|r| r.name()).collect();
                if repos.len() > 1 {
                    return Err(conflict(
                        short(&id),
                        "image is referenced in multiple repositories".into(),
                    ));
                }
                if let Some((c, running)) = users.first() {
                    let state = if *running { "running" } else { "stopped" };
                    return Err(conflict(
                        short(&id),
                        format!(
                            "image is being used by {state} container {}",
                            &c[..c.len().min(12)]
                        ),
                    ));
                }
            }
            if users.iter().any(|(_, running)| *running) {
                let (c, _) = &users[0];
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    short(&id),
                    &c[..c.len().min(12)]
                )));
            }
            if refs.is_empty() && !graph.children(&id).is_empty() {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    short(&id)
                )));
            }
            let quiet = !refs.is_empty();
            for r in refs {
                report.untag(graph, &r, &id)?;
            }
            if users.is_empty() {
                let mode = Mode {
                    force,
                    quiet,
                    prune,
                };
                delete_unreferenced(images, &id, mode, &mut report)?;
            }
        }
    }
    Ok(report)
}

fn publish(job: &Job, report: &Report) {
    for (id, name) in &report.untagged {
        crate::event(job, "untag", id.as_str(), name);
    }
    for id in &report.deleted {
        crate::event(job, "delete", id.as_str(), id.as_str());
    }
}

pub(crate) async fn delete(job: Job, images: Arc<Images>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let force = job.args.bool("force");
    let prune = !job.args.bool("noprune");
    let i = images.clone();
    let report = blocking(move || image_delete(&i, &name, force, prune)).await?;
    publish(&job, &report);
    Ok(Reply::json(&report.rows))
}

pub(crate) async fn prune(job: Job, images: Arc<Images>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["dangling", "until", "label", "label!"])?;
    let dangling_only = filters
        .get("dangling")
        .first()
        .is_none_or(|d| d == "true" || d == "1");
    let until = filters.until()?;
    let i = images.clone();
    let (report, reclaimed) = blocking(move || {
        let graph = &i.graph;
        let mut report = Report::default();
        let before = graph.layers_size();
        for rec in graph.images() {
            // Leaves only: deleting one prunes the untagged parents it was built on.
            if graph.image(&rec.id).is_none() || !graph.children(&rec.id).is_empty() {
                continue;
            }
            let refs = graph.refs_of(&rec.id);
            let tagged = refs.iter().any(|r| r.tag.is_some());
            let labels = rec.config.labels();
            if (dangling_only && tagged)
                || !i.users(&rec.id).is_empty()
                || until.is_some_and(|u| rec.config.created_unix() >= u)
                || !filters
                    .get("label")
                    .iter()
                    .all(|l| label_matches(l, &labels))
                || !filters
                    .get("label!")
                    .iter()
                    .all(|l| !label_matches(l, &labels))
            {
                continue;
            }
            for r in refs {
                report.untag(graph, &r, &rec.id)?;
            }
            let mode = Mode {
                force: false,
                quiet: true,
                prune: true,
            };
            delete_unreferenced(&i, &rec.id, mode, &mut report)?;
        }
        Ok((report, before.saturating_sub(graph.layers_size())))
    })
    .await?;
    publish(&job, &report);
    crate::event(&job, "prune", "", "");
    Ok(Reply::json(&json!({
        "ImagesDeleted": if report.rows.is_empty() { Value::Null } else { json!(report.rows) },
        "SpaceReclaimed": reclaimed,
    })))
}
