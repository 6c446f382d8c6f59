//! `Config` (the container's own settings) and the body of `POST /containers/create`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{empty_values, Empty, EndpointSettings, Extra, HostConfig};

/// Go's decoder leaves a field at its zero value for `null`; serde's refuses
/// `null` for anything but an `Option`. Fields that are always written use this.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Docker's `strslice.StrSlice`: a command as an array, or one string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StrSlice(pub Vec<String>);

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StrSlice;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StrSlice, E> {
                Ok(StrSlice(vec![s.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StrSlice, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StrSlice(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl StrSlice {
    /// Docker treats an empty list as unset.
    pub fn non_empty(v: &Option<StrSlice>) -> Option<&[String]> {
        v.as_ref().map(|s| s.0.as_slice()).filter(|s| !s.is_empty())
    }
}

/// `Config.Healthcheck` (durations in nanoseconds, 0 for "inherit").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A container's `Config`. As stored after create (the request merged with the
/// image's), the fields dockerd always shows are always written; the rest only
/// when set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    pub domainname: String,
    #[serde(default, deserialize_with = "nullable")]
    pub user: String,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stderr: bool,
    #[serde(
        default,
        deserialize_with = "empty_values::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub open_stdin: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub stdin_once: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(default)]
    pub cmd: Option<StrSlice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub image: String,
    #[serde(default, deserialize_with = "empty_values::deserialize")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(default)]
    pub entrypoint: Option<StrSlice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    /// Container-wide before API 1.44; the primary endpoint's since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContainerConfig {
    /// `StopSignal` when set to something.
    pub fn stop_signal(&self) -> Option<&str> {
        self.stop_signal.as_deref().filter(|s| !s.is_empty())
    }

    /// The keys of `ExposedPorts` (`80/tcp`).
    pub fn exposed(&self) -> Vec<String> {
        self.exposed_ports
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect()
    }
}

/// `NetworkingConfig` of a create request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// The body of `POST /containers/create`: `Config`'s fields at the top level,
/// with `HostConfig` and `NetworkingConfig` beside them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    pub config: ContainerConfig,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

impl CreateRequest {
    /// Reads a create body, with Go's words for a value of the wrong type.
    pub fn parse(body: &[u8]) -> crate::Result<CreateRequest> {
        #[derive(Deserialize)]
        struct Beside {
            #[serde(rename = "HostConfig", default)]
            host_config: Option<HostConfig>,
            #[serde(rename = "NetworkingConfig", default)]
            networking_config: Option<NetworkingConfig>,
        }
        // Two passes over a few hundred bytes, so each part keeps its own
        // field paths in errors (serde's flatten would lose them).
        let mut config: ContainerConfig = super::decode(body, "ContainerConfigWrapper")?;
        config.extra.remove("HostConfig");
        config.extra.remove("NetworkingConfig");
        let beside: Beside = super::decode(body, "ContainerConfigWrapper")?;
        Ok(CreateRequest {
            config,
            host_config: beside.host_config,
            networking_config: beside.networking_config,
        })
    }
}

/// `State.Health`: the last results of a container's health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub failing_streak: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub log: Vec<HealthLog>,
}

/// One probe's result in `State.Health.Log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    #[serde(default, deserialize_with = "nullable")]
    pub start: String,
    #[serde(default, deserialize_with = "nullable")]
    pub end: String,
    #[serde(default, deserialize_with = "nullable")]
    pub exit_code: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub output: String,
}
