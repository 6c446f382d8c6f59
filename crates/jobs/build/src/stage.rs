//! The classic builder's dispatch loop (moby `builder/dockerfile`): stages in
//! order up to the target, each instruction a step that is either found in the
//! cache or made (a container for RUN and metadata steps, a mounted layer for
//! COPY and ADD), the stage's config carried from step to step.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_graph::{Digest, Graph, ImageRecord};
use serde_json::{json, Map, Value};

use crate::calls::Calls;
use crate::dockerfile::{Cmd, Dockerfile, Instr, Kind};
use crate::error::{BuildError, Result};
use crate::images::{self, blocking};
use crate::lex::process_word;
use crate::options::Options;
use crate::out::Out;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args every build knows without an ARG; they never warn and stay out
/// of the cache key unless declared.
pub const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// One stage's state between steps.
pub struct State {
    pub image: Option<ImageRecord>,
    pub config: Map<String, Value>,
    pub cmd_set: bool,
    /// Declared ARGs with their values, in declaration order.
    pub args: Vec<(String, Option<String>)>,
    pub maintainer: String,
    pub cache: bool,
}

impl State {
    pub fn image_id(&self) -> Option<&Digest> {
        self.image.as_ref().map(|i| &i.id)
    }

    pub fn env(&self) -> Vec<String> {
        str_list(self.config.get("Env").unwrap_or(&Value::Null))
    }

    pub fn shell(&self) -> Vec<String> {
        let s = str_list(&self.config.get("Shell").cloned().unwrap_or(Value::Null));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// The declared args with values that no ENV overrides, `k=v`.
    pub fn arg_env(&self) -> Vec<String> {
        let env = self.env();
        let set: BTreeSet<&str> = env
            .iter()
            .map(|e| e.split('=').next().unwrap_or(""))
            .collect();
        self.args
            .iter()
            .filter(|(k, _)| !set.contains(k.as_str()))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }

    /// What words are expanded with: args, then ENV (ENV wins).
    pub fn expand_env(&self) -> Vec<String> {
        let mut e = self.arg_env();
        e.extend(self.env());
        e
    }

    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let kv = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
        self.config.insert("Env".into(), json!(env));
    }
}

pub fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A finished stage.
pub struct Done {
    pub name: Option<String>,
    pub image: Option<ImageRecord>,
}

pub struct Build<'a> {
    pub calls: Calls,
    pub graph: Arc<Graph>,
    pub opts: &'a Options,
    pub out: &'a Out,
    pub ctx: PathBuf,
    pub work: PathBuf,
    pub escape: char,
    pub meta: Vec<(String, Option<String>)>,
    pub done: Vec<Done>,
    /// Containers made and not yet removed (a cancelled build removes them).
    pub tmp: Arc<Mutex<Vec<String>>>,
    pub used_args: BTreeSet<String>,
    pub step: usize,
    pub total: usize,
    pub cache_from: Option<BTreeSet<Digest>>,
    /// The `cachefrom` images themselves, for matches by history.
    pub cache_sources: Vec<ImageRecord>,
    pub cancel: tokio_util::sync::CancellationToken,
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

impl Build<'_> {
    async fn print_step(&mut self, i: &Instr) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        self.step += 1;
        self.out.step(self.step, self.total, &i.original).await
    }

    pub(crate) fn arg_value(&self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(Some(v)) = self.opts.build_args.get(name) {
            return Some(v.clone());
        }
        default
    }

    /// Runs the build; returns the target stage's image.
    pub async fn run(&mut self, df: &Dockerfile, target: usize) -> Result<Option<ImageRecord>> {
        for a in &df.meta_args {
            self.print_step(a).await?;
            let Kind::Arg(list) = &a.kind else { continue };
            for (k, dflt) in list {
                let env = self.meta_env();
                let d = dflt
                    .as_ref()
                    .map(|v| process_word(v, &env, self.escape))
                    .transpose()?;
                let v = self.arg_value(k, d);
                self.used_args.insert(k.clone());
                self.meta.push((k.clone(), v));
            }
        }
        for (n, stage) in df.stages.iter().enumerate().take(target + 1) {
            let mut st = self.from(&stage.from).await?;
            let extra = (n == target && !self.opts.labels.is_empty()).then(|| self.labels_instr());
            for i in stage.instrs.iter().chain(extra.as_ref()) {
                self.print_step(i).await?;
                self.dispatch(&mut st, i).await?;
                self.out
                    .text(format!(
                        " ---> {}\n",
                        short(st.image_id().map(|d| d.as_str()).unwrap_or(""))
                    ))
                    .await?;
            }
            if let Some(img) = &st.image {
                self.out.aux(img.id.as_str()).await?;
            }
            for (k, _) in &st.args {
                self.used_args.insert(k.clone());
            }
            self.done.push(Done {
                name: stage.name.clone(),
                image: st.image,
            });
        }
        Ok(self.done.last().and_then(|d| d.image.clone()))
    }

    fn labels_instr(&self) -> Instr {
        let pairs: Vec<(String, String)> = self
            .opts
            .labels
            .iter()
            .map(|(k, v)| (crate::gofmt::quote(k), crate::gofmt::quote(v)))
            .collect();
        let original = format!(
            "LABEL {}",
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Instr {
            original,
            kind: Kind::Label(pairs),
        }
    }

    fn meta_env(&self) -> Vec<String> {
        self.meta
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }

    /// The image of a previous stage named (or numbered) `name`.
    pub fn stage_image(&self, name: &str) -> Option<Option<ImageRecord>> {
        let lower = name.to_ascii_lowercase();
        if let Some(d) = self
            .done
            .iter()
            .find(|d| d.name.as_deref() == Some(lower.as_str()))
        {
            return Some(d.image.clone());
        }
        lower
            .parse::<usize>()
            .ok()
            .and_then(|i| self.done.get(i))
            .map(|d| d.image.clone())
    }

    /// A local image by name, pulled when missing (or always with `pull=1`).
    pub async fn image(&mut self, name: &str, platform: &str) -> Result<ImageRecord> {
        let g = self.graph.clone();
        let n = name.to_string();
        let local = blocking(move || Ok(g.resolve(&n).ok().and_then(|id| g.image(&id)))).await?;
        if let Some(img) = local.filter(|_| !self.opts.pull) {
            return Ok(img);
        }
        let plat = if platform.is_empty() {
            self.opts.platform.as_str()
        } else {
            platform
        };
        // A pull is cancelled with its call (it keeps nothing half-made).
        tokio::select! {
            r = self.calls.pull(name, plat, self.opts.auth_for(name), self.out) => r?,
            _ = self.cancel.cancelled() => return Err(BuildError::Cancelled),
        }
        let g = self.graph.clone();
        let n = name.to_string();
        blocking(move || {
            g.resolve(&n)
                .ok()
                .and_then(|id| g.image(&id))
                .ok_or_else(|| {
                    BuildError::Api(berth_api::ApiError::not_found(format!(
                        "No such image: {n}"
                    )))
                })
        })
        .await
    }

    async fn from(&mut self, i: &Instr) -> Result<State> {
        self.print_step(i).await?;
        let Kind::From {
            image, platform, ..
        } = &i.kind
        else {
            return Err(BuildError::Invalid("a stage must start with FROM".into()));
        };
        let env = self.meta_env();
        let name = process_word(image, &env, self.escape)?;
        let platform = match platform {
            Some(p) => {
                let p = process_word(p, &env, self.escape)?;
                crate::platform::check(&p).map_err(|_| {
                    BuildError::Invalid(format!("failed to parse platform {p}: {p:?}: unknown operating system or architecture: invalid argument"))
                })?;
                p
            }
            None => String::new(),
        };
        let base = if name.eq_ignore_ascii_case("scratch") {
            None
        } else if let Some(img) = self.stage_image(&name) {
            img
        } else {
            Some(self.image(&name, &platform).await?)
        };
        let mut config = base
            .as_ref()
            .and_then(|b| b.config.config.clone())
            .and_then(|c| c.as_object().cloned())
            .unwrap_or_default();
        let triggers = str_list(&config.get("OnBuild").cloned().unwrap_or(Value::Null));
        config.insert("OnBuild".into(), Value::Null);
        let mut st = State {
            image: base,
            config,
            cmd_set: false,
            args: Vec::new(),
            maintainer: String::new(),
            cache: !self.opts.no_cache,
        };
        if !st.env().iter().any(|e| e.starts_with("PATH=")) {
            let mut env = st.env();
            env.push(DEFAULT_PATH.into());
            st.config.insert("Env".into(), json!(env));
        }
        self.out
            .text(format!(
                " ---> {}\n",
                short(st.image_id().map(|d| d.as_str()).unwrap_or(""))
            ))
            .await?;
        if !triggers.is_empty() {
            self.out
                .text(format!(
                    "# Executing {} build trigger{}\n",
                    triggers.len(),
                    if triggers.len() > 1 { "s" } else { "" }
                ))
                .await?;
            for t in &triggers {
                let instr = crate::dockerfile::parse_trigger(t).map_err(BuildError::Invalid)?;
                Box::pin(self.dispatch(&mut st, &instr)).await?;
            }
        }
        Ok(st)
    }

    /// The cache key of a metadata step: the stage's config with its comment as the command.
    fn key_with(&self, st: &State, cmd: Vec<String>) -> Value {
        let mut k = st.config.clone();
        k.insert("Cmd".into(), json!(cmd));
        if let Some(id) = st.image_id() {
            k.insert("Image".into(), json!(id.as_str()));
        }
        Value::Object(k)
    }

    pub fn comment_key(&self, st: &State, comment: &str) -> Value {
        let mut cmd = st.shell();
        cmd.push("#(nop) ".into());
        cmd.push(comment.into());
        self.key_with(st, cmd)
    }

    pub fn comment_string_key(&self, st: &State, comment: &str) -> Value {
        let mut cmd = st.shell();
        cmd.push(format!("#(nop) {comment}"));
        self.key_with(st, cmd)
    }

    /// Looks the step up in the cache; a hit becomes the stage's image.
    pub async fn probe(&mut self, st: &mut State, key: &Value) -> Result<bool> {
        if !st.cache {
            return Ok(false);
        }
        // The graph's image maps are in memory: no blocking thread needed.
        let g = &self.graph;
        let mut hit = images::lookup(g, st.image_id(), key, self.cache_from.as_ref())
            .and_then(|id| g.image(&id));
        if hit.is_none() && !self.cache_sources.is_empty() {
            let (g, parent, key2, mut sources) = (
                self.graph.clone(),
                st.image.clone(),
                key.clone(),
                std::mem::take(&mut self.cache_sources),
            );
            let (id, sources) = blocking(move || {
                let id = images::lookup_history(&g, parent.as_ref(), &key2, &mut sources)?;
                Ok((id, sources))
            })
            .await?;
            self.cache_sources = sources;
            hit = id.and_then(|id| self.graph.image(&id));
        }
        match hit {
            Some(img) => {
                self.out.text(" ---> Using cache\n").await?;
                st.image = Some(img);
                Ok(true)
            }
            None => {
                st.cache = false;
                Ok(false)
            }
        }
    }

    /// The stage's config as committed (its `Image` the parent's ID).
    pub fn commit_config(&self, st: &State) -> Map<String, Value> {
        let mut c = st.config.clone();
        c.insert(
            "Image".into(),
            json!(st
                .image_id()
                .map(|d| d.as_str().to_string())
                .unwrap_or_default()),
        );
        c
    }

    /// A metadata step: cached, or committed from a container (without a
    /// container when the stage has no image yet).
    pub async fn commit_meta(&mut self, st: &mut State, key: Value) -> Result<()> {
        if self.probe(st, &key).await? {
            return Ok(());
        }
        let Some(parent) = st.image.clone() else {
            let (g, config, author) = (
                self.graph.clone(),
                self.commit_config(st),
                st.maintainer.clone(),
            );
            let id = blocking(move || {
                images::commit_record(
                    &g,
                    images::Commit {
                        parent: None,
                        config: &config,
                        key: &key,
                        author: &author,
                        layer: None,
                    },
                )
            })
            .await?;
            st.image = Some(id);
            return Ok(());
        };
        let mut create = key.as_object().cloned().unwrap_or_default();
        create.insert("Image".into(), json!(parent.id.as_str()));
        create.insert(
            "HostConfig".into(),
            Value::Object(self.opts.host_config.clone()),
        );
        let cid = self.create(&Value::Object(create)).await?;
        self.commit_container(st, &cid, &key).await
    }

    pub async fn create(&mut self, config: &Value) -> Result<String> {
        let cid = self.calls.create(config).await?;
        self.tmp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cid.clone());
        self.out
            .text(format!(" ---> Running in {}\n", short(&cid)))
            .await?;
        Ok(cid)
    }

    pub async fn commit_container(&mut self, st: &mut State, cid: &str, key: &Value) -> Result<()> {
        let body = json!({
            "Config": Value::Object(self.commit_config(st)),
            "ContainerConfig": key,
            "Author": st.maintainer,
        });
        let id = self.calls.commit(cid, &body).await?;
        if self.opts.rm {
            self.remove(cid).await?;
        } else {
            self.keep(cid);
        }
        let g = self.graph.clone();
        let img = blocking(move || {
            let d = Digest::parse(&id).map_err(|e| BuildError::System(e.to_string()))?;
            g.image(&d)
                .ok_or_else(|| BuildError::System("committed image vanished".into()))
        })
        .await?;
        st.image = Some(img);
        Ok(())
    }

    /// A container the build leaves behind on purpose (`rm=0`, a failed RUN).
    pub fn keep(&mut self, cid: &str) {
        self.tmp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| c != cid);
    }

    pub async fn remove(&mut self, cid: &str) -> Result<()> {
        self.calls.remove(cid).await?;
        self.tmp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| c != cid);
        self.out
            .text(format!(
                " ---> Removed intermediate container {}\n",
                short(cid)
            ))
            .await
    }

    /// CMD and ENTRYPOINT: the shell form runs through the stage's SHELL.
    pub fn command(&self, st: &State, c: &Cmd) -> Vec<String> {
        match c {
            Cmd::Exec(v) => v.clone(),
            Cmd::Shell(line) => {
                let mut s = st.shell();
                s.push(line.clone());
                s
            }
        }
    }

    /// Build args given and never declared (builtin proxy args aside).
    pub fn unused_args(&self) -> Vec<String> {
        self.opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !BUILTIN_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}
