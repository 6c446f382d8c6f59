//! Docker's event message and the `/events` filter rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::filters::{label_matches, Filters};

/// The actor of an event: the object's ID and attributes such as `name` or `image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in the shape dockerd sends on `GET /events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Legacy fields still sent for container and image events (API < 1.52).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// Keys `GET /events` accepts in `filters`.
pub const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

impl Event {
    /// A new event stamped with `time_nano` (nanoseconds since the epoch).
    pub fn new(
        typ: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
        time_nano: i64,
    ) -> Event {
        // dockerd fills the legacy fields for containers and images only.
        let legacy = typ == "container" || typ == "image";
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if typ == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            typ: typ.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".to_string(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }

    /// Whether this event passes `filters`, by dockerd's rules.
    pub fn matches(&self, f: &Filters) -> bool {
        let name = self.actor.attributes.get("name").map(String::as_str);
        let id_or_name = |v: &str| self.actor.id == v || name == Some(v);
        // Actions like "exec_start: sh -c ..." match on the part before the colon too.
        let action_base = self.action.split(':').next().unwrap_or(&self.action);
        let of_type = |t: &str, v: &str| self.typ == t && id_or_name(v);
        f.any_or_absent("event", |v| v == self.action || v == action_base)
            && f.any_or_absent("type", |v| v == self.typ)
            && f.any_or_absent("scope", |v| v == self.scope)
            && f.any_or_absent("label", |v| label_matches(v, &self.actor.attributes))
            && f.any_or_absent("container", |v| {
                self.typ == "container" && (self.actor.id.starts_with(v) || name == Some(v))
            })
            && f.any_or_absent("image", |v| self.matches_image(v))
            && [
                "volume", "network", "daemon", "plugin", "node", "service", "secret", "config",
            ]
            .iter()
            .all(|t| f.any_or_absent(t, |v| of_type(t, v)))
    }

    fn matches_image(&self, v: &str) -> bool {
        let image = match self.typ.as_str() {
            "container" => self.actor.attributes.get("image").map(String::as_str),
            "image" => Some(self.actor.id.as_str()),
            _ => return false,
        };
        let Some(image) = image else { return false };
        let strip_tag = |s: &str| -> String {
            // "busybox:latest" and "busybox" name the same repository; keep registry ports.
            match s.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
                _ => s.to_string(),
            }
        };
        image == v
            || self.actor.attributes.get("name").is_some_and(|n| n == v)
            || strip_tag(image) == strip_tag(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let a = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Event::new(typ, action, id, a, 1_700_000_000_123_456_789)
    }

    #[test]
    fn serializes_like_dockerd() {
        let e = ev(
            "container",
            "start",
            "abc",
            &[("image", "busybox"), ("name", "c1")],
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "start");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["name"], "c1");
        assert_eq!(v["status"], "start");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_123_456_789i64);
        assert_eq!(v["scope"], "local");
        let d = serde_json::to_value(ev("daemon", "reload", "x", &[])).expect("json");
        assert!(d.get("status").is_none());
    }

    #[test]
    fn filters_follow_docker_rules() {
        let e = ev(
            "container",
            "exec_start: sh",
            "abcdef",
            &[
                ("image", "busybox:latest"),
                ("name", "web"),
                ("tier", "front"),
            ],
        );
        let f = |s: &str| Filters::parse(s).expect("filters");
        assert!(e.matches(&f("")));
        assert!(e.matches(&f(r#"{"type":["container"]}"#)));
        assert!(!e.matches(&f(r#"{"type":["image"]}"#)));
        assert!(e.matches(&f(r#"{"event":["exec_start"]}"#)));
        assert!(e.matches(&f(r#"{"container":["web"]}"#)));
        assert!(e.matches(&f(r#"{"container":["abc"]}"#)));
        assert!(!e.matches(&f(r#"{"container":["db"]}"#)));
        assert!(e.matches(&f(r#"{"image":["busybox"]}"#)));
        assert!(e.matches(&f(r#"{"label":["tier=front"]}"#)));
        assert!(!e.matches(&f(r#"{"label":["tier=back"]}"#)));
        assert!(e.matches(&f(
            r#"{"type":["image","container"],"event":["die","exec_start"]}"#
        )));
        assert!(!e.matches(&f(r#"{"network":["n1"]}"#)));
    }
}
