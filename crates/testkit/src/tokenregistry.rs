//! A registry that wants OAuth bearer tokens, served from memory: `/v2/`
//! answers 401 with a `Bearer realm=…/token` challenge, `POST /token` grants
//! an access token for the one refresh token (identity token) it knows, and
//! manifests and blobs are served only with that access token. For testing
//! `identitytoken` logins, which Debian's registry cannot do without a JWT
//! issuer of its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the registry holds: one repository's manifests (by tag and digest)
/// and blobs (by digest).
#[derive(Clone, Default)]
pub struct Content {
    pub repo: String,
    /// Tag or digest -> (media type, bytes).
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
}

pub struct TokenRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Token grants made (`POST /token` answered 200).
    pub grants: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

const ACCESS: &str = "access-granted-for-tests";

impl TokenRegistry {
    pub fn start(refresh_token: &str, content: Content) -> std::io::Result<TokenRegistry> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let grants = Arc::new(AtomicUsize::new(0));
        let (flag, g, a, refresh) = (
            stop.clone(),
            grants.clone(),
            addr.clone(),
            refresh_token.to_string(),
        );
        let content = Arc::new(content);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (c, g, a, r) = (content.clone(), g.clone(), a.clone(), refresh.clone());
                        std::thread::spawn(move || {
                            let _ = serve(s, &c, &g, &a, &r);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(TokenRegistry { addr, grants, stop })
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8], head: bool) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    if !head {
        let _ = s.write_all(body);
    }
}

fn serve(
    mut s: TcpStream,
    content: &Content,
    grants: &AtomicUsize,
    addr: &str,
    refresh: &str,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let head = method == "HEAD";
    let path = target.split('?').next().unwrap_or("");
    if path == "/token" {
        let form = String::from_utf8_lossy(&body).into_owned();
        let granted = form
            .split('&')
            .any(|kv| kv == format!("refresh_token={refresh}"))
            && form.contains("grant_type=refresh_token");
        if granted {
            grants.fetch_add(1, Ordering::Relaxed);
            let b = format!(r#"{{"access_token":"{ACCESS}","expires_in":300}}"#);
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                b.as_bytes(),
                false,
            );
        } else {
            respond(
                &mut s,
                "401 Unauthorized",
                &[],
                br#"{"error":"invalid_grant"}"#,
                false,
            );
        }
        return Ok(());
    }
    let authorized =
        headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {ACCESS}"));
    if !authorized {
        let challenge = format!(r#"Bearer realm="http://{addr}/token",service="token-registry""#);
        respond(
            &mut s,
            "401 Unauthorized",
            &[
                ("WWW-Authenticate", challenge),
                ("Content-Type", "application/json".into()),
            ],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            head,
        );
        return Ok(());
    }
    if path == "/v2/" {
        respond(&mut s, "200 OK", &[], b"{}", head);
        return Ok(());
    }
    let prefix = format!("/v2/{}/", content.repo);
    let found = path.strip_prefix(&prefix).and_then(|rest| {
        if let Some(reference) = rest.strip_prefix("manifests/") {
            content
                .manifests
                .get(reference)
                .map(|(mt, b)| (mt.clone(), b.clone()))
        } else if let Some(digest) = rest.strip_prefix("blobs/") {
            content
                .blobs
                .get(digest)
                .map(|b| ("application/octet-stream".to_string(), b.clone()))
        } else {
            None
        }
    });
    match found {
        Some((mt, b)) => {
            let digest = crate::registry::digest(&b);
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", mt), ("Docker-Content-Digest", digest)],
                &b,
                head,
            );
        }
        None => respond(
            &mut s,
            "404 Not Found",
            &[("Content-Type", "application/json".into())],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            head,
        ),
    }
    Ok(())
}
