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

/// Every route Berth serves.
pub fn all() -> Vec<Route> {
    let mut v = system();
    v.sort_by(|a, b| a.path().cmp(b.path()));
    v
}
