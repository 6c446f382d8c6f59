//! The dispatch of one instruction: the metadata instructions here (each
//! changes the stage's config and commits a step, cached or not); RUN and
//! WORKDIR in [`crate::run`], COPY and ADD in [`crate::addcopy`].

use serde_json::{json, Value};

use crate::dockerfile::{Instr, Kind};
use crate::error::{BuildError, Result};
use crate::lex::{process_word, process_words};
use crate::stage::{str_list, Build, State};

impl Build<'_> {
    pub(crate) async fn dispatch(&mut self, st: &mut State, i: &Instr) -> Result<()> {
        let esc = self.escape;
        match &i.kind {
            Kind::From { .. } => Err(BuildError::Invalid("unexpected FROM".into())),
            Kind::Refused(m) => Err(BuildError::Invalid(m.clone())),
            Kind::Env(pairs) => {
                let mut msg = String::from("ENV");
                for (k, v) in pairs {
                    let env = st.expand_env();
                    let k = process_word(k, &env, esc)?;
                    let v = process_word(v, &env, esc)?;
                    msg.push_str(&format!(" {k}={v}"));
                    st.set_env(&k, &v);
                }
                let key = self.comment_key(st, &msg);
                self.commit_meta(st, key).await
            }
            Kind::Label(pairs) => {
                let mut msg = String::from("LABEL");
                let mut labels = st
                    .config
                    .get("Labels")
                    .and_then(|l| l.as_object().cloned())
                    .unwrap_or_default();
                for (k, v) in pairs {
                    let env = st.expand_env();
                    let k = process_word(k, &env, esc)?;
                    let v = process_word(v, &env, esc)?;
                    msg.push_str(&format!(" {k}={v}"));
                    labels.insert(k, json!(v));
                }
                st.config.insert("Labels".into(), Value::Object(labels));
                let key = self.comment_key(st, &msg);
                self.commit_meta(st, key).await
            }
            Kind::Arg(list) => {
                let mut parts = Vec::new();
                for (k, dflt) in list {
                    let env = st.expand_env();
                    let d = dflt
                        .as_ref()
                        .map(|v| process_word(v, &env, esc))
                        .transpose()?;
                    let inherited = d.clone().or_else(|| {
                        self.meta
                            .iter()
                            .find(|(m, _)| m == k)
                            .and_then(|(_, v)| v.clone())
                    });
                    let v = self.arg_value(k, inherited);
                    parts.push(match &d {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    });
                    st.args.retain(|(n, _)| n != k);
                    st.args.push((k.clone(), v));
                    self.used_args.insert(k.clone());
                }
                let key = self.comment_key(st, &format!("ARG {}", parts.join(" ")));
                self.commit_meta(st, key).await
            }
            Kind::Expose(words) => {
                let mut ports = st
                    .config
                    .get("ExposedPorts")
                    .and_then(|p| p.as_object().cloned())
                    .unwrap_or_default();
                let mut listed = Vec::new();
                for w in words {
                    for p in process_words(w, &st.expand_env(), esc)? {
                        for port in expand_ports(&p)? {
                            ports.insert(port, json!({}));
                        }
                        listed.push(p);
                    }
                }
                // The words as written, sorted (dockerd's history text).
                listed.sort();
                st.config
                    .insert("ExposedPorts".into(), Value::Object(ports));
                let key = self.comment_key(st, &format!("EXPOSE {}", listed.join(" ")));
                self.commit_meta(st, key).await
            }
            Kind::Volume(vols) => {
                let mut v = st
                    .config
                    .get("Volumes")
                    .and_then(|p| p.as_object().cloned())
                    .unwrap_or_default();
                let mut list = Vec::new();
                for w in vols {
                    let p = process_word(w, &st.expand_env(), esc)?;
                    if p.trim().is_empty() {
                        return Err(BuildError::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    v.insert(p.clone(), json!({}));
                    list.push(p);
                }
                st.config.insert("Volumes".into(), Value::Object(v));
                let key = self.comment_key(st, &format!("VOLUME {}", crate::gofmt::list(&list)));
                self.commit_meta(st, key).await
            }
            Kind::User(u) => {
                let u = process_word(u, &st.expand_env(), esc)?;
                st.config.insert("User".into(), json!(u));
                let key = self.comment_key(st, &format!("USER {u}"));
                self.commit_meta(st, key).await
            }
            Kind::Stopsignal(s) => {
                let s = process_word(s, &st.expand_env(), esc)?;
                check_signal(&s)?;
                st.config.insert("StopSignal".into(), json!(s));
                let key = self.comment_key(st, &format!("STOPSIGNAL {s}"));
                self.commit_meta(st, key).await
            }
            Kind::Maintainer(m) => {
                st.maintainer = m.clone();
                let key = self.comment_key(st, &format!("MAINTAINER {m}"));
                self.commit_meta(st, key).await
            }
            Kind::Onbuild(t) => {
                let mut list = str_list(&st.config.get("OnBuild").cloned().unwrap_or(Value::Null));
                list.push(t.clone());
                st.config.insert("OnBuild".into(), json!(list));
                let key = self.comment_key(st, &format!("ONBUILD {t}"));
                self.commit_meta(st, key).await
            }
            Kind::Shell(s) => {
                st.config.insert("Shell".into(), json!(s));
                let key = self.comment_key(st, &format!("SHELL {}", crate::gofmt::list(s)));
                self.commit_meta(st, key).await
            }
            Kind::Cmd(c) => {
                let cmd = self.command(st, c);
                st.config.insert("Cmd".into(), json!(cmd));
                st.cmd_set = true;
                let key = self.comment_key(st, &format!("CMD {}", crate::gofmt::quote_list(&cmd)));
                self.commit_meta(st, key).await
            }
            Kind::Entrypoint(c) => {
                let ep = self.command(st, c);
                st.config.insert("Entrypoint".into(), json!(ep));
                if !st.cmd_set {
                    st.config.insert("Cmd".into(), Value::Null);
                }
                let key =
                    self.comment_key(st, &format!("ENTRYPOINT {}", crate::gofmt::quote_list(&ep)));
                self.commit_meta(st, key).await
            }
            Kind::Healthcheck(h) => {
                let hc = crate::run::healthcheck(st, h)?;
                let text = crate::run::healthcheck_text(&hc);
                st.config.insert("Healthcheck".into(), hc);
                let key = self.comment_key(st, &format!("HEALTHCHECK {text}"));
                self.commit_meta(st, key).await
            }
            Kind::Workdir(w) => crate::run::workdir(self, st, w).await,
            Kind::Run(c) => crate::run::run(self, st, c).await,
            Kind::Copy(spec) => crate::addcopy::copy(self, st, spec).await,
        }
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` as dockerd's port keys.
fn expand_ports(p: &str) -> Result<Vec<String>> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(BuildError::Invalid(format!("invalid proto: {proto}")));
    }
    let bad = || BuildError::Invalid(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = ports.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

fn check_signal(s: &str) -> Result<()> {
    if s.parse::<u32>().is_ok_and(|n| n > 0 && n < 65) {
        return Ok(());
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    const NAMES: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
        "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
    ];
    if NAMES.contains(&name.as_str()) || name.starts_with("RTMIN") || name.starts_with("RTMAX") {
        Ok(())
    } else {
        Err(BuildError::Invalid(format!("Invalid signal: {s}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports() {
        assert_eq!(super::expand_ports("80").expect("p"), ["80/tcp"]);
        assert_eq!(super::expand_ports("53/UDP").expect("p"), ["53/udp"]);
        assert_eq!(super::expand_ports("8000-8002").expect("p").len(), 3);
        assert!(super::expand_ports("x").is_err());
        assert!(super::check_signal("SIGKILL").is_ok());
        assert!(super::check_signal("9").is_ok());
        assert!(super::check_signal("NOPE").is_err());
    }
}
