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

    fn metrics(&self, m: &mut berth_metrics::Snapshot) {
        (m.health_checks, m.health_checks_failed) = self.0.health_checks();
    }
}

/// Tells image deletion which containers use an image.
pub struct ContainerUsage(pub Arc<berth_jobs_container::Containers>);

impl berth_jobs_image::ImageUsage for ContainerUsage {
    fn users(&self, image: &berth_graph::Digest) -> Vec<(String, bool)> {
        self.0.users_of(image.as_str())
    }
}

/// The network subsystem as the container jobs see it.
pub struct NetworkAdapter {
    pub nets: Arc<berth_jobs_network::Networks>,
    pub engine: berth_engine::Engine,
}

impl berth_jobs_container::NetworkService for NetworkAdapter {
    fn setup(
        &self,
        req: berth_api::network::NetRequest,
    ) -> BoxFuture<'_, berth_api::Result<berth_api::network::NetSetup>> {
        Box::pin(async move { self.nets.setup(&req).await })
    }

    fn teardown(&self, id: String) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.nets.teardown(&id).await })
    }

    fn restore(&self, id: String) -> BoxFuture<'_, Option<berth_api::network::NetSetup>> {
        Box::pin(async move { self.nets.restore(&id).await })
    }

    fn gc(&self, running: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.nets.gc(&running).await })
    }

    fn connect(
        &self,
        id: String,
        network: String,
        cfg: berth_api::container::EndpointSettings,
    ) -> BoxFuture<'_, berth_api::Result<berth_api::network::NetSetup>> {
        Box::pin(async move { self.nets.connect(&id, &network, &cfg).await })
    }

    fn disconnect(
        &self,
        id: String,
        network: String,
    ) -> BoxFuture<'_, berth_api::Result<berth_api::network::NetSetup>> {
        Box::pin(async move { self.nets.disconnect(&id, &network).await })
    }

    fn resolve(&self, network: &str) -> berth_api::Result<(String, String)> {
        self.nets.find(network).map(|n| (n.id, n.name))
    }

    fn event(&self, network: &str, container: &str, action: &str) {
        berth_jobs_network::publish_endpoint(&self.engine, &self.nets, network, container, action);
    }
}

use berth_jobs_container::BoxFuture;

/// Which containers use a volume, for volume removal and `dangling`.
pub struct VolumeUsers(pub Arc<berth_jobs_container::Containers>);

impl berth_jobs_volume::VolumeUsage for VolumeUsers {
    fn users(&self, volume: &str) -> Vec<String> {
        self.0.volume_users(volume)
    }
}

/// The volume store as the container jobs see it.
pub struct VolumeAdapter {
    pub vols: Arc<berth_volume::Volumes>,
    pub engine: berth_engine::Engine,
}

impl berth_jobs_container::VolumeService for VolumeAdapter {
    fn ensure(
        &self,
        name: Option<&str>,
        driver: &str,
        options: std::collections::BTreeMap<String, String>,
        labels: std::collections::BTreeMap<String, String>,
        anonymous: bool,
    ) -> berth_api::Result<String> {
        berth_jobs_volume::create_volume(
            &self.engine,
            &self.vols,
            name,
            driver,
            options,
            labels,
            anonymous,
        )
        .map(|v| v.name)
    }

    fn mount(&self, name: &str) -> berth_api::Result<std::path::PathBuf> {
        self.vols.mount(name).map_err(berth_jobs_volume::api_error)
    }

    fn unmount(&self, name: &str) {
        self.vols.unmount(name)
    }

    fn remove(&self, name: &str) -> berth_api::Result<()> {
        berth_jobs_volume::remove_volume(&self.engine, &self.vols, name)
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.vols.path(name)
    }
}

/// Volumes in `/system/df` (with their sizes and how many containers use them).
pub struct VolumeReport {
    pub vols: Arc<berth_volume::Volumes>,
    pub users: Arc<berth_jobs_container::Containers>,
}

impl Reporter for VolumeReport {
    fn info(&self, _info: &mut Info) {}

    fn disk_usage(&self, df: &mut DiskUsage) {
        for v in self.vols.list() {
            let refs = self.users.volume_users(&v.name).len() as i64;
            let size = self.vols.size(&v.name) as i64;
            df.volumes
                .push(berth_jobs_volume::view(&self.vols, &v, Some((size, refs))));
        }
    }
}
