//! Manifests, manifest lists and OCI indexes, resolved to one image by platform.

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::{map_oci, Error, RemoteRef};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/// Image configs are small; refuse absurd ones rather than buffer them.
const MAX_CONFIG: i64 = 16 * 1024 * 1024;

/// The platform to pull for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The host's platform, in Go's names.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    /// Parses `os[/arch[/variant]]` as the `platform` parameter gives it.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let host = Platform::host();
        match parts.as_slice() {
            [os] if !os.is_empty() => Ok(Platform {
                os: os.to_lowercase(),
                ..host
            }),
            [os, arch] => Ok(Platform {
                os: os.to_lowercase(),
                architecture: arch.to_lowercase(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: os.to_lowercase(),
                architecture: arch.to_lowercase(),
                variant: Some(v.to_lowercase()),
            }),
            _ => Err(Error::Manifest(format!("invalid platform: {s:?}"))),
        }
    }

    fn matches(&self, p: &PlatformJson) -> bool {
        p.os == self.os
            && p.architecture == self.architecture
            && match (&self.variant, &p.variant) {
                (Some(want), Some(have)) => want == have,
                (Some(want), None) => want == "v8" && self.architecture == "arm64",
                (None, _) => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    #[serde(flatten)]
    desc: Descriptor,
    platform: Option<PlatformJson>,
}

#[derive(Debug, Deserialize)]
struct AnyManifest {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// One image, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest the reference resolved to (a list's, when it was a list): what
    /// `docker pull` prints as `Digest:` and records in RepoDigests.
    pub digest: String,
    /// The platform manifest's own digest and bytes.
    pub manifest_digest: String,
    pub manifest_raw: Bytes,
    pub media_type: String,
    pub config: Descriptor,
    pub config_raw: Bytes,
    pub layers: Vec<Descriptor>,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

async fn fetch(
    c: &oci_client::Client,
    r: &RemoteRef,
    auth: &RegistryAuth,
) -> Result<(Bytes, String), Error> {
    let (raw, digest) = c
        .pull_manifest_raw(r, auth, ACCEPT)
        .await
        .map_err(|e| map_oci(e, &r.whole()))?;
    let actual = sha256(&raw);
    if let Some(want) = r.digest() {
        if want != actual {
            return Err(Error::Verify(format!(
                "manifest digest mismatch: expected {want}, got {actual}"
            )));
        }
    }
    let _ = digest;
    Ok((raw, actual))
}

pub(crate) async fn resolve(
    c: &oci_client::Client,
    r: &RemoteRef,
    auth: &RegistryAuth,
    platform: &Platform,
) -> Result<Resolved, Error> {
    let (raw, digest) = fetch(c, r, auth).await?;
    let top: AnyManifest = serde_json::from_slice(&raw)
        .map_err(|e| Error::Manifest(format!("invalid manifest: {e}")))?;
    let (manifest, manifest_raw, manifest_digest) = if let Some(entries) = &top.manifests {
        let chosen = entries
            .iter()
            .find(|e| e.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no matching manifest for {platform} in the manifest list entries"
                ))
            })?;
        let by_digest = RemoteRef::with_digest(
            r.registry().to_string(),
            r.repository().to_string(),
            chosen.desc.digest.clone(),
        );
        let (raw2, d2) = fetch(c, &by_digest, auth).await?;
        let m: AnyManifest = serde_json::from_slice(&raw2)
            .map_err(|e| Error::Manifest(format!("invalid manifest: {e}")))?;
        (m, raw2, d2)
    } else {
        (top, raw.clone(), digest.clone())
    };
    if manifest.schema_version != 2 {
        return Err(Error::Manifest(format!(
            "unsupported manifest schema version {}",
            manifest.schema_version
        )));
    }
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let config = manifest
        .config
        .ok_or_else(|| Error::Manifest("manifest has no config".into()))?;
    let layers = manifest.layers.unwrap_or_default();
    for l in &layers {
        if l.size < 0 || crate::verify::parse_digest(&l.digest).is_none() {
            return Err(Error::Manifest(format!(
                "invalid layer descriptor {}",
                l.digest
            )));
        }
    }
    if config.size > MAX_CONFIG || config.size < 0 {
        return Err(Error::Manifest(format!(
            "image config of {} bytes is too large",
            config.size
        )));
    }
    let by_digest = RemoteRef::with_digest(
        r.registry().to_string(),
        r.repository().to_string(),
        config.digest.clone(),
    );
    let desc = oci_client::manifest::OciDescriptor {
        media_type: config.media_type.clone(),
        digest: config.digest.clone(),
        size: config.size,
        ..Default::default()
    };
    let s = c
        .pull_blob_stream(&by_digest, &desc)
        .await
        .map_err(|e| map_oci(e, &config.digest))?;
    let mut v = crate::verify::Verified::new(s.stream, &config.digest, config.size);
    let mut buf = Vec::with_capacity(config.size as usize);
    while let Some(chunk) = v.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(Resolved {
        digest,
        manifest_digest,
        manifest_raw,
        media_type,
        config,
        config_raw: Bytes::from(buf),
        layers,
    })
}
