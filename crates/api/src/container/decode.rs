//! Request bodies decoded into the typed models, refused with the words Go's
//! `encoding/json` uses (what dockerd answers), e.g. `json: cannot unmarshal
//! number 65546 into Go struct field HostConfig.HostConfig.BlkioWeight of type
//! uint16`.

use serde::de::DeserializeOwned;

use crate::ApiError;

/// The Go type a serde expectation names.
fn go_type(expected: &str) -> &str {
    match expected {
        "u8" => "uint8",
        "u16" => "uint16",
        "u32" => "uint32",
        "u64" => "uint64",
        "i8" => "int8",
        "i16" => "int16",
        "i32" => "int32",
        "i64" => "int64",
        "f64" | "f32" => "float64",
        "a string" => "string",
        "a boolean" => "bool",
        "a sequence" => "[]string",
        "a map" => "map[string]string",
        other => other,
    }
}

/// The Go struct that holds the field at the end of `path` (its parent's type).
fn go_struct<'a>(path: &[&'a str], top: &'a str) -> &'a str {
    match path.len().checked_sub(2).and_then(|i| path.get(i)) {
        None => top,
        Some(&"Healthcheck") => "HealthConfig",
        Some(&"EndpointsConfig") | Some(&"EndpointConfig") => "EndpointSettings",
        Some(&"IPAMConfig") => "EndpointIPAMConfig",
        Some(p) => p,
    }
}

/// Go's type for a field whose serde type names it differently.
fn go_field_type<'a>(path: &[&str], serde_type: &'a str) -> &'a str {
    match path {
        [.., "Healthcheck", "Interval" | "Timeout" | "StartPeriod" | "StartInterval"] => {
            "time.Duration"
        }
        [.., "RestartPolicy", "MaximumRetryCount"] => "int",
        _ => serde_type,
    }
}

/// Go's field path: struct fields only (no array indices, no map keys).
fn go_path(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut map_next = false;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        if map_next || seg.starts_with('[') || seg.chars().all(|c| c.is_ascii_digit()) {
            map_next = false;
            continue;
        }
        // Maps of structs: the key is no field.
        map_next = matches!(seg, "EndpointsConfig" | "PortBindings");
        out.push(seg.split('[').next().unwrap_or(seg));
    }
    out
}

/// Turns serde's `invalid type: string "x", expected i64` or `invalid value:
/// integer `65546`, expected u16` into Go's `cannot unmarshal …`.
fn go_words(msg: &str, path: &str, top: &str) -> Option<String> {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let (found, expected) = msg.split_once(", expected ")?;
    // Go names the number only when it is out of the type's range.
    let value = if let Some(v) = found.strip_prefix("invalid value: integer `") {
        format!("number {}", v.trim_end_matches('`'))
    } else if let Some(v) = found.strip_prefix("invalid type: ") {
        match v.split_whitespace().next()? {
            "integer" | "floating" => "number".into(),
            "boolean" => "bool".into(),
            "map" => "object".into(),
            "sequence" => "array".into(),
            w => w.to_string(),
        }
    } else {
        return None;
    };
    let segs = go_path(path);
    Some(format!(
        "json: cannot unmarshal {value} into Go struct field {}.{} of type {}",
        go_struct(&segs, top),
        segs.join("."),
        go_field_type(&segs, go_type(expected))
    ))
}

/// Decodes `body` as a `T`; `top` is the Go type dockerd decodes it into.
pub fn decode<T: DeserializeOwned>(body: &[u8], top: &str) -> crate::Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(format!("invalid JSON: {inner}"));
        }
        let msg = inner.to_string();
        ApiError::invalid(
            go_words(&msg, &path, top).unwrap_or_else(|| {
                format!("invalid {top}: {}: {msg}", path.trim_start_matches('.'))
            }),
        )
    })
}

/// As [`decode`], for a body that may be left out (or be `null`): its default.
pub fn decode_optional<T: DeserializeOwned + Default>(body: &[u8], top: &str) -> crate::Result<T> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    decode(body, top)
}

#[cfg(test)]
mod tests {
    use crate::container::CreateRequest;

    fn err(body: &str) -> String {
        CreateRequest::parse(body.as_bytes())
            .err()
            .map(|e| e.message)
            .unwrap_or_else(|| format!("{body} accepted"))
    }

    #[test]
    fn wrong_types_are_refused_in_gos_words() {
        assert_eq!(
            err(r#"{"Image":"x","HostConfig":{"BlkioWeight":65546}}"#),
            "json: cannot unmarshal number 65546 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"
        );
        assert_eq!(
            err(r#"{"Image":"x","HostConfig":{"Memory":"1g"}}"#),
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"
        );
        assert_eq!(
            err(r#"{"Image":"x","Tty":"yes"}"#),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool"
        );
        // The rest as dockerd 20.10 words them.
        for (body, want) in [
            (
                r#"{"HostConfig":{"RestartPolicy":{"MaximumRetryCount":"3"}}}"#,
                "string into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount of type int",
            ),
            (
                r#"{"Cmd":5}"#,
                "number into Go struct field ContainerConfigWrapper.Cmd of type string",
            ),
            (
                r#"{"Cmd":["a",5]}"#,
                "number into Go struct field ContainerConfigWrapper.Cmd of type string",
            ),
            (
                r#"{"HostConfig":{"Binds":"x"}}"#,
                "string into Go struct field HostConfig.HostConfig.Binds of type []string",
            ),
            (
                r#"{"NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":"x"}}}}"#,
                "string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string",
            ),
            (
                r#"{"Healthcheck":{"Interval":"x"}}"#,
                "string into Go struct field HealthConfig.Healthcheck.Interval of type time.Duration",
            ),
        ] {
            assert_eq!(err(body), format!("json: cannot unmarshal {want}"), "{body}");
        }
        assert!(err(r#"{"Image":"x""#).starts_with("invalid JSON: "));
    }

    #[test]
    fn nulls_and_strings_read_as_go_reads_them() {
        let r = CreateRequest::parse(
            br#"{"Image":"x","Cmd":"sh","Env":null,"Labels":null,"Tty":null,"ExposedPorts":{"80/tcp":null},
                "HostConfig":{"Binds":null,"Memory":null,"NewField":{"a":1}},"NetworkingConfig":null,"Future":1}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            r.config.cmd.clone().map(|c| c.0),
            Some(vec!["sh".to_string()])
        );
        assert!(r.config.env.is_empty() && r.config.labels.is_empty() && !r.config.tty);
        assert_eq!(r.config.exposed(), vec!["80/tcp".to_string()]);
        assert_eq!(r.config.extra.keys().collect::<Vec<_>>(), vec!["Future"]);
        let hc = r.host_config.unwrap_or_default();
        assert_eq!((hc.memory, &hc.binds), (0, &None));
        let back = serde_json::to_value(&hc).unwrap_or_default();
        assert_eq!(
            back["NewField"],
            serde_json::json!({"a": 1}),
            "unknown fields are kept"
        );
        assert_eq!(
            back["Memory"],
            serde_json::json!(0),
            "scalars are shown as Go shows them"
        );
        assert_eq!(back["Binds"], serde_json::Value::Null);
        assert!(back.get("Init").is_none(), "omitempty fields are left out");
    }
}
