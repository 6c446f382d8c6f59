//! Dockerfile instructions given as `changes` to import and commit
//! (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`,
//! `STOPSIGNAL`, `ONBUILD`), applied to an image's container config.

use crate::{ApiError, Result};
use serde_json::{json, Map, Value};

/// `["a","b"]` (JSON form) or a shell form run by `/bin/sh -c`.
fn command(arg: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(arg.trim()) {
        Ok(v) => json!(v),
        Err(_) => json!(["/bin/sh", "-c", arg.trim()]),
    }
}

/// `k=v k2="v 2"` or the legacy `k v` form.
fn pairs(arg: &str) -> Result<Vec<(String, String)>> {
    let arg = arg.trim();
    if !arg.contains('=') {
        let (k, v) = arg
            .split_once(char::is_whitespace)
            .ok_or_else(|| ApiError::invalid(format!("invalid instruction argument: {arg:?}")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut rest = arg;
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once('=')
            .ok_or_else(|| ApiError::invalid(format!("invalid key=value: {rest:?}")))?;
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| ApiError::invalid("unterminated quote"))?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((k.trim().to_string(), v));
        rest = next.trim_start();
    }
    Ok(out)
}

/// Applies `changes` to `config` (the image's `config` object).
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (instr, arg) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(arg));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(arg));
            }
            "ENV" => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                for (k, v) in pairs(arg)? {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                config.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                if labels.is_null() {
                    *labels = json!({});
                }
                for (k, v) in pairs(arg)? {
                    if let Some(o) = labels.as_object_mut() {
                        o.insert(k, json!(v));
                    }
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                if ports.is_null() {
                    *ports = json!({});
                }
                for p in arg.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    if let Some(o) = ports.as_object_mut() {
                        o.insert(p, json!({}));
                    }
                }
            }
            "VOLUME" => {
                let vols = config.entry("Volumes").or_insert_with(|| json!({}));
                if vols.is_null() {
                    *vols = json!({});
                }
                let list: Vec<String> = serde_json::from_str(arg.trim())
                    .unwrap_or_else(|_| arg.split_whitespace().map(str::to_string).collect());
                for v in list {
                    if let Some(o) = vols.as_object_mut() {
                        o.insert(v, json!({}));
                    }
                }
            }
            "USER" => {
                config.insert("User".into(), json!(arg.trim()));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(arg.trim()));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(arg.trim()));
            }
            "ONBUILD" => {
                let list = config.entry("OnBuild").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(arg.trim()));
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{other} is not a valid change command"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_dockerfile_changes() {
        let mut c = Map::new();
        apply(
            &mut c,
            &[
                r#"CMD ["sh","-c","echo hi"]"#.into(),
                "ENTRYPOINT /bin/init".into(),
                "ENV A=1 B=\"two words\"".into(),
                "ENV A 3".into(),
                "EXPOSE 80 53/udp".into(),
                "WORKDIR /srv".into(),
                "LABEL tier=web".into(),
            ],
        )
        .expect("apply");
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/init"]));
        assert_eq!(c["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        assert_eq!(c["Labels"], json!({"tier": "web"}));
        assert!(apply(&mut c, &["FROB x".into()]).is_err());
    }
}
