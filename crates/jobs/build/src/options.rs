//! `POST /build`'s query parameters, read as dockerd reads them
//! (`api/server/router/build/build_routes.go`).

use std::collections::BTreeMap;

use berth_engine::Args;
use serde_json::{json, Map, Value};

use crate::error::{BuildError, Result};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tags: Vec<String>,
    pub dockerfile: String,
    /// `null` values leave an ARG's default in place.
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: String,
    pub no_cache: bool,
    pub pull: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub quiet: bool,
    pub cache_from: Vec<String>,
    pub platform: String,
    pub remote: String,
    /// What every RUN container's HostConfig gets.
    pub host_config: Map<String, Value>,
    /// `X-Registry-Config`: registry → credentials, for the pulls of FROM.
    pub registry_config: BTreeMap<String, Value>,
}

fn json_param<T: serde::de::DeserializeOwned + Default>(args: &Args, name: &str) -> Result<T> {
    match args.str(name).filter(|s| !s.is_empty()) {
        None => Ok(T::default()),
        Some(s) => {
            serde_json::from_str(s).map_err(|e| BuildError::Invalid(format!("invalid {name}: {e}")))
        }
    }
}

/// An integer as dockerd's form parser reads it: garbage is 0.
fn int(args: &Args, name: &str) -> i64 {
    args.str(name)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The header's map; an unreadable one counts as none (dockerd ignores it too).
fn registry_config(h: Option<&str>) -> BTreeMap<String, Value> {
    use base64::Engine as _;
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return BTreeMap::new();
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim()))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h.trim()))
        .unwrap_or_default();
    serde_json::from_slice(&raw).unwrap_or_default()
}

impl Options {
    /// The `X-Registry-Auth` value for pulling `image`, from `X-Registry-Config`.
    pub fn auth_for(&self, image: &str) -> Option<String> {
        use base64::Engine as _;
        let host = berth_graph::Reference::parse(image).ok()?.domain;
        let keys: Vec<String> = if host == "docker.io" {
            vec![
                "https://index.docker.io/v1/".into(),
                "docker.io".into(),
                "index.docker.io".into(),
            ]
        } else {
            vec![
                host.clone(),
                format!("https://{host}"),
                format!("http://{host}"),
            ]
        };
        keys.iter()
            .find_map(|k| self.registry_config.get(k))
            .and_then(|v| serde_json::to_vec(v).ok())
            .map(|b| base64::engine::general_purpose::URL_SAFE.encode(b))
    }

    pub fn parse(args: &Args) -> Result<Options> {
        if let Some(v) = args.str("version").filter(|v| !v.is_empty()) {
            if v != "1" && v != "2" {
                return Err(BuildError::Invalid(format!(
                    "unsupported builder version {v:?}"
                )));
            }
            if v == "2" {
                return Err(BuildError::Invalid(
                    "BuildKit is not supported by this daemon: build with DOCKER_BUILDKIT=0 (the classic builder)".into(),
                ));
            }
        }
        if args.bool("squash") {
            return Err(BuildError::Invalid(
                "squash is only supported with experimental mode".into(),
            ));
        }
        if let Some(i) = args
            .str("isolation")
            .filter(|i| !i.is_empty() && *i != "default")
        {
            return Err(BuildError::Invalid(format!(
                "Isolation {i} is not supported on linux"
            )));
        }
        if args
            .str("securityopt")
            .is_some_and(|s| !s.is_empty() && s != "null" && s != "[]")
        {
            return Err(BuildError::Invalid(
                "The daemon on this platform does not support setting security options on build"
                    .into(),
            ));
        }
        if args.str("session").is_some_and(|s| !s.is_empty()) {
            return Err(BuildError::Invalid(
                "client-session is not supported by the classic builder".into(),
            ));
        }
        let mut tags = Vec::new();
        for t in args.all("t") {
            if t.is_empty() {
                continue;
            }
            let r = berth_graph::Reference::parse_tagged(t)
                .map_err(|e| BuildError::Invalid(e.to_string()))?;
            if r.digest.is_some() {
                return Err(BuildError::Invalid(
                    "build tag cannot contain a digest".into(),
                ));
            }
            let name = r.familiar();
            if !tags.contains(&name) {
                tags.push(name);
            }
        }
        let shm = match args.str("shmsize").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| BuildError::Invalid(format!("invalid shmsize: {s}")))?,
        };
        let mut hc = Map::new();
        hc.insert("LogConfig".into(), json!({"Type": "none", "Config": {}}));
        let network = args.str("networkmode").unwrap_or("");
        hc.insert(
            "NetworkMode".into(),
            json!(if network.is_empty() || network == "default" {
                "default"
            } else {
                network
            }),
        );
        for (param, field) in [
            ("memory", "Memory"),
            ("memswap", "MemorySwap"),
            ("cpushares", "CpuShares"),
            ("cpuperiod", "CpuPeriod"),
            ("cpuquota", "CpuQuota"),
        ] {
            let v = int(args, param);
            if v != 0 {
                hc.insert(field.into(), json!(v));
            }
        }
        if shm != 0 {
            hc.insert("ShmSize".into(), json!(shm));
        }
        for (param, field) in [
            ("cpusetcpus", "CpusetCpus"),
            ("cpusetmems", "CpusetMems"),
            ("cgroupparent", "CgroupParent"),
        ] {
            if let Some(v) = args.str(param).filter(|v| !v.is_empty()) {
                hc.insert(field.into(), json!(v));
            }
        }
        let extra: Vec<String> = args
            .all("extrahosts")
            .iter()
            .filter(|h| !h.is_empty())
            .cloned()
            .collect();
        if !extra.is_empty() {
            hc.insert("ExtraHosts".into(), json!(extra));
        }
        let ulimits: Value = json_param(args, "ulimits")?;
        if ulimits.as_array().is_some_and(|a| !a.is_empty()) {
            hc.insert("Ulimits".into(), ulimits);
        }
        let rm = args.str("rm").is_none() || args.bool("rm");
        let force_rm = args.bool("forcerm");
        let platform = args.str("platform").unwrap_or("").to_string();
        if !platform.is_empty() {
            crate::platform::check(&platform).map_err(BuildError::Invalid)?;
        }
        Ok(Options {
            tags,
            dockerfile: args.str("dockerfile").unwrap_or("").to_string(),
            build_args: json_param(args, "buildargs")?,
            labels: json_param(args, "labels")?,
            target: args.str("target").unwrap_or("").to_string(),
            no_cache: args.bool("nocache"),
            pull: args.bool("pull"),
            rm: rm || force_rm,
            force_rm,
            quiet: args.bool("q"),
            cache_from: json_param(args, "cachefrom")?,
            platform,
            remote: args.str("remote").unwrap_or("").to_string(),
            host_config: hc,
            registry_config: registry_config(args.header("X-Registry-Config")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ApiVersion;

    #[test]
    fn defaults_and_docker_bools() {
        let o = Options::parse(&Args::new(ApiVersion::MAX)).expect("defaults");
        assert!(o.rm && !o.force_rm && !o.no_cache);
        let a = Args::new(ApiVersion::MAX)
            .param("rm", "False")
            .param("nocache", "True")
            .param("t", "x")
            .param("t", "x:latest")
            .param("t", "y:1")
            .param("buildargs", r#"{"A":"1","B":null}"#)
            .param("memory", "junk");
        let o = Options::parse(&a).expect("parse");
        assert!(!o.rm && o.no_cache);
        assert_eq!(o.tags, ["x:latest", "y:1"]);
        assert_eq!(o.build_args.get("B"), Some(&None));
        assert!(!o.host_config.contains_key("Memory"));
    }

    #[test]
    fn registry_credentials_follow_the_image() {
        use base64::Engine as _;
        let cfg = r#"{"127.0.0.1:5000":{"username":"u","password":"p"},"https://index.docker.io/v1/":{"username":"hub"}}"#;
        let mut a = Args::new(ApiVersion::MAX);
        a.push_header(
            "X-Registry-Config",
            &base64::engine::general_purpose::URL_SAFE.encode(cfg),
        );
        let o = Options::parse(&a).expect("parse");
        let dec = |s: Option<String>| {
            let b = base64::engine::general_purpose::URL_SAFE
                .decode(s.expect("auth"))
                .expect("b64");
            serde_json::from_slice::<Value>(&b).expect("json")
        };
        assert_eq!(dec(o.auth_for("127.0.0.1:5000/a/b:1"))["username"], "u");
        assert_eq!(dec(o.auth_for("busybox"))["username"], "hub");
        assert!(o.auth_for("quay.io/x").is_none());
    }

    #[test]
    fn refusals() {
        let bad =
            |k: &str, v: &str| Options::parse(&Args::new(ApiVersion::MAX).param(k, v)).is_err();
        assert!(bad(
            "t",
            "x@sha256:0123456789012345678901234567890123456789012345678901234567890123"
        ));
        assert!(bad("shmsize", "big"));
        assert!(bad("version", "3"));
        assert!(bad("platform", "foobar"));
        assert!(bad("squash", "1"));
        assert!(!bad("forcerm", "1"));
    }
}
