//! The process of a `docker exec`: the container's own process spec with the exec's
//! command, environment, user, directory and terminal, so it gets the container's
//! capabilities, rlimits and no-new-privileges unless `--privileged` widens them.

use serde_json::{json, Value};

/// What `POST /containers/{id}/exec` asks for, with the user already resolved.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// `KEY=value` entries that override the container's.
    pub env: Vec<String>,
    /// Empty: the container's working directory.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    /// All capabilities of the host's bounding set.
    pub privileged: bool,
    pub host_caps: Vec<String>,
}

/// Builds the exec's OCI `process` object from the container's.
pub fn exec_process(container: &Value, cfg: &ExecConfig) -> Value {
    let mut p = if container.is_object() {
        container.clone()
    } else {
        json!({})
    };
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for e in &cfg.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p["env"] = json!(env);
    p["args"] = json!(cfg.args);
    p["terminal"] = json!(cfg.tty);
    if !cfg.cwd.is_empty() {
        p["cwd"] = json!(cfg.cwd);
    } else if p["cwd"].as_str().is_none_or(str::is_empty) {
        p["cwd"] = json!("/");
    }
    p["user"] = json!({ "uid": cfg.uid, "gid": cfg.gid, "additionalGids": cfg.additional_gids });
    if cfg.privileged {
        let caps = &cfg.host_caps;
        p["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
        });
    }
    // The terminal size of the container's own start means nothing here.
    if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_keeps_the_containers_process_and_overrides_what_it_asks() {
        let base = json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sleep", "100"],
            "env": ["PATH=/bin", "A=1", "B=2"],
            "cwd": "/work",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10}],
        });
        let cfg = ExecConfig {
            args: vec!["sh".into(), "-c".into(), "id".into()],
            env: vec!["B=3".into(), "C=4".into()],
            uid: 65534,
            gid: 65534,
            tty: true,
            ..Default::default()
        };
        let p = exec_process(&base, &cfg);
        assert_eq!(p["args"], json!(["sh", "-c", "id"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "A=1", "B=3", "C=4"]));
        assert_eq!(p["cwd"], "/work");
        assert_eq!(p["user"]["uid"], 65534);
        assert_eq!(p["terminal"], true);
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_KILL"]));
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["rlimits"][0]["hard"], 10);

        let cfg = ExecConfig {
            args: vec!["true".into()],
            cwd: "/tmp".into(),
            privileged: true,
            host_caps: vec!["CAP_SYS_ADMIN".into(), "CAP_KILL".into()],
            ..Default::default()
        };
        let p = exec_process(&base, &cfg);
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(
            p["capabilities"]["effective"],
            json!(["CAP_SYS_ADMIN", "CAP_KILL"])
        );
    }
}
