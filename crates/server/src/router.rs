//! Path matching: `/containers/{id}/json`, and `{name:.*}` for image names that
//! contain slashes (`/images/{name:.*}/json`), as moby's router.

use berth_api::{ApiError, ApiVersion};
use http::Method;

/// How the server reads a route's request body before the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// The body is not read.
    None,
    /// Read whole, up to the server's JSON limit.
    Json,
    /// Passed to the job as a stream (tars, build contexts).
    Stream,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
    /// Matches one or more segments, slashes included.
    Greedy(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    method: Method,
    path: &'static str,
    segs: Vec<Seg>,
    pub job: &'static str,
    pub body: BodyMode,
}

impl Route {
    pub fn new(method: Method, path: &'static str, job: &'static str, body: BodyMode) -> Route {
        let segs = split(path)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) => match p.strip_suffix(":.*") {
                        Some(name) => Seg::Greedy(name.to_string()),
                        None => Seg::Param(p.to_string()),
                    },
                    None => Seg::Lit(s.to_string()),
                },
            )
            .collect();
        Route {
            method,
            path,
            segs,
            job,
            body,
        }
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path parameters if `parts` matches this route's pattern.
    fn matches(&self, parts: &[&str]) -> Option<Vec<(String, String)>> {
        let greedy = self.segs.iter().position(|s| matches!(s, Seg::Greedy(_)));
        let mut params = Vec::new();
        match greedy {
            None => {
                if parts.len() != self.segs.len() {
                    return None;
                }
                for (seg, part) in self.segs.iter().zip(parts) {
                    match_one(seg, part, &mut params)?;
                }
            }
            Some(g) => {
                let after = self.segs.len() - g - 1;
                if parts.len() < self.segs.len() {
                    return None;
                }
                for (seg, part) in self.segs[..g].iter().zip(&parts[..g]) {
                    match_one(seg, part, &mut params)?;
                }
                let tail = &parts[parts.len() - after..];
                for (seg, part) in self.segs[g + 1..].iter().zip(tail) {
                    match_one(seg, part, &mut params)?;
                }
                if let Seg::Greedy(name) = &self.segs[g] {
                    params.push((name.clone(), parts[g..parts.len() - after].join("/")));
                }
            }
        }
        Some(params)
    }
}

fn match_one(seg: &Seg, part: &str, params: &mut Vec<(String, String)>) -> Option<()> {
    match seg {
        Seg::Lit(l) if l == part => Some(()),
        Seg::Param(name) if !part.is_empty() => {
            params.push((name.clone(), part.to_string()));
            Some(())
        }
        _ => None,
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// What a request path resolved to.
#[derive(Debug)]
pub struct Matched<'a> {
    pub route: &'a Route,
    pub version: ApiVersion,
    pub params: Vec<(String, String)>,
}

/// The route table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    pub fn add(&mut self, route: Route) {
        self.routes.push(route);
    }

    /// Resolves `method` and the percent-decoded `path`. Errors are Docker's: 400 for a
    /// version out of range, 404 for an unknown path, 405 for a known path with
    /// another method.
    pub fn resolve(&self, method: &Method, path: &str) -> Result<Matched<'_>, ApiError> {
        let mut parts: Vec<&str> = split(path).collect();
        let mut version = ApiVersion::MAX;
        if let Some(first) = parts.first() {
            if let Some(v) = first
                .strip_prefix('v')
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            {
                version = v
                    .parse()
                    .map_err(|_| ApiError::not_found("page not found"))?;
                check_version(version)?;
                parts.remove(0);
            }
        }
        let mut path_known = false;
        for route in &self.routes {
            if let Some(params) = route.matches(&parts) {
                // HEAD is answered by a GET route when no HEAD route exists.
                if route.method == method {
                    return Ok(Matched {
                        route,
                        version,
                        params,
                    });
                }
                path_known = true;
            }
        }
        if path_known {
            Err(ApiError::new(
                berth_api::ErrorKind::MethodNotAllowed,
                "method not allowed",
            ))
        } else {
            Err(ApiError::not_found("page not found"))
        }
    }
}

/// dockerd's checks and texts for a requested API version.
pub fn check_version(v: ApiVersion) -> Result<(), ApiError> {
    if v > ApiVersion::MAX {
        return Err(ApiError::invalid(format!(
            "client version {v} is too new. Maximum supported API version is {}",
            ApiVersion::MAX
        )));
    }
    if v < ApiVersion::MIN {
        return Err(ApiError::invalid(format!(
            "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            ApiVersion::MIN
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(vec![
            Route::new(
                Method::GET,
                "/containers/{id}/json",
                "c.inspect",
                BodyMode::None,
            ),
            Route::new(
                Method::GET,
                "/images/{name:.*}/json",
                "i.inspect",
                BodyMode::None,
            ),
            Route::new(
                Method::DELETE,
                "/images/{name:.*}",
                "i.delete",
                BodyMode::None,
            ),
            Route::new(Method::GET, "/_ping", "ping", BodyMode::None),
        ])
    }

    #[test]
    fn matches_params_and_versions() {
        let r = router();
        let m = r
            .resolve(&Method::GET, "/v1.44/containers/abc/json")
            .expect("match");
        assert_eq!(m.route.job, "c.inspect");
        assert_eq!(m.version, ApiVersion::new(1, 44));
        assert_eq!(m.params, vec![("id".to_string(), "abc".to_string())]);
        let m = r.resolve(&Method::GET, "/_ping").expect("match");
        assert_eq!(m.version, ApiVersion::MAX);
    }

    #[test]
    fn greedy_names_keep_slashes() {
        let r = router();
        let m = r
            .resolve(&Method::GET, "/images/127.0.0.1:5000/lib/busybox:1/json")
            .expect("match");
        assert_eq!(m.route.job, "i.inspect");
        assert_eq!(m.params[0].1, "127.0.0.1:5000/lib/busybox:1");
        let m = r.resolve(&Method::DELETE, "/images/a/b").expect("match");
        assert_eq!(m.params[0].1, "a/b");
    }

    #[test]
    fn errors_are_docker_shaped() {
        let r = router();
        let e = r.resolve(&Method::GET, "/nope").expect_err("404");
        assert_eq!(
            (e.status_code(), e.message.as_str()),
            (404, "page not found")
        );
        let e = r.resolve(&Method::POST, "/_ping").expect_err("405");
        assert_eq!(e.status_code(), 405);
        let e = r
            .resolve(&Method::GET, "/v1.99/_ping")
            .expect_err("too new");
        assert_eq!(e.status_code(), 400);
        assert_eq!(
            e.message,
            "client version 1.99 is too new. Maximum supported API version is 1.50"
        );
        let e = r
            .resolve(&Method::GET, "/v1.12/_ping")
            .expect_err("too old");
        assert!(e.message.starts_with("client version 1.12 is too old"));
        assert_eq!(
            r.resolve(&Method::GET, "/v1/_ping")
                .expect_err("bad")
                .status_code(),
            404
        );
    }
}
