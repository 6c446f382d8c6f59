//! The route table, one list per job family. A route names its job; the job family
//! registers a handler under that name. Paths are written without the `/vX.Y` prefix.

use crate::router::{BodyMode, Route};
use http::Method;

fn r(method: Method, path: &'static str, job: &'static str, body: BodyMode) -> Route {
    Route::new(method, path, job, body)
}

/// `/_ping`, `/version`, `/info`, `/events`, `/system/df`.
pub fn system() -> Vec<Route> {
    use BodyMode::None;
    vec![
        r(Method::GET, "/_ping", "system.ping", None),
        r(Method::HEAD, "/_ping", "system.ping", None),
        r(Method::GET, "/version", "system.version", None),
        r(Method::GET, "/info", "system.info", None),
        r(Method::GET, "/events", "system.events", None),
        r(Method::GET, "/system/df", "system.df", None),
        r(Method::POST, "/swarm/leave", "system.swarm_leave", None),
    ]
}

/// The image family. Image names contain slashes, hence `{name:.*}`.
pub fn image() -> Vec<Route> {
    use BodyMode::{Json, None, Stream};
    vec![
        r(Method::POST, "/images/create", "image.create", Stream),
        r(Method::GET, "/images/json", "image.list", None),
        r(Method::GET, "/images/get", "image.save", None),
        r(Method::POST, "/images/load", "image.load", Stream),
        r(Method::POST, "/images/prune", "image.prune", None),
        r(Method::GET, "/images/{name:.*}/json", "image.inspect", None),
        r(
            Method::GET,
            "/images/{name:.*}/history",
            "image.history",
            None,
        ),
        r(Method::GET, "/images/{name:.*}/get", "image.save", None),
        r(Method::POST, "/images/{name:.*}/tag", "image.tag", None),
        r(Method::POST, "/images/{name:.*}/push", "image.push", None),
        r(Method::DELETE, "/images/{name:.*}", "image.delete", None),
        r(
            Method::GET,
            "/distribution/{name:.*}/json",
            "image.distribution",
            None,
        ),
        r(Method::POST, "/auth", "image.auth", Json),
    ]
}

/// The container family.
pub fn container() -> Vec<Route> {
    use BodyMode::{Json, None, Stream};
    vec![
        r(Method::POST, "/containers/create", "container.create", Json),
        r(Method::GET, "/containers/json", "container.list", None),
        r(
            Method::GET,
            "/containers/{name}/json",
            "container.inspect",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/start",
            "container.start",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/stop",
            "container.stop",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/kill",
            "container.kill",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/restart",
            "container.restart",
            None,
        ),
        r(
            Method::POST,
            "/containers/{id}/rename",
            "container.rename",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/resize",
            "container.resize",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/wait",
            "container.wait",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/attach",
            "container.attach",
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/logs",
            "container.logs",
            None,
        ),
        r(
            Method::DELETE,
            "/containers/{name}",
            "container.delete",
            None,
        ),
        // `{parent}/{alias}?link=1` removes a legacy link.
        r(
            Method::DELETE,
            "/containers/{parent}/{alias}",
            "container.unlink",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/exec",
            "container.exec",
            Json,
        ),
        r(
            Method::HEAD,
            "/containers/{name}/archive",
            "container.archive_head",
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/archive",
            "container.archive_get",
            None,
        ),
        r(
            Method::PUT,
            "/containers/{name}/archive",
            "container.archive_put",
            Stream,
        ),
        r(
            Method::GET,
            "/containers/{name}/export",
            "container.export",
            None,
        ),
        r(Method::POST, "/containers/prune", "container.prune", None),
        r(Method::POST, "/commit", "container.commit", Json),
        r(
            Method::POST,
            "/containers/{name}/pause",
            "container.pause",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/unpause",
            "container.unpause",
            None,
        ),
        r(Method::GET, "/containers/{name}/top", "container.top", None),
        r(
            Method::GET,
            "/containers/{name}/stats",
            "container.stats",
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/changes",
            "container.changes",
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/update",
            "container.update",
            Json,
        ),
        r(Method::POST, "/exec/{id}/start", "exec.start", Json),
        r(Method::POST, "/exec/{id}/resize", "exec.resize", None),
        r(Method::GET, "/exec/{id}/json", "exec.inspect", None),
    ]
}

/// The network family.
pub fn network() -> Vec<Route> {
    use BodyMode::{Json, None};
    vec![
        r(Method::GET, "/networks", "network.list", None),
        r(Method::POST, "/networks/create", "network.create", Json),
        r(Method::POST, "/networks/prune", "network.prune", None),
        r(Method::GET, "/networks/{id}", "network.inspect", None),
        r(Method::DELETE, "/networks/{id}", "network.delete", None),
        r(
            Method::POST,
            "/networks/{id}/connect",
            "network.connect",
            Json,
        ),
        r(
            Method::POST,
            "/networks/{id}/disconnect",
            "network.disconnect",
            Json,
        ),
    ]
}

/// The volume family.
pub fn volume() -> Vec<Route> {
    use BodyMode::{Json, None};
    vec![
        r(Method::GET, "/volumes", "volume.list", None),
        r(Method::POST, "/volumes/create", "volume.create", Json),
        r(Method::POST, "/volumes/prune", "volume.prune", None),
        r(Method::GET, "/volumes/{name}", "volume.inspect", None),
        r(Method::DELETE, "/volumes/{name}", "volume.delete", None),
    ]
}

/// The build family (the classic builder).
pub fn build() -> Vec<Route> {
    vec![
        r(Method::POST, "/build", "build", BodyMode::Stream),
        r(Method::POST, "/build/prune", "build.prune", BodyMode::None),
    ]
}

/// Every route Berth serves, fixed paths before patterns.
pub fn all() -> Vec<Route> {
    let mut v = system();
    v.extend(image());
    v.extend(build());
    v.extend(container());
    v.extend(network());
    v.extend(volume());
    v
}
