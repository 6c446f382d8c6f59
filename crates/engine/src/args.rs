//! A job's arguments: the API version, path and query parameters, selected headers
//! and the request body, with typed accessors that fail with Docker's 400 errors.

use std::collections::BTreeMap;
use std::pin::Pin;

use berth_api::{ApiError, ApiVersion, Result};
use bytes::Bytes;
use futures_util::Stream;
use serde::de::DeserializeOwned;

pub type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The request body as a job receives it.
#[derive(Default)]
pub enum Body {
    #[default]
    Empty,
    /// Read whole (JSON bodies, bounded by the server).
    Bytes(Bytes),
    /// Passed through as it arrives (image load, archive upload, build context).
    Stream(BodyStream),
}

#[derive(Default)]
pub struct Args {
    /// The API version the client asked for (from the `/vX.Y` prefix, else the newest).
    pub version: ApiVersion,
    params: BTreeMap<String, Vec<String>>,
    headers: BTreeMap<String, String>,
    pub body: Body,
}

impl Args {
    pub fn new(version: ApiVersion) -> Args {
        Args {
            version,
            params: BTreeMap::new(),
            headers: BTreeMap::new(),
            body: Body::Empty,
        }
    }

    /// Adds a path or query parameter; repeated names keep every value.
    pub fn param(mut self, name: &str, value: &str) -> Args {
        self.push_param(name, value);
        self
    }

    pub fn push_param(&mut self, name: &str, value: &str) {
        self.params
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }

    /// Adds a header (names are case-insensitive; stored lower-case).
    pub fn push_header(&mut self, name: &str, value: &str) {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_string());
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The first value of `name`, if given.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// A required parameter (path parameters always are).
    pub fn required(&self, name: &str) -> Result<&str> {
        self.str(name)
            .ok_or_else(|| ApiError::invalid(format!("missing parameter: {name}")))
    }

    /// Every value given for `name`.
    pub fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A boolean the way dockerd reads one: absent, "", "0", "no", "false" and "none"
    /// are false; anything else is true.
    pub fn bool(&self, name: &str) -> bool {
        match self.str(name) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// An integer parameter; absent or empty is `None`, garbage is a 400.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.str(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::invalid(format!("invalid value for {name}: {v:?} is not an integer"))
            }),
        }
    }

    /// The parameters as `GET /berth/jobs` shows them: build arguments and
    /// anything named like a credential replaced, headers (where registry
    /// credentials travel) and the body left out.
    pub fn public_params(&self) -> BTreeMap<String, Vec<String>> {
        self.params
            .iter()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = ["buildargs", "auth", "password", "secret", "token"]
                    .iter()
                    .any(|s| lower.contains(s));
                let v = if secret {
                    vec!["<redacted>".to_string(); v.len()]
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The whole body as bytes (empty if there was none).
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(b) => b,
            _ => &[],
        }
    }

    /// The body decoded as JSON. An empty body decodes as `null` (dockerd treats a
    /// missing body as an empty config where one is optional).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let raw = self.body_bytes();
        let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            raw
        };
        serde_json::from_slice(raw)
            .map_err(|e| ApiError::invalid(format!("invalid JSON in request body: {e}")))
    }

    /// Takes the body out, leaving `Empty`.
    pub fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_read_like_dockerd() {
        let a = Args::new(ApiVersion::MAX)
            .param("a", "1")
            .param("b", "false")
            .param("c", "")
            .param("d", "True")
            .param("e", "none");
        assert!(a.bool("a"));
        assert!(!a.bool("b"));
        assert!(!a.bool("c"));
        assert!(a.bool("d"));
        assert!(!a.bool("e"));
        assert!(!a.bool("absent"));
    }

    #[test]
    fn ints_reject_garbage() {
        let a = Args::new(ApiVersion::MAX).param("n", "12").param("x", "1z");
        assert_eq!(a.int("n").expect("int"), Some(12));
        assert_eq!(a.int("none").expect("absent"), None);
        assert_eq!(a.int("x").expect_err("bad").status_code(), 400);
    }

    #[test]
    fn json_body_errors_are_400() {
        let mut a = Args::new(ApiVersion::MAX);
        a.body = Body::Bytes(Bytes::from_static(b"{not json"));
        let e = a.json::<serde_json::Value>().expect_err("bad json");
        assert_eq!(e.status_code(), 400);
        a.body = Body::Empty;
        assert_eq!(a.json::<Option<u8>>().expect("empty is null"), None);
    }

    #[test]
    fn repeated_params_and_headers() {
        let mut a = Args::new(ApiVersion::MAX)
            .param("names", "a")
            .param("names", "b");
        a.push_header("X-Registry-Auth", "abc");
        assert_eq!(a.all("names"), ["a", "b"]);
        assert_eq!(a.str("names"), Some("a"));
        assert_eq!(a.header("x-registry-auth"), Some("abc"));
    }
}
