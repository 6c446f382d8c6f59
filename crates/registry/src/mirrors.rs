//! `--registry-mirror`: pull-through mirrors of Docker Hub, tried in order
//! before Hub itself, as dockerd does. Only Hub names go through mirrors.

use crate::RemoteRef;

/// Hub's names for itself, as references and oci-client spell them.
const HUB: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];

/// Checks a mirror URL as dockerd does and returns it with one trailing
/// slash (how `docker info` lists mirrors).
pub fn validate_mirror(val: &str) -> Result<String, String> {
    let uri = reqwest::Url::parse(val)
        .map_err(|_| format!("invalid mirror: {val:?} is not a valid URI"))?;
    if uri.scheme() != "http" && uri.scheme() != "https" {
        return Err(format!(
            "invalid mirror: unsupported scheme {:?} in {val:?}",
            uri.scheme()
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || uri.fragment().is_some() {
        return Err(format!(
            "invalid mirror: path, query, or fragment at end of the URI {val:?}"
        ));
    }
    if !uri.username().is_empty() || uri.password().is_some() {
        return Err(format!(
            "invalid mirror: username/password not allowed in URI {val:?}"
        ));
    }
    Ok(format!("{}/", val.trim_end_matches('/')))
}

/// A mirror's `host[:port]` and whether it speaks plain HTTP.
pub(crate) fn host_of(mirror: &str) -> Option<(String, bool)> {
    let uri = reqwest::Url::parse(mirror).ok()?;
    let host = uri.host_str()?;
    let host = match uri.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Some((host, uri.scheme() == "http"))
}

pub(crate) fn is_hub(registry: &str) -> bool {
    HUB.contains(&registry)
}

/// `r` as found on each mirror, then `r` itself.
pub(crate) fn endpoints(mirrors: &[String], r: &RemoteRef) -> Vec<RemoteRef> {
    let mut v = Vec::new();
    if is_hub(r.registry()) {
        for m in mirrors {
            let Some((host, _)) = host_of(m) else {
                continue;
            };
            let repo = r.repository().to_string();
            v.push(match (r.digest(), r.tag()) {
                (Some(d), _) => RemoteRef::with_digest(host, repo, d.to_string()),
                (None, t) => RemoteRef::with_tag(host, repo, t.unwrap_or("latest").to_string()),
            });
        }
    }
    v.push(r.clone());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_checked_and_normalised_as_dockerd() {
        assert_eq!(
            validate_mirror("http://127.0.0.1:5000").as_deref(),
            Ok("http://127.0.0.1:5000/")
        );
        assert_eq!(
            validate_mirror("https://m.example/").as_deref(),
            Ok("https://m.example/")
        );
        assert!(validate_mirror("ftp://m.example")
            .expect_err("refused")
            .contains("unsupported scheme"));
        assert!(validate_mirror("http://m.example/v2/")
            .expect_err("refused")
            .contains("path, query, or fragment"));
        assert!(validate_mirror("http://u:p@m.example")
            .expect_err("refused")
            .contains("username/password"));
        assert!(validate_mirror("not a url")
            .expect_err("refused")
            .contains("is not a valid URI"));
    }

    #[test]
    fn only_hub_names_go_through_mirrors_in_order() {
        let m = vec![
            "http://127.0.0.1:5000/".to_string(),
            "https://mirror.example/".to_string(),
        ];
        let hub = RemoteRef::with_tag("docker.io".into(), "library/busybox".into(), "1.36".into());
        let e = endpoints(&m, &hub);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].registry(), "127.0.0.1:5000");
        assert_eq!(e[0].repository(), "library/busybox");
        assert_eq!(e[0].tag(), Some("1.36"));
        assert_eq!(e[1].registry(), "mirror.example");
        assert_eq!(e[2], hub);
        let other = RemoteRef::with_tag("quay.io".into(), "a/b".into(), "1".into());
        assert_eq!(endpoints(&m, &other), vec![other]);
        assert_eq!(
            host_of("http://127.0.0.1:5000/"),
            Some(("127.0.0.1:5000".into(), true))
        );
    }
}
