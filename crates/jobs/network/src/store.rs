//! The store: networks and sandbox records on disk, loaded at start-up, and
//! lookups by name, ID or prefix.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_api::{ApiError, Result};
use berth_netdriver::{dns, link};
use ipnet::Ipv4Net;

use crate::rules::enable_forwarding;
use crate::{sys, Config, Endpoint, Net, Networks, Sandbox, SandboxRec, State};

impl Networks {
    /// Opens the store, creates the predefined networks and the default bridge,
    /// loads sandboxes left by a previous run and writes the firewall table.
    pub async fn open(cfg: Config) -> Result<Arc<Networks>> {
        let root = cfg.data_root.join("network");
        let netns_dir = cfg.exec_root.join("netns");
        for d in [root.join("sandboxes"), netns_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(|e| sys(format!("{}: {e}", d.display())))?;
        }
        // One table per default bridge: daemons side by side never touch each
        // other's rules.
        let table = if cfg.bridge == "berth0" || cfg.bridge == "none" {
            "berth".to_string()
        } else {
            format!("berth-{}", cfg.bridge)
        };
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let n = Arc::new(Networks {
            cfg,
            root,
            netns_dir,
            table,
            state: Mutex::new(State {
                nets: BTreeMap::new(),
                sandboxes: HashMap::new(),
            }),
            ops: tokio::sync::Mutex::new(()),
            upstream: dns::upstream_from(&resolv),
            fw_bridges: Mutex::new(None),
        });
        n.load()?;
        n.ensure_predefined().await?;
        let bridges: Vec<Net> = n
            .nets()
            .into_iter()
            .filter(|x| x.driver == "bridge")
            .collect();
        let h = link::connect().map_err(sys)?;
        for net in &bridges {
            if let (Some(s), Some(g)) = (net.subnet, net.gateway) {
                let gw = Ipv4Net::new(g, s.prefix_len()).map_err(sys)?;
                if let Err(e) =
                    link::ensure_bridge(&h, &net.bridge, gw, net.mtu(n.cfg.mtu), &n.owner()).await
                {
                    tracing::error!(network = %net.name, error = %e, "setting up the bridge");
                } else if let Err(e) = bridge_v6(&h, net).await {
                    tracing::error!(network = %net.name, error = %e.message, "setting up the bridge");
                }
            }
        }
        // The parents LAN networks had made for them (a reboot takes them).
        for net in n.nets().into_iter().filter(|x| x.made_link.is_some()) {
            if let Err(e) = crate::lan::make(&h, &net).await {
                tracing::error!(network = %net.name, error = %e.message, "setting up the parent interface");
            }
        }
        if bridges.iter().any(|b| !b.internal) {
            enable_forwarding(bridges.iter().any(|b| !b.internal && b.ipv6()));
        }
        n.apply_rules().await;
        Ok(n)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn load(&self) -> Result<()> {
        let mut st = self.lock();
        for e in std::fs::read_dir(&self.root).map_err(sys)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Net>(&b).ok())
                {
                    Some(n) => {
                        st.nets.insert(n.id.clone(), n);
                    }
                    None => {
                        tracing::warn!(file = %p.display(), "ignoring an unreadable network record")
                    }
                }
            }
        }
        for e in std::fs::read_dir(self.root.join("sandboxes"))
            .map_err(sys)?
            .flatten()
        {
            if let Some(rec) = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<SandboxRec>(&b).ok())
            {
                st.sandboxes.insert(
                    rec.container.clone(),
                    Sandbox {
                        rec,
                        proxies: Vec::new(),
                        dns: None,
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) fn save_net(&self, n: &Net) -> Result<()> {
        let b = serde_json::to_vec_pretty(n).map_err(sys)?;
        berth_atomicfile::write(&self.root.join(format!("{}.json", n.id)), &b).map_err(sys)
    }

    pub(crate) fn save_sandbox(&self, s: &SandboxRec) -> Result<()> {
        let b = serde_json::to_vec(s).map_err(sys)?;
        berth_atomicfile::write(&self.sandbox_path(&s.container), &b).map_err(sys)
    }

    pub(crate) fn sandbox_path(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(format!("{id}.json"))
    }

    pub fn nets(&self) -> Vec<Net> {
        self.lock().nets.values().cloned().collect()
    }

    /// Subnets a new network must not overlap: those of every network here, and
    /// every address and route on the host.
    pub(crate) async fn used_subnets(&self) -> Vec<Ipv4Net> {
        let mut used: Vec<Ipv4Net> = self.nets().iter().filter_map(|n| n.subnet).collect();
        if let Ok(h) = link::connect() {
            if let Ok(host) = link::host_networks(&h, None).await {
                used.extend(host);
            }
        }
        used
    }

    /// The alias Berth gives the bridges it makes: which data root made them, so
    /// a later daemon tells a Berth's leftovers from another program's bridges.
    pub(crate) fn owner(&self) -> String {
        format!(
            "{}{}",
            crate::predefined::OWNER_PREFIX,
            self.cfg.data_root.display()
        )
    }

    /// Finds a network by full ID, exact name or unique ID prefix, as dockerd.
    pub fn find(&self, key: &str) -> Result<Net> {
        let st = self.lock();
        if let Some(n) = st.nets.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = st.nets.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let hits: Vec<&Net> = st
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::not_found(format!("network {key} not found"))),
            _ => Err(ApiError::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                hits.len()
            ))),
        }
    }

    /// The `Containers` part of a network's inspect: its running endpoints.
    pub fn endpoints_of(&self, net: &str) -> Vec<(String, String, Endpoint)> {
        let st = self.lock();
        st.sandboxes
            .values()
            .flat_map(|s| {
                s.rec
                    .endpoints
                    .iter()
                    .filter(|e| e.network == net)
                    .map(|e| (s.rec.container.clone(), s.rec.name.clone(), e.clone()))
            })
            .collect()
    }

    /// Networks' names by ID, for `docker ps --filter network=` and the like.
    pub fn name_of(&self, id: &str) -> Option<String> {
        self.lock().nets.get(id).map(|n| n.name.clone())
    }
}

/// An IPv6 network's gateway address on its bridge.
pub(crate) async fn bridge_v6(h: &link::Handle, n: &Net) -> Result<()> {
    let (Some(s), Some(g)) = (n.subnet6, n.gateway6) else {
        return Ok(());
    };
    let gw = ipnet::Ipv6Net::new(g, s.prefix_len()).map_err(sys)?;
    link::ensure_bridge_v6(h, &n.bridge, gw)
        .await
        .map_err(|e| ApiError::system(format!("addressing bridge {}: {e}", n.bridge)))
}
