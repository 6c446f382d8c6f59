//! The API server: HTTP/1.1 on unix sockets and TCP, with TLS where asked.
//!
//! A request is matched against the route table, which names a job; the server builds
//! the job's [`Args`](berth_engine::Args) (API version, path and query parameters,
//! headers, body), dispatches it through the [`Engine`](berth_engine::Engine) and turns
//! the job's [`Reply`](berth_engine::Reply) into the response. It never imports a job
//! family: jobs are known only by name.
//!
//! hyper 1 with hyper-util serves each connection on its own task with upgrades
//! enabled, so attach and exec can take the connection over (`101 UPGRADED`).

mod peer;
mod response;
mod router;
pub mod routes;
mod serve;
mod tls;

pub use router::{BodyMode, Route, Router};
pub use serve::{Listener, Server};
pub use tls::{TlsAcceptor, TlsFiles};
