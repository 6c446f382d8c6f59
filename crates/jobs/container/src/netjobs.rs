//! `POST /networks/{id}/connect` and `/disconnect`: they change containers, so they
//! live with the containers and reach the network subsystem through
//! [`crate::NetworkService`].

use std::sync::Arc;

use berth_api::container::EndpointSettings;
use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use serde::Deserialize;

/// The body of connect and disconnect.
#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Container", default)]
    container: String,
    #[serde(rename = "EndpointConfig", default)]
    endpoint_config: Option<EndpointSettings>,
}

fn body(job: &Job) -> Result<Body> {
    berth_api::container::decode(job.args.body_bytes(), "NetworkConnect")
}

use crate::Containers;

fn service(c: &Containers) -> Result<&Arc<dyn crate::NetworkService>> {
    c.net()
        .ok_or_else(|| ApiError::not_implemented("networking is not enabled in this daemon"))
}

pub(crate) async fn connect(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let net = service(&c)?;
    let (_, name) = net.resolve(job.args.required("id")?)?;
    let req = body(&job)?;
    let entry = c.find(&req.container)?;
    let rec = entry.snapshot();
    let mode = rec.network_mode();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Err(ApiError::forbidden(if mode == "host" {
            "container cannot be disconnected from host network or connected to host network"
        } else {
            "container sharing network namespace with another container or host cannot be connected to any other network"
        }));
    }
    if rec.endpoints_config.contains_key(&name) {
        return Err(ApiError::forbidden(format!(
            "endpoint with name {} already exists in network {name}",
            rec.name.trim_start_matches('/')
        )));
    }
    let cfg = req.endpoint_config.unwrap_or_default();
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
        r.endpoints_config.insert(name.clone(), cfg);
        if let Some(s) = settings {
            r.network_settings = Some(s);
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
    let req = body(&job)?;
    let entry = c.find(&req.container)?;
    let rec = entry.snapshot();
    if !rec.endpoints_config.contains_key(&name) {
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
        r.endpoints_config.remove(&name);
        if let Some(s) = settings {
            r.network_settings = Some(s);
        }
        r.clone()
    };
    c.save(&rec)?;
    net.event(&name, &rec.id, "disconnect");
    Ok(Reply::empty(200))
}
