//! The embedded DNS server of containers on user-defined networks: names,
//! aliases and links resolved per container.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_netdriver::dns;

use crate::{Endpoint, Networks};

impl Networks {
    pub(crate) fn serve_dns(
        self: &Arc<Self>,
        id: &str,
        ns: &Path,
        upstream: &[SocketAddr],
    ) -> Result<dns::Server> {
        let me = Arc::downgrade(self);
        let id = id.to_string();
        let lookup: dns::Lookup = Arc::new(move |name: &str| me.upgrade()?.lookup(&id, name));
        let upstream = if upstream.is_empty() {
            self.upstream.clone()
        } else {
            upstream.to_vec()
        };
        dns::serve(ns, lookup, upstream).map_err(|e| ApiError::system(format!("embedded DNS: {e}")))
    }

    /// Addresses for `name` as seen from container `from`: containers (by name,
    /// alias or short ID, optionally `.network`) on its user-defined networks.
    pub(crate) fn lookup(&self, from: &str, name: &str) -> Option<Vec<IpAddr>> {
        let st = self.lock();
        let mine: Vec<&Endpoint> = st.sandboxes.get(from)?.rec.endpoints.iter().collect();
        let mut out = Vec::new();
        for my in mine {
            let Some(net) = st.nets.get(&my.network) else {
                continue;
            };
            if net.predefined() {
                continue;
            }
            let bare = name
                .strip_suffix(&format!(".{}", net.name.to_ascii_lowercase()))
                .unwrap_or(name);
            // A link's alias stands for its target, for this container only.
            let linked = my.links.iter().find_map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                alias
                    .eq_ignore_ascii_case(bare)
                    .then(|| target.trim_start_matches('/'))
            });
            let bare = linked.unwrap_or(bare);
            for sb in st.sandboxes.values() {
                for ep in sb.rec.endpoints.iter().filter(|e| e.network == net.id) {
                    let hit = sb.rec.name.eq_ignore_ascii_case(bare)
                        || sb.rec.container.get(..12).is_some_and(|s| s == bare)
                        || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(bare));
                    if hit {
                        let v6 = ep.ip6.map(IpAddr::V6);
                        for ip in std::iter::once(IpAddr::V4(ep.ip)).chain(v6) {
                            if !out.contains(&ip) {
                                out.push(ip);
                            }
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }
}
