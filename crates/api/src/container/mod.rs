//! A container's configuration as the API carries it and the daemon stores it:
//! `Config`, `HostConfig`, `NetworkingConfig` and `NetworkSettings`, with Docker's
//! field names.
//!
//! Fields a client can leave out are `Option`s and are written back only when set,
//! so a stored record and an inspect answer show what the client sent (as they did
//! when these were kept as raw JSON). Fields this crate does not know (newer API
//! versions, options of other daemons) are kept in `extra` and written back
//! unchanged, so nothing a client sent is lost on a round trip.

mod config;
mod decode;
mod exec;
mod host;
mod inspect;
mod netsettings;

pub use config::{
    nullable, ContainerConfig, CreateRequest, Health, HealthConfig, HealthLog, NetworkingConfig,
    StrSlice,
};
pub use decode::{decode, decode_optional};
pub use exec::{ExecCreate, ExecStart};
pub use host::{
    BindOptions, DeviceMapping, DeviceRequest, DriverConfig, HostConfig, LogConfig, Mount,
    RestartPolicy, ThrottleDevice, TmpfsOptions, Ulimit, VolumeOptions, WeightDevice,
};
pub use inspect::{
    ContainerInspect, ContainerState, ContainerSummary, GraphDriver, MountView, PortSummary,
    SummaryHostConfig, SummaryNetworkSettings,
};
pub use netsettings::{
    Address, EndpointIpamConfig, EndpointSettings, NetworkSettings, PortBinding, PortMap,
};

use std::collections::BTreeMap;

/// Fields of a JSON object this crate has no type for, kept as they came.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// `{}`: the value of each key in `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Empty {}

/// Lenient `{}` values: older clients and images sometimes write `null` or other
/// values where Docker only reads the key.
pub(crate) mod empty_values {
    use super::Empty;
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BTreeMap<String, Empty>>, D::Error> {
        let m: Option<BTreeMap<String, serde::de::IgnoredAny>> = Option::deserialize(d)?;
        Ok(m.map(|m| m.into_keys().map(|k| (k, Empty {})).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What Berth showed in inspect before these types, for a container made by
    /// the docker CLI 28 with most of `docker create`'s options, a running
    /// container's `NetworkSettings` and a stopped one's.
    const BEFORE: &str = include_str!("testdata/inspect-before-types.json");

    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
        let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        serde_json::to_value(typed).unwrap_or_default()
    }

    #[test]
    fn inspect_shows_what_it_showed_before_the_types() {
        let before: Value = serde_json::from_str(BEFORE).unwrap_or_default();
        assert_eq!(
            round_trip::<ContainerConfig>(&before["Config"]),
            before["Config"]
        );
        assert_eq!(
            round_trip::<HostConfig>(&before["HostConfig"]),
            before["HostConfig"]
        );
        for k in ["NetworkSettings", "StoppedNetworkSettings"] {
            assert_eq!(round_trip::<NetworkSettings>(&before[k]), before[k], "{k}");
        }
    }
}
