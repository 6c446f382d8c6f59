//! The other job families' work the builder needs, asked for by job name
//! through the engine as any client would (the build crate imports none of
//! them): pulls, containers for RUN and metadata steps, their commits.

use berth_api::{ApiError, ApiVersion};
use berth_engine::names;
use berth_engine::{Args, Body, Engine, Reply, ReplyBody};
use bytes::Bytes;
use serde_json::Value;

use crate::error::{BuildError, Result};
use crate::out::Out;

#[derive(Clone)]
pub struct Calls {
    pub engine: Engine,
}

fn reply_error(status: u16, body: &[u8]) -> BuildError {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).to_string());
    BuildError::Api(match status {
        404 => ApiError::not_found(msg),
        409 => ApiError::conflict(msg),
        400 => ApiError::invalid(msg),
        _ => ApiError::system(msg),
    })
}

/// The bytes of a reply's body, a stream read to its end.
async fn body_of(reply: Reply) -> Result<(u16, Vec<u8>)> {
    let status = reply.status;
    let data = match reply.body {
        ReplyBody::Empty => Vec::new(),
        ReplyBody::Bytes { data, .. } => data.to_vec(),
        ReplyBody::Stream { mut rx, .. } => {
            let mut all = Vec::new();
            while let Some(b) = rx.recv().await {
                all.extend_from_slice(&b);
            }
            all
        }
        ReplyBody::Hijack { .. } => Vec::new(),
    };
    Ok((status, data))
}

impl Calls {
    fn args(params: &[(&str, &str)], body: Option<&Value>) -> Args {
        let mut a = Args::new(ApiVersion::MAX);
        for (k, v) in params {
            a.push_param(k, v);
        }
        if let Some(b) = body {
            a.body = Body::Bytes(Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
        }
        a
    }

    async fn json(
        &self,
        job: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let reply = self.engine.call(job, Self::args(params, body)).await?;
        let (status, data) = body_of(reply).await?;
        if status >= 400 {
            return Err(reply_error(status, &data));
        }
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        // A streamed answer (wait) ends with its result.
        let last = data
            .split(|&b| b == b'\n')
            .rfind(|l| !l.iter().all(u8::is_ascii_whitespace))
            .unwrap_or(&[]);
        serde_json::from_slice(last).map_err(|e| BuildError::System(format!("{job}: {e}")))
    }

    pub async fn create(&self, config: &Value) -> Result<String> {
        let v = self.json("container.create", &[], Some(config)).await?;
        v["Id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BuildError::System("container.create: no Id".into()))
    }

    /// Attaches to stdout and stderr before the start, so nothing is missed.
    pub async fn attach(&self, id: &str) -> Result<tokio::io::DuplexStream> {
        let params = [
            ("name", id),
            ("stream", "1"),
            ("stdout", "1"),
            ("stderr", "1"),
        ];
        let reply = self
            .engine
            .call(names::container::ATTACH, Self::args(&params, None))
            .await?;
        match reply.body {
            ReplyBody::Hijack { io, .. } => {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                io.send(Box::new(theirs))
                    .map_err(|_| BuildError::System("attach ended early".into()))?;
                Ok(ours)
            }
            other => {
                let (status, data) = body_of(Reply {
                    status: reply.status,
                    headers: Vec::new(),
                    body: other,
                })
                .await?;
                Err(reply_error(status, &data))
            }
        }
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.json("container.start", &[("name", id)], None)
            .await
            .map(|_| ())
    }

    pub async fn wait(&self, id: &str) -> Result<i64> {
        let v = self.json("container.wait", &[("name", id)], None).await?;
        Ok(v["StatusCode"].as_i64().unwrap_or(-1))
    }

    pub async fn kill(&self, id: &str) {
        let _ = self.json("container.kill", &[("name", id)], None).await;
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        self.json(
            "container.delete",
            &[("name", id), ("force", "1"), ("v", "1")],
            None,
        )
        .await
        .map(|_| ())
    }

    /// Makes directory `dir` (and its missing parents, root-owned 0755) in a
    /// created container: an archive of just the missing part, put into the
    /// deepest directory that exists.
    pub async fn mkdir(&self, id: &str, dir: &str) -> Result<()> {
        let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
        let mut have = comps.len();
        while have > 0 {
            let p = format!("/{}", comps[..have].join("/"));
            let r = self
                .engine
                .call(
                    names::container::ARCHIVE_HEAD,
                    Self::args(&[("name", id), ("path", &p)], None),
                )
                .await?;
            if r.status < 300 {
                break;
            }
            have -= 1;
        }
        if have == comps.len() {
            return Ok(());
        }
        let mut t = tar::Builder::new(Vec::new());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for i in have + 1..=comps.len() {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(now);
            h.set_size(0);
            t.append_data(
                &mut h,
                format!("{}/", comps[have..i].join("/")),
                std::io::empty(),
            )?;
        }
        let tar = t.into_inner()?;
        let at = format!("/{}", comps[..have].join("/"));
        let mut a = Self::args(&[("name", id), ("path", &at)], None);
        a.body = Body::Bytes(Bytes::from(tar));
        let (status, data) =
            body_of(self.engine.call(names::container::ARCHIVE_PUT, a).await?).await?;
        if status >= 400 {
            return Err(reply_error(status, &data));
        }
        Ok(())
    }

    pub async fn commit(&self, id: &str, body: &Value) -> Result<String> {
        let v = self
            .json("container.commit_build", &[("container", id)], Some(body))
            .await?;
        v["Id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BuildError::System("commit: no Id".into()))
    }

    /// Pulls `name`, the pull's progress going into the build's stream.
    pub async fn pull(
        &self,
        name: &str,
        platform: &str,
        auth: Option<String>,
        out: &Out,
    ) -> Result<()> {
        let (from, tag) = pull_args(name)?;
        let mut params = vec![("fromImage", from.as_str()), ("tag", tag.as_str())];
        if !platform.is_empty() {
            params.push(("platform", platform));
        }
        let mut args = Self::args(&params, None);
        if let Some(a) = auth {
            args.push_header("X-Registry-Auth", &a);
        }
        let reply = self.engine.call(names::image::CREATE, args).await?;
        if reply.status >= 400 {
            let (status, data) = body_of(reply).await?;
            return Err(reply_error(status, &data));
        }
        let ReplyBody::Stream { mut rx, .. } = reply.body else {
            return Ok(());
        };
        let mut pending = Vec::new();
        while let Some(chunk) = rx.recv().await {
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    if let Some(e) = v["error"].as_str() {
                        return Err(BuildError::Api(ApiError::not_found(e.to_string())));
                    }
                }
                out.raw(line).await?;
            }
        }
        Ok(())
    }
}

/// `repo[:tag|@digest]` as the pull job's `fromImage` and `tag`, read by the
/// graph's reference parser as the pull job reads them.
fn pull_args(name: &str) -> Result<(String, String)> {
    let r = berth_graph::Reference::parse_tagged(name)
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    let tag = match (&r.digest, &r.tag) {
        (Some(d), _) => d.as_str().to_string(),
        (None, t) => t.clone().unwrap_or_default(),
    };
    Ok((r.familiar_name(), tag))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_split_for_pulls() {
        let p = |n: &str| super::pull_args(n).expect(n);
        assert_eq!(p("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            p("127.0.0.1:5000/a/b:1"),
            ("127.0.0.1:5000/a/b".into(), "1".into())
        );
        assert_eq!(
            p("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a".into(), "latest".into())
        );
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(p(&format!("a@{d}")), ("a".into(), d));
    }
}
