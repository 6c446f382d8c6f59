//! The route table, one list per job family. A route names its job; the job family
//! registers a handler under that name. Paths are written without the `/vX.Y` prefix.

use crate::router::{BodyMode, Route};
use berth_engine::names;
use http::Method;

fn r(method: Method, path: &'static str, job: &'static str, body: BodyMode) -> Route {
    Route::new(method, path, job, body)
}

/// `/_ping`, `/version`, `/info`, `/events`, `/system/df`.
pub fn system() -> Vec<Route> {
    use BodyMode::None;
    vec![
        r(Method::GET, "/_ping", names::system::PING, None),
        r(Method::HEAD, "/_ping", names::system::PING, None),
        r(Method::GET, "/version", names::system::VERSION, None),
        r(Method::GET, "/info", names::system::INFO, None),
        r(Method::GET, "/events", names::system::EVENTS, None),
        r(Method::GET, "/system/df", names::system::DF, None),
        r(Method::GET, "/berth/jobs", names::jobs::LIST, None),
        r(Method::GET, "/berth/jobs/{id}", names::jobs::INSPECT, None),
        r(
            Method::DELETE,
            "/berth/jobs/{id}",
            names::jobs::CANCEL,
            None,
        ),
        r(
            Method::POST,
            "/swarm/leave",
            names::system::SWARM_LEAVE,
            None,
        ),
    ]
}

/// The image family. Image names contain slashes, hence `{name:.*}`.
pub fn image() -> Vec<Route> {
    use BodyMode::{Json, None, Stream};
    vec![
        r(Method::POST, "/images/create", names::image::CREATE, Stream),
        r(Method::GET, "/images/json", names::image::LIST, None),
        r(Method::GET, "/images/get", names::image::SAVE, None),
        r(Method::POST, "/images/load", names::image::LOAD, Stream),
        r(Method::POST, "/images/prune", names::image::PRUNE, None),
        r(
            Method::GET,
            "/images/{name:.*}/json",
            names::image::INSPECT,
            None,
        ),
        r(
            Method::GET,
            "/images/{name:.*}/history",
            names::image::HISTORY,
            None,
        ),
        r(
            Method::GET,
            "/images/{name:.*}/get",
            names::image::SAVE,
            None,
        ),
        r(
            Method::POST,
            "/images/{name:.*}/tag",
            names::image::TAG,
            None,
        ),
        r(
            Method::POST,
            "/images/{name:.*}/push",
            names::image::PUSH,
            None,
        ),
        r(
            Method::DELETE,
            "/images/{name:.*}",
            names::image::DELETE,
            None,
        ),
        r(
            Method::GET,
            "/distribution/{name:.*}/json",
            names::image::DISTRIBUTION,
            None,
        ),
        r(Method::POST, "/auth", names::image::AUTH, Json),
    ]
}

/// The container family.
pub fn container() -> Vec<Route> {
    use BodyMode::{Json, None, Stream};
    vec![
        r(
            Method::POST,
            "/containers/create",
            names::container::CREATE,
            Json,
        ),
        r(
            Method::GET,
            "/containers/json",
            names::container::LIST,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/json",
            names::container::INSPECT,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/start",
            names::container::START,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/stop",
            names::container::STOP,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/kill",
            names::container::KILL,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/restart",
            names::container::RESTART,
            None,
        ),
        r(
            Method::POST,
            "/containers/{id}/rename",
            names::container::RENAME,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/resize",
            names::container::RESIZE,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/wait",
            names::container::WAIT,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/attach",
            names::container::ATTACH,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/logs",
            names::container::LOGS,
            None,
        ),
        r(
            Method::DELETE,
            "/containers/{name}",
            names::container::DELETE,
            None,
        ),
        // `{parent}/{alias}?link=1` removes a legacy link.
        r(
            Method::DELETE,
            "/containers/{parent}/{alias}",
            names::container::UNLINK,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/exec",
            names::container::EXEC,
            Json,
        ),
        r(
            Method::HEAD,
            "/containers/{name}/archive",
            names::container::ARCHIVE_HEAD,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/archive",
            names::container::ARCHIVE_GET,
            None,
        ),
        r(
            Method::PUT,
            "/containers/{name}/archive",
            names::container::ARCHIVE_PUT,
            Stream,
        ),
        r(
            Method::GET,
            "/containers/{name}/export",
            names::container::EXPORT,
            None,
        ),
        r(
            Method::POST,
            "/containers/prune",
            names::container::PRUNE,
            None,
        ),
        r(Method::POST, "/commit", names::container::COMMIT, Json),
        r(
            Method::POST,
            "/containers/{name}/pause",
            names::container::PAUSE,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/unpause",
            names::container::UNPAUSE,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/top",
            names::container::TOP,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/stats",
            names::container::STATS,
            None,
        ),
        r(
            Method::GET,
            "/containers/{name}/changes",
            names::container::CHANGES,
            None,
        ),
        r(
            Method::POST,
            "/containers/{name}/update",
            names::container::UPDATE,
            Json,
        ),
        r(Method::POST, "/exec/{id}/start", names::exec::START, Json),
        r(Method::POST, "/exec/{id}/resize", names::exec::RESIZE, None),
        r(Method::GET, "/exec/{id}/json", names::exec::INSPECT, None),
    ]
}

/// The network family.
pub fn network() -> Vec<Route> {
    use BodyMode::{Json, None};
    vec![
        r(Method::GET, "/networks", names::network::LIST, None),
        r(
            Method::POST,
            "/networks/create",
            names::network::CREATE,
            Json,
        ),
        r(Method::POST, "/networks/prune", names::network::PRUNE, None),
        r(Method::GET, "/networks/{id}", names::network::INSPECT, None),
        r(
            Method::DELETE,
            "/networks/{id}",
            names::network::DELETE,
            None,
        ),
        r(
            Method::POST,
            "/networks/{id}/connect",
            names::network::CONNECT,
            Json,
        ),
        r(
            Method::POST,
            "/networks/{id}/disconnect",
            names::network::DISCONNECT,
            Json,
        ),
    ]
}

/// The volume family.
pub fn volume() -> Vec<Route> {
    use BodyMode::{Json, None};
    vec![
        r(Method::GET, "/volumes", names::volume::LIST, None),
        r(Method::POST, "/volumes/create", names::volume::CREATE, Json),
        r(Method::POST, "/volumes/prune", names::volume::PRUNE, None),
        r(Method::GET, "/volumes/{name}", names::volume::INSPECT, None),
        r(
            Method::DELETE,
            "/volumes/{name}",
            names::volume::DELETE,
            None,
        ),
    ]
}

/// The build family (the classic builder).
pub fn build() -> Vec<Route> {
    vec![
        r(
            Method::POST,
            "/build",
            names::build::BUILD,
            BodyMode::Stream,
        ),
        r(
            Method::POST,
            "/build/prune",
            names::build::PRUNE,
            BodyMode::None,
        ),
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
