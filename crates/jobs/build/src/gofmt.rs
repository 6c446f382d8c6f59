//! Go's `%q` and `%v` of string lists, as dockerd writes them into history
//! (`CMD ["sh" "-c" "x"]`, `VOLUME [/a /b]`): clients and caches compare these.

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%q` of a `[]string`.
pub fn quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
    )
}

/// `%v` of a `[]string`.
pub fn list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// A Go duration string (`1m30s`, `500ms`) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

/// A duration in nanoseconds as Go's `time.Duration.String()` writes it.
pub fn duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return if ns % 1_000_000 == 0 {
            format!("{}ms", ns / 1_000_000)
        } else if ns % 1000 == 0 {
            format!("{}µs", ns / 1000)
        } else {
            format!("{ns}ns")
        };
    }
    let mut out = String::new();
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = ns % 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = s as f64 / 1e9;
    let t = format!("{secs:.9}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    out.push_str(&format!("{t}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(
            quote_list(&["sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(list(&["/a".into(), "/b".into()]), "[/a /b]");
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(duration(90_000_000_000), "1m30s");
        assert_eq!(duration(5_000_000_000), "5s");
        assert_eq!(duration(1_500_000_000), "1.5s");
        assert_eq!(duration(0), "0s");
    }
}
