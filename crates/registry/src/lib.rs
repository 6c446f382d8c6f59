//! A registry client for pull and push, on `oci-client`.
//!
//! oci-client gives us auth (anonymous bearer tokens, basic), the v2 URL scheme and
//! blob streaming; this crate adds what a daemon needs on top: choosing plain HTTP
//! for insecure registries, resolving manifest lists by platform, verifying each
//! blob's digest and size while it streams, and retrying transient failures.

mod identity;
mod manifest;
mod mirrors;
mod verify;

use std::net::IpAddr;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
pub use oci_client::Reference as RemoteRef;
use serde::Deserialize;

pub use manifest::{Descriptor, Platform, Resolved};
pub use mirrors::validate_mirror;
pub use verify::Verified;

/// Registry errors, with Docker's wording where clients look for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Manifest(String),
    #[error("{0}")]
    Verify(String),
    #[error("{0}")]
    Transport(String),
}

impl Error {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transport(_))
    }
}

pub(crate) fn map_oci(e: oci_client::errors::OciDistributionError, what: &str) -> Error {
    use oci_client::errors::OciDistributionError as E;
    let msg = e.to_string();
    match e {
        E::ImageManifestNotFoundError(_) => Error::NotFound(format!("manifest unknown: {what}")),
        E::AuthenticationFailure(m) => Error::Unauthorized(format!("unauthorized: {m}")),
        E::UnauthorizedError { url } => {
            Error::Unauthorized(format!("unauthorized: authentication required for {url}"))
        }
        E::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|x| format!("{:?}", x.code))
                .collect();
            let text = envelope
                .errors
                .iter()
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            if codes.iter().any(|c| c.contains("Unknown")) {
                Error::NotFound(format!("{what}: {text}"))
            } else if codes
                .iter()
                .any(|c| c.contains("Unauthorized") || c.contains("Denied"))
            {
                Error::Unauthorized(format!("{what}: {text}"))
            } else {
                Error::Transport(format!("{what}: {text}"))
            }
        }
        E::ServerError { code: 404, .. } => Error::NotFound(format!("{what}: not found")),
        E::ServerError { code, .. } if code == 401 || code == 403 => Error::Unauthorized(msg),
        E::ServerError { .. } | E::IoError(_) | E::RequestError(_) => Error::Transport(msg),
        _ => Error::Manifest(msg),
    }
}

/// Credentials from the `X-Registry-Auth` header (base64url JSON, as the CLI sends).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl AuthConfig {
    /// Decodes the header; an empty or `{}` header is anonymous.
    pub fn from_header(h: Option<&str>) -> Result<AuthConfig, Error> {
        let Some(h) = h.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(AuthConfig::default());
        };
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(h)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
            })
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
            .map_err(|e| Error::Unauthorized(format!("invalid X-Registry-Auth header: {e}")))?;
        let mut a: AuthConfig = serde_json::from_slice(&raw)
            .map_err(|e| Error::Unauthorized(format!("invalid X-Registry-Auth header: {e}")))?;
        if a.username.is_empty() && !a.auth.is_empty() {
            if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(&a.auth) {
                if let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                    a.username = u.to_string();
                    a.password = p.to_string();
                }
            }
        }
        Ok(a)
    }

    fn to_oci(&self) -> RegistryAuth {
        if !self.registry_token.is_empty() {
            RegistryAuth::Bearer(self.registry_token.clone())
        } else if !self.username.is_empty() {
            RegistryAuth::Basic(self.username.clone(), self.password.clone())
        } else {
            RegistryAuth::Anonymous
        }
    }
}

/// Settings of the client.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `--insecure-registry` values: `host[:port]` or CIDRs.
    pub insecure: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// `--registry-mirror` URLs for Hub, checked by [`validate_mirror`].
    pub mirrors: Vec<String>,
}

/// The registry client.
pub struct Client {
    https: oci_client::Client,
    http: oci_client::Client,
    /// For the one request oci-client has no call for: a credential check on `/v2/`.
    plain: reqwest::Client,
    /// Replaced whole by a configuration reload.
    config: std::sync::RwLock<Config>,
}

fn oci_config(protocol: ClientProtocol) -> ClientConfig {
    ClientConfig {
        protocol,
        // We resolve indexes ourselves, by the requested platform.
        platform_resolver: None,
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(120)),
        user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

impl Client {
    pub fn new(config: Config) -> Client {
        // reqwest's rustls needs a process-wide crypto provider; ring builds quickly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            https: oci_client::Client::new(oci_config(ClientProtocol::Https)),
            http: oci_client::Client::new(oci_config(ClientProtocol::Http)),
            plain: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(30))
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            config: std::sync::RwLock::new(config),
        }
    }

    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A reload's new insecure registries and mirrors; sessions made from now on
    /// use them.
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Where to look for `r`: for a Hub name each mirror in turn, then Hub.
    pub fn endpoints(&self, r: &RemoteRef) -> Vec<RemoteRef> {
        mirrors::endpoints(&self.config().mirrors, r)
    }

    /// Whether `host` (`name[:port]`) is spoken to over plain HTTP: loopback always,
    /// plus `--insecure-registry` hosts and CIDRs, as dockerd, and mirrors given
    /// as `http://`.
    pub fn is_insecure(&self, host: &str) -> bool {
        let config = self.config();
        if config
            .mirrors
            .iter()
            .filter_map(|m| mirrors::host_of(m))
            .any(|(h, plain)| plain && h == host)
        {
            return true;
        }
        let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = name.parse().ok();
        if name == "localhost" || ip.is_some_and(|i| i.is_loopback()) {
            return true;
        }
        config.insecure.iter().any(|entry| {
            if entry == host || entry == name {
                return true;
            }
            match (entry.split_once('/'), ip) {
                (Some((net, bits)), Some(ip)) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }

    /// Streams the body of `url` (for `docker import URL`). Only http and https.
    pub async fn fetch(
        &self,
        url: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>, Error> {
        use futures_util::StreamExt;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Manifest(format!("unsupported URL scheme: {url}")));
        }
        let resp = self
            .plain
            .get(url)
            .send()
            .await
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            let s = resp.status();
            return Err(if s == reqwest::StatusCode::NOT_FOUND {
                Error::NotFound(format!("{url}: {s}"))
            } else {
                Error::Transport(format!("{url}: {s}"))
            });
        }
        Ok(resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed())
    }

    /// A session for one operation on the registry of `r` with `auth`. Credentials
    /// never leak between sessions: oci-client caches credentials and tokens per
    /// client, so a session with credentials gets a client of its own.
    pub fn session(&self, r: &RemoteRef, auth: &AuthConfig) -> Session {
        let insecure = self.is_insecure(r.registry());
        let auth = auth.to_oci();
        let client = match (&auth, insecure) {
            (RegistryAuth::Anonymous, true) => self.http.clone(),
            (RegistryAuth::Anonymous, false) => self.https.clone(),
            (_, true) => oci_client::Client::new(oci_config(ClientProtocol::Http)),
            (_, false) => oci_client::Client::new(oci_config(ClientProtocol::Https)),
        };
        Session { client, auth }
    }

    /// A session for `r` as [`Client::session`], with an identity token
    /// (`identitytoken`) first traded for an access token to the repository,
    /// for pulling or, with `push`, pushing too.
    pub async fn session_for(
        &self,
        r: &RemoteRef,
        auth: &AuthConfig,
        push: bool,
    ) -> Result<Session, Error> {
        if auth.identity_token.is_empty() || !auth.registry_token.is_empty() {
            return Ok(self.session(r, auth));
        }
        let host = match r.registry() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        let scheme = if self.is_insecure(host) {
            "http"
        } else {
            "https"
        };
        let token = identity::exchange(
            &self.plain,
            &format!("{scheme}://{host}"),
            r.repository(),
            push,
            &auth.identity_token,
        )
        .await?;
        let with_token = AuthConfig {
            registry_token: token,
            ..auth.clone()
        };
        Ok(self.session(r, &with_token))
    }

    /// Checks credentials against registry `host` (`POST /auth`), as dockerd's
    /// login does: `GET /v2/`, answering a Basic challenge with the credentials, or
    /// fetching a bearer token with them.
    pub async fn login(&self, host: &str, auth: &AuthConfig) -> Result<(), Error> {
        let host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let scheme = if self.is_insecure(host) {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{host}/v2/");
        let failed = |status: reqwest::StatusCode| {
            Error::Unauthorized(format!(
                "login attempt to {url} failed with status: {status}"
            ))
        };
        let resp = self
            .plain
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Err(failed(resp.status()));
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if challenge.starts_with("basic") {
            let resp = self
                .plain
                .get(&url)
                .basic_auth(&auth.username, Some(&auth.password))
                .send()
                .await
                .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
            return if resp.status().is_success() {
                Ok(())
            } else {
                Err(failed(resp.status()))
            };
        }
        // Bearer: the token service checks the credentials.
        let r = RemoteRef::with_tag(
            host.to_string(),
            "library/hello-world".into(),
            "latest".into(),
        );
        self.session(&r, auth)
            .client
            .auth(&r, &auth.to_oci(), oci_client::RegistryOperation::Pull)
            .await
            .map(drop)
            .map_err(|_| failed(reqwest::StatusCode::UNAUTHORIZED))
    }
}

/// One operation's connection to a registry, with its credentials.
pub struct Session {
    client: oci_client::Client,
    auth: RegistryAuth,
}

impl Session {
    /// Fetches the manifest `r` names and, through a list or index, the one for
    /// `platform`, with its config.
    pub async fn resolve(&self, r: &RemoteRef, platform: &Platform) -> Result<Resolved, Error> {
        manifest::resolve(&self.client, r, &self.auth, platform).await
    }

    /// Streams blob `d` of repository `r`; the stream fails at its end if the bytes do
    /// not match the descriptor's digest and size.
    pub async fn blob(&self, r: &RemoteRef, d: &Descriptor) -> Result<Verified, Error> {
        let desc = oci_client::manifest::OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            ..Default::default()
        };
        let s = self
            .client
            .pull_blob_stream(r, &desc)
            .await
            .map_err(|e| map_oci(e, &d.digest))?;
        Ok(Verified::new(s.stream, &d.digest, d.size))
    }

    /// Whether repository `r` has blob `digest`. Authenticates for pull and push, so
    /// the uploads that follow find their tokens.
    pub async fn blob_exists(&self, r: &RemoteRef, digest: &str) -> Result<bool, Error> {
        let c = &self.client;
        c.store_auth_if_needed(r.resolve_registry(), &self.auth)
            .await;
        for op in [
            oci_client::RegistryOperation::Pull,
            oci_client::RegistryOperation::Push,
        ] {
            c.auth(r, &self.auth, op)
                .await
                .map_err(|e| map_oci(e, r.registry()))?;
        }
        c.blob_exists(r, digest)
            .await
            .map_err(|e| map_oci(e, digest))
    }

    /// Uploads a blob from a stream of known digest.
    pub async fn push_blob<S>(
        &self,
        r: &RemoteRef,
        digest: &str,
        size: u64,
        data: S,
    ) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, oci_client::errors::OciDistributionError>> + Send + 'static,
    {
        self.client
            .push_blob_stream(r, data, digest, Some(size))
            .await
            .map(drop)
            .map_err(|e| map_oci(e, digest))
    }

    /// Mounts a blob from another repository of the same registry.
    pub async fn mount_blob(
        &self,
        r: &RemoteRef,
        from: &RemoteRef,
        digest: &str,
    ) -> Result<(), Error> {
        self.client
            .mount_blob(r, from, digest)
            .await
            .map_err(|e| map_oci(e, digest))
    }

    /// Uploads a manifest; returns its digest.
    pub async fn push_manifest(
        &self,
        r: &RemoteRef,
        raw: Vec<u8>,
        media_type: &str,
    ) -> Result<String, Error> {
        let ct = media_type
            .parse()
            .map_err(|_| Error::Manifest(format!("bad media type {media_type}")))?;
        let d = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
        );
        self.client
            .push_manifest_raw(r, raw, ct)
            .await
            .map_err(|e| map_oci(e, "manifest"))?;
        Ok(d)
    }
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        let c = Client::new(Config {
            insecure: vec!["10.1.0.0/16".into(), "myreg:5000".into()],
            ..Default::default()
        });
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("10.1.2.3:443"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(c.is_insecure("myreg:5000"));
        assert!(!c.is_insecure("registry-1.docker.io"));
    }

    #[test]
    fn auth_header_decodes() {
        let raw = base64::engine::general_purpose::URL_SAFE
            .encode(br#"{"username":"u","password":"p","serveraddress":"r"}"#);
        let a = AuthConfig::from_header(Some(&raw)).expect("decode");
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert!(AuthConfig::from_header(None)
            .expect("none")
            .username
            .is_empty());
        assert!(AuthConfig::from_header(Some("!!!")).is_err());
    }
}
