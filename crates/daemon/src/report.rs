//! What the subsystems tell `/info` and `/system/df`.

use std::sync::Arc;

use berth_api::system::{DiskUsage, Info};
use berth_jobs_image::Images;
use berth_jobs_system::Reporter;

pub struct ImageReport(pub Arc<Images>);

impl Reporter for ImageReport {
    fn info(&self, info: &mut Info) {
        info.images = self.0.usage().0;
    }

    fn disk_usage(&self, df: &mut DiskUsage) {
        let (_, layers, rows) = self.0.usage();
        df.layers_size = layers as i64;
        df.images = rows;
    }
}

pub struct ContainerReport(pub Arc<berth_jobs_container::Containers>);

impl Reporter for ContainerReport {
    fn info(&self, info: &mut Info) {
        let (all, running, paused, stopped) = self.0.counts();
        info.containers = all;
        info.containers_running = running;
        info.containers_paused = paused;
        info.containers_stopped = stopped;
    }
}

/// Tells image deletion which containers use an image.
pub struct ContainerUsage(pub Arc<berth_jobs_container::Containers>);

impl berth_jobs_image::ImageUsage for ContainerUsage {
    fn users(&self, image: &berth_graph::Digest) -> Vec<(String, bool)> {
        self.0.users_of(image.as_str())
    }
}
