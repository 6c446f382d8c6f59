//! `POST /networks/{id}/connect` and `/disconnect`: they change containers, so they
//! live with the containers and reach the network subsystem through
//! [`crate::NetworkService`].

use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use serde_json::{json, Value};

use crate::Containers;

fn service(c: &Containers) -> Result<&Arc<dyn crate::NetworkService>> {
    c.net()
        .ok_or_else(|| ApiError::not_implemented("networking is not enabled in this daemon"))
}

pub(crate) async fn connect(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let net = service(&c)?;
    let (_, name) = net.resolve(job.args.required("id")?)?;
    let req: Value = job.args.json()?;
    let who = req["Container"].as_str().unwrap_or("");
    let entry = c.find(who)?;
    let rec = entry.snapshot();
    let mode = rec.network_mode();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Err(ApiError::forbidden(if mode == "host" {
            "container cannot be disconnected from host network or connected to host network"
        } else {
            "container sharing network namespace with another container or host cannot be connected to any other network"
        }));
    }
    if rec.endpoints_config.get(&name).is_some() {
        return Err(ApiError::forbidden(format!(
            "endpoint with name {} already exists in network {name}",
            rec.name.trim_start_matches('/')
        )));
    }
    let cfg = if req["EndpointConfig"].is_object() {
        req["EndpointConfig"].clone()
    } else {
        json!({})
    };
    let settings = if rec.state.running {
        Some(
            net.connect(rec.id.clone(), name.clone(), cfg.clone())
                .await?
                .settings,
        )
    } else {
        None
    };
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        if !r.endpoints_config.is_object() {
            r.endpoints_config = json!({});
        }
        r.endpoints_config[&name] = cfg;
        if let Some(s) = settings {
            r.network_settings = s;
        }
        r.clone()
    };
    c.save(&rec)?;
    net.event(&name, &rec.id, "connect");
    Ok(Reply::empty(200))
}

pub(crate) async fn disconnect(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let net = service(&c)?;
    let (_, name) = net.resolve(job.args.required("id")?)?;
    let req: Value = job.args.json()?;
    let who = req["Container"].as_str().unwrap_or("");
    let entry = c.find(who)?;
    let rec = entry.snapshot();
    if rec.endpoints_config.get(&name).is_none() {
        return Err(ApiError::forbidden(format!(
            "container {} is not connected to network {name}",
            rec.id
        )));
    }
    let settings = if rec.state.running {
        Some(net.disconnect(rec.id.clone(), name.clone()).await?.settings)
    } else {
        None
    };
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = r.endpoints_config.as_object_mut() {
            o.remove(&name);
        }
        if let Some(s) = settings {
            r.network_settings = s;
        }
        r.clone()
    };
    c.save(&rec)?;
    net.event(&name, &rec.id, "disconnect");
    Ok(Reply::empty(200))
}
