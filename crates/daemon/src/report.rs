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
