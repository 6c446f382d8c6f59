//! Identity tokens: what `docker login` keeps for registries that use OAuth
//! (`identitytoken` in `X-Registry-Auth`). dockerd's registry client trades
//! one for an access token at the registry's token service with the OAuth2
//! refresh-token grant before each operation; so does this.

use serde::Deserialize;

use crate::Error;

/// The parameters of a `WWW-Authenticate: Bearer realm="…",service="…"` challenge.
pub(crate) fn bearer_challenge(header: &str) -> Option<(String, String)> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let (mut realm, mut service) = (None, String::new());
    let mut s = rest;
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            },
        };
        match key.as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = value.to_string(),
            _ => {}
        }
        s = next.trim_start_matches(',').trim_start();
    }
    Some((realm?, service))
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    token: String,
}

/// Trades `refresh` for an access token to `repo` on the registry at
/// `base` (`scheme://host`).
pub(crate) async fn exchange(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    push: bool,
    refresh: &str,
) -> Result<String, Error> {
    let probe = format!("{base}/v2/");
    let resp = http
        .get(&probe)
        .send()
        .await
        .map_err(|e| Error::Transport(format!("{probe}: {e}")))?;
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some((realm, service)) = bearer_challenge(&challenge) else {
        return Err(Error::Unauthorized(format!(
            "unauthorized: {base} asks for no bearer token, so an identity token cannot be used there"
        )));
    };
    let scope = format!(
        "repository:{repo}:{}",
        if push { "pull,push" } else { "pull" }
    );
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh)
        .append_pair("service", &service)
        .append_pair("scope", &scope)
        .append_pair("client_id", "docker")
        .append_pair("access_type", "offline")
        .finish();
    let resp = http
        .post(&realm)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| Error::Transport(format!("{realm}: {e}")))?;
    let status = resp.status();
    let raw = resp
        .bytes()
        .await
        .map_err(|e| Error::Transport(format!("{realm}: {e}")))?;
    if !status.is_success() {
        return Err(Error::Unauthorized(format!(
            "unauthorized: the token service at {realm} refused the identity token ({status})"
        )));
    }
    let t: TokenAnswer = serde_json::from_slice(&raw).map_err(|e| {
        Error::Unauthorized(format!("unauthorized: token answer from {realm}: {e}"))
    })?;
    let token = if t.access_token.is_empty() {
        t.token
    } else {
        t.access_token
    };
    if token.is_empty() {
        return Err(Error::Unauthorized(format!(
            "unauthorized: the token service at {realm} sent no token"
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_registries_write_them() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#
            ),
            Some((
                "https://auth.example/token".into(),
                "registry.example".into()
            ))
        );
        assert_eq!(
            bearer_challenge(r#"Bearer realm="http://127.0.0.1:1/t""#),
            Some(("http://127.0.0.1:1/t".into(), String::new()))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge(""), None);
    }
}
