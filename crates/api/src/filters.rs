//! Docker's `filters` query parameter: a JSON object of key to values.
//!
//! Two encodings exist and clients send both: the current `{"key":{"value":true}}`
//! and the legacy `{"key":["value"]}`. Values under one key are alternatives (OR);
//! different keys must all match (AND).

use std::collections::BTreeMap;

use crate::error::ApiError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the query parameter's value. An empty string means no filters.
    pub fn parse(raw: &str) -> Result<Filters, ApiError> {
        if raw.trim().is_empty() {
            return Ok(Filters::default());
        }
        let bad = |e: String| ApiError::invalid(format!("invalid filter: {e}"));
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("filters must be a JSON object".into()))?;
        let mut out = BTreeMap::new();
        for (key, v) in obj {
            let values: Vec<String> = match v {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(format!("values of {key:?} must be strings")))?,
                _ => return Err(bad(format!("invalid value for {key:?}"))),
            };
            out.insert(key.clone(), values);
        }
        Ok(Filters(out))
    }

    /// Refuses keys not in `allowed`, with Docker's message.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for key in self.0.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{key}'")));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values given for `key` (empty if the key is absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The `until` filter of the prune endpoints as a Unix time (see [`parse_until`]).
    pub fn until(&self) -> Result<Option<i64>, ApiError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.get("until")
            .first()
            .map(|u| parse_until(u, now))
            .transpose()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// True when `key` is absent, or when any of its values satisfies `pred`.
    pub fn any_or_absent(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(values) => values.iter().any(|v| pred(v)),
        }
    }

    pub fn insert(&mut self, key: &str, value: &str) {
        self.0
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
}

/// Matches a `label` filter value (`key` or `key=value`) against a label map.
pub fn label_matches(filter: &str, labels: &BTreeMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_encodings() {
        let a = Filters::parse(r#"{"type":{"container":true,"image":false}}"#).expect("map form");
        assert_eq!(a.get("type"), ["container"]);
        let b = Filters::parse(r#"{"type":["container","image"]}"#).expect("list form");
        assert_eq!(b.get("type"), ["container", "image"]);
        assert!(Filters::parse("").expect("empty").is_empty());
    }

    #[test]
    fn rejects_malformed_and_unknown() {
        assert!(Filters::parse("{").is_err());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse(r#"{"a":[1]}"#).is_err());
        let f = Filters::parse(r#"{"bogus":["x"]}"#).expect("parse");
        let e = f.validate(&["type"]).expect_err("unknown key");
        assert_eq!(e.message, "invalid filter 'bogus'");
    }

    #[test]
    fn labels() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(label_matches("a", &l));
        assert!(label_matches("a=1", &l));
        assert!(!label_matches("a=2", &l));
        assert!(!label_matches("b", &l));
    }
}

/// `until` (prune filters, `--until`) as dockerd takes it: a Unix timestamp, an
/// RFC 3339 time, or a duration (`10m`, `1h30m`-style units s/m/h) back from `now`.
pub fn parse_until(s: &str, now: i64) -> Result<i64, ApiError> {
    if let Ok(f) = s.parse::<f64>() {
        return Ok(f as i64);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let bad = || ApiError::invalid(format!("invalid until: {s}"));
    let mut total = 0f64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match ch {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(now - total as i64)
}

#[cfg(test)]
mod until_tests {
    #[test]
    fn until_forms() {
        assert_eq!(super::parse_until("1700000000", 0).expect("ts"), 1700000000);
        assert_eq!(
            super::parse_until("1h30m", 10_000).expect("dur"),
            10_000 - 5400
        );
        assert_eq!(
            super::parse_until("2023-01-01T00:00:00Z", 0).expect("rfc"),
            1672531200
        );
        assert!(super::parse_until("soon", 0).is_err());
    }
}
