//! The names of the daemon's jobs: the server's routes and the job families'
//! registrations both name jobs through these, so a route cannot name a job
//! that nothing registers under that name (and the daemon checks at start-up
//! that every route has a handler).

pub mod build {
    pub const BUILD: &str = "build";
    pub const PRUNE: &str = "build.prune";
}

pub mod container {
    pub const ARCHIVE_GET: &str = "container.archive_get";
    pub const ARCHIVE_HEAD: &str = "container.archive_head";
    pub const ARCHIVE_PUT: &str = "container.archive_put";
    pub const ATTACH: &str = "container.attach";
    pub const CHANGES: &str = "container.changes";
    pub const COMMIT: &str = "container.commit";
    pub const COMMIT_BUILD: &str = "container.commit_build";
    pub const CREATE: &str = "container.create";
    pub const DELETE: &str = "container.delete";
    pub const EXEC: &str = "container.exec";
    pub const EXPORT: &str = "container.export";
    pub const INSPECT: &str = "container.inspect";
    pub const KILL: &str = "container.kill";
    pub const LIST: &str = "container.list";
    pub const LOGS: &str = "container.logs";
    pub const PAUSE: &str = "container.pause";
    pub const PRUNE: &str = "container.prune";
    pub const RENAME: &str = "container.rename";
    pub const RESIZE: &str = "container.resize";
    pub const RESTART: &str = "container.restart";
    pub const START: &str = "container.start";
    pub const STATS: &str = "container.stats";
    pub const STOP: &str = "container.stop";
    pub const TOP: &str = "container.top";
    pub const UNLINK: &str = "container.unlink";
    pub const UNPAUSE: &str = "container.unpause";
    pub const UPDATE: &str = "container.update";
    pub const WAIT: &str = "container.wait";
}

pub mod exec {
    pub const INSPECT: &str = "exec.inspect";
    pub const RESIZE: &str = "exec.resize";
    pub const START: &str = "exec.start";
}

pub mod image {
    pub const AUTH: &str = "image.auth";
    pub const CREATE: &str = "image.create";
    pub const DELETE: &str = "image.delete";
    pub const DISTRIBUTION: &str = "image.distribution";
    pub const HISTORY: &str = "image.history";
    pub const INSPECT: &str = "image.inspect";
    pub const LIST: &str = "image.list";
    pub const LOAD: &str = "image.load";
    pub const PRUNE: &str = "image.prune";
    pub const PUSH: &str = "image.push";
    pub const SAVE: &str = "image.save";
    pub const TAG: &str = "image.tag";
}

pub mod network {
    pub const CONNECT: &str = "network.connect";
    pub const CREATE: &str = "network.create";
    pub const DELETE: &str = "network.delete";
    pub const DISCONNECT: &str = "network.disconnect";
    pub const INSPECT: &str = "network.inspect";
    pub const LIST: &str = "network.list";
    pub const PRUNE: &str = "network.prune";
}

pub mod system {
    pub const DF: &str = "system.df";
    pub const EVENTS: &str = "system.events";
    pub const INFO: &str = "system.info";
    pub const METRICS: &str = "system.metrics";
    pub const PING: &str = "system.ping";
    pub const SWARM_LEAVE: &str = "system.swarm_leave";
    pub const VERSION: &str = "system.version";
}

pub mod volume {
    pub const CREATE: &str = "volume.create";
    pub const DELETE: &str = "volume.delete";
    pub const INSPECT: &str = "volume.inspect";
    pub const LIST: &str = "volume.list";
    pub const PRUNE: &str = "volume.prune";
}

/// Berth's own `/berth/jobs`.
pub mod jobs {
    pub const CANCEL: &str = "jobs.cancel";
    pub const INSPECT: &str = "jobs.inspect";
    pub const LIST: &str = "jobs.list";
}
