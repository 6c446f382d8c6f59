//! `GET /images/json`, `GET /images/{name}/json`, `GET /images/{name}/history`,
//! `POST /images/{name}/tag`.

use std::sync::Arc;

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Job, Reply};
use berth_graph::{Graph, ImageRecord, Reference};
use serde_json::{json, Value};

use crate::{api_err, blocking, event, resolve, Images};

const NONE_TIME: &str = "0001-01-01T00:00:00Z";

fn tags_and_digests(graph: &Graph, rec: &ImageRecord) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for r in graph.refs_of(&rec.id) {
        if r.digest.is_some() {
            digests.push(r.familiar());
        } else {
            tags.push(r.familiar());
        }
    }
    tags.sort();
    digests.sort();
    (tags, digests)
}

/// The image's container defaults in the API's `Config` shape.
fn config_view(config: Option<&Value>, v: ApiVersion) -> Value {
    let mut base = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
        "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null,
    });
    if v >= ApiVersion::new(1, 50) {
        // 1.50 dropped the container-only fields from image configs.
        if let Some(o) = base.as_object_mut() {
            for k in [
                "Hostname",
                "Domainname",
                "AttachStdin",
                "AttachStdout",
                "AttachStderr",
                "Tty",
                "OpenStdin",
                "StdinOnce",
                "Image",
            ] {
                o.remove(k);
            }
        }
    }
    if let (Some(o), Some(Value::Object(c))) = (base.as_object_mut(), config) {
        for (k, val) in c {
            o.insert(k.clone(), val.clone());
        }
    }
    base
}

pub(crate) fn inspect_view(
    graph: &Graph,
    rec: &ImageRecord,
    v: ApiVersion,
    data_root_layers: bool,
) -> Value {
    let (tags, digests) = tags_and_digests(graph, rec);
    let size = graph.image_size(rec);
    let lowers: Vec<String> = rec
        .chain_ids
        .iter()
        .rev()
        .map(|c| graph.layer_diff(c).display().to_string())
        .collect();
    let (upper, rest) = lowers
        .split_first()
        .map(|(u, r)| (u.clone(), r.join(":")))
        .unwrap_or_default();
    let mut data = serde_json::Map::new();
    if data_root_layers {
        if !rest.is_empty() {
            data.insert("LowerDir".into(), json!(rest));
        }
        data.insert("MergedDir".into(), json!(""));
        data.insert("UpperDir".into(), json!(upper));
        data.insert("WorkDir".into(), json!(""));
    }
    let mut out = json!({
        "Id": rec.id.as_str(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": rec.parent.as_ref().map(|p| p.as_str()).unwrap_or(""),
        "Comment": rec.config.comment.clone().unwrap_or_default(),
        "Created": rec.config.created.clone().unwrap_or_else(|| NONE_TIME.to_string()),
        "DockerVersion": rec.config.docker_version.clone().unwrap_or_default(),
        "Author": rec.config.author.clone().unwrap_or_default(),
        "Config": config_view(rec.config.config.as_ref(), v),
        "Architecture": rec.config.architecture,
        "Os": rec.config.os,
        "Size": size,
        "GraphDriver": { "Data": data, "Name": "overlay2" },
        "RootFS": { "Type": "layers", "Layers": rec.config.rootfs.diff_ids },
        "Metadata": { "LastTagTime": rec.last_tag_time.clone().unwrap_or_else(|| NONE_TIME.to_string()) },
    });
    if let Some(o) = out.as_object_mut() {
        if let Some(var) = &rec.config.variant {
            o.insert("Variant".into(), json!(var));
        }
        if v < ApiVersion::new(1, 44) {
            o.insert("VirtualSize".into(), json!(size));
            o.insert(
                "Container".into(),
                json!(rec.config.container.clone().unwrap_or_default()),
            );
            o.insert(
                "ContainerConfig".into(),
                config_view(rec.config.container_config.as_ref(), v),
            );
        }
    }
    out
}

pub(crate) async fn inspect(job: Job, images: Arc<Images>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let v = job.args.version;
    let graph = images.graph.clone();
    let view = blocking(move || {
        let id = resolve(&graph, &name)?;
        let rec = graph
            .image(&id)
            .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
        Ok(inspect_view(&graph, &rec, v, true))
    })
    .await?;
    Ok(Reply::json(&view))
}

/// `path.Match`-style glob with `*` and `?` (no `/` crossing for `*`, as Go's).
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

fn matches_reference(filter: &str, tags: &[String], digests: &[String]) -> bool {
    tags.iter().chain(digests).any(|t| {
        let repo = Reference::parse(t)
            .map(|r| r.familiar_name())
            .unwrap_or_default();
        glob(filter, t) || glob(filter, &repo)
    })
}

pub(crate) async fn list(job: Job, images: Arc<Images>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&[
        "dangling",
        "label",
        "label!",
        "before",
        "since",
        "reference",
        "until",
    ])?;
    let v = job.args.version;
    let all = job.args.bool("all");
    let graph = images.graph.clone();
    let list = blocking(move || {
        let before = filters
            .get("before")
            .first()
            .map(|n| resolve(&graph, n))
            .transpose()?
            .and_then(|id| graph.image(&id));
        let since = filters
            .get("since")
            .first()
            .map(|n| resolve(&graph, n))
            .transpose()?
            .and_then(|id| graph.image(&id));
        let mut out = Vec::new();
        let mut recs = graph.images();
        recs.sort_by_key(|r| std::cmp::Reverse(r.config.created_unix()));
        for rec in recs {
            let (tags, digests) = tags_and_digests(&graph, &rec);
            let labels = rec.config.labels();
            let created = rec.config.created_unix();
            let dangling = tags.is_empty();
            let keep = filters.any_or_absent("dangling", |d| (d == "true" || d == "1") == dangling)
                && filters
                    .get("label")
                    .iter()
                    .all(|l| label_matches(l, &labels))
                && filters
                    .get("label!")
                    .iter()
                    .all(|l| !label_matches(l, &labels))
                && filters.any_or_absent("reference", |f| matches_reference(f, &tags, &digests))
                && before
                    .as_ref()
                    .is_none_or(|b| created < b.config.created_unix())
                && since
                    .as_ref()
                    .is_none_or(|s| created > s.config.created_unix());
            // Untagged images others were made from (a build's steps) show only
            // with `all`, as under dockerd.
            if !keep || (dangling && !all && !graph.children(&rec.id).is_empty()) {
                continue;
            }
            let size = graph.image_size(&rec);
            let (tags, digests) = if v < ApiVersion::new(1, 44) && dangling {
                (
                    vec!["<none>:<none>".to_string()],
                    if digests.is_empty() {
                        vec!["<none>@<none>".to_string()]
                    } else {
                        digests
                    },
                )
            } else {
                (tags, digests)
            };
            let mut item = json!({
                "Containers": -1,
                "Created": created,
                "Id": rec.id.as_str(),
                "Labels": if labels.is_empty() { Value::Null } else { json!(labels) },
                "ParentId": rec.parent.as_ref().map(|p| p.as_str()).unwrap_or(""),
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": size,
            });
            if v < ApiVersion::new(1, 44) {
                if let Some(o) = item.as_object_mut() {
                    o.insert("VirtualSize".into(), json!(size));
                }
            }
            out.push(item);
        }
        Ok(out)
    })
    .await?;
    Ok(Reply::json(&list))
}

pub(crate) async fn history(job: Job, images: Arc<Images>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let graph = images.graph.clone();
    let out = blocking(move || {
        let id = resolve(&graph, &name)?;
        let rec = graph
            .image(&id)
            .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
        let mut layer = 0usize;
        let mut rows = Vec::new();
        let history = if rec.config.history.is_empty() {
            rec.chain_ids
                .iter()
                .map(|_| berth_graph::image::History::default())
                .collect()
        } else {
            rec.config.history.clone()
        };
        for h in &history {
            let size = if h.empty_layer {
                0
            } else {
                let s = rec
                    .chain_ids
                    .get(layer)
                    .and_then(|c| graph.layer(c))
                    .map(|l| l.size)
                    .unwrap_or(0);
                layer += 1;
                s
            };
            let created = h
                .created
                .as_deref()
                .and_then(|c| {
                    time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|t| t.unix_timestamp())
                .unwrap_or(0);
            rows.push(json!({
                "Id": "<missing>",
                "Created": created,
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": Value::Null,
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            }));
        }
        rows.reverse();
        // The newest rows are the image and its local parents, in turn (dockerd
        // names as many rows as it has parents on this host).
        let mut at = Some(rec);
        for row in rows.iter_mut() {
            let (Some(img), Some(o)) = (at.take(), row.as_object_mut()) else {
                break;
            };
            let (tags, _) = tags_and_digests(&graph, &img);
            o.insert("Id".into(), json!(img.id.as_str()));
            o.insert(
                "Tags".into(),
                if tags.is_empty() {
                    Value::Null
                } else {
                    json!(tags)
                },
            );
            at = img.parent.as_ref().and_then(|p| graph.image(p));
        }
        Ok(rows)
    })
    .await?;
    Ok(Reply::json(&out))
}

pub(crate) async fn tag(job: Job, images: Arc<Images>) -> Result<Reply> {
    let name = job.args.required("name")?.to_string();
    let repo = job.args.str("repo").unwrap_or("").to_string();
    let tag = job
        .args
        .str("tag")
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
        .to_string();
    if repo.is_empty() {
        return Err(ApiError::invalid(
            "repository name must have at least one component",
        ));
    }
    let target = Reference::parse(&repo).map_err(api_err)?;
    if target.digest.is_some() {
        return Err(ApiError::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    let target = if target.tag.is_some() {
        target
    } else {
        target.with_tag(&tag)
    };
    if !tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || tag.starts_with(['.', '-'])
        || tag.len() > 128
    {
        return Err(ApiError::invalid(format!("invalid tag format: {tag:?}")));
    }
    let graph = images.graph.clone();
    let t2 = target.clone();
    let id = blocking(move || {
        let id = resolve(&graph, &name)?;
        graph.tag(&t2, &id).map_err(api_err)?;
        Ok(id)
    })
    .await?;
    event(&job, "tag", id.as_str(), &target.familiar());
    Ok(crate::created())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_like_go() {
        assert!(glob("busybox*", "busybox:latest"));
        assert!(glob("busy?ox", "busybox"));
        assert!(!glob("busy*", "other"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/app", "127.0.0.1:5000/app"));
    }
}
