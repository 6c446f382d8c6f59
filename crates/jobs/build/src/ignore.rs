//! `.dockerignore` patterns, matched as moby's `patternmatcher` matches them:
//! Go's `filepath.Match` syntax plus `**`, `!` exceptions, the last matching
//! pattern deciding, and a pattern that matches a directory matching all in it.

use regex::Regex;

struct Pattern {
    re: Regex,
    exclusion: bool,
}

pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Reads a `.dockerignore` file's lines.
pub fn read_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.starts_with('#'))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => ("!", p.trim()),
                None => ("", l),
            };
            let mut p = crate::scope::clean_rel(p);
            if p.is_empty() {
                p = ".".into();
            }
            format!("{neg}{p}")
        })
        .collect()
}

fn to_regex(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                    re.push_str("(.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut class = String::from("[");
                i += 1;
                if chars.get(i) == Some(&'^') || chars.get(i) == Some(&'!') {
                    class.push('^');
                    i += 1;
                }
                let mut closed = false;
                while i < chars.len() {
                    let n = chars[i];
                    if n == ']' {
                        closed = true;
                        break;
                    }
                    if n == '\\' {
                        i += 1;
                        if let Some(e) = chars.get(i) {
                            class.push_str(&regex::escape(&e.to_string()));
                        }
                    } else if n == '[' {
                        class.push_str("\\[");
                    } else {
                        class.push(n);
                    }
                    i += 1;
                }
                if !closed {
                    return Err(format!("syntax error in pattern {pattern:?}"));
                }
                class.push(']');
                re.push_str(&class);
            }
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(e) => re.push_str(&regex::escape(&e.to_string())),
                    None => return Err(format!("syntax error in pattern {pattern:?}")),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

impl Matcher {
    pub fn new(patterns: &[String]) -> Result<Matcher, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let (exclusion, p) = match p.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, p.as_str()),
                };
                Ok(Pattern {
                    re: to_regex(p)?,
                    exclusion,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Matcher { patterns })
    }

    /// Whether `path` (relative, `/`-separated) is excluded: it or a parent
    /// directory matches, the last pattern that says anything winning.
    pub fn excluded(&self, path: &str) -> bool {
        let path = crate::scope::clean_rel(path);
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = p.re.is_match(&path) || parents.iter().any(|d| p.re.is_match(d));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(lines: &str) -> Matcher {
        Matcher::new(&read_patterns(lines)).expect("patterns")
    }

    #[test]
    fn patterns_and_exceptions() {
        let x = m("# comment\n*.md\n!README.md\ntarget/\n**/*.tmp\n/abs\n");
        assert!(x.excluded("a.md"));
        assert!(!x.excluded("README.md"));
        assert!(!x.excluded("dir/a.md"), "* does not cross /");
        assert!(x.excluded("target/debug/x"));
        assert!(x.excluded("a/b/c.tmp"));
        assert!(x.excluded("c.tmp"));
        assert!(x.excluded("abs"));
        assert!(!x.excluded("src/main.rs"));
    }

    #[test]
    fn dockerfile_self_exclusion() {
        let x = m("Dockerfile\n.dockerignore\n");
        assert!(x.excluded("Dockerfile"));
        assert!(x.excluded(".dockerignore"));
        assert!(!m("*\n!Dockerfile").excluded("Dockerfile"));
        assert!(m("*\n").excluded("sub/dir/file"));
    }

    #[test]
    fn classes_and_escapes() {
        let x = m("file[0-9]\n\\*star\n");
        assert!(x.excluded("file1"));
        assert!(!x.excluded("filex"));
        assert!(x.excluded("*star"));
        assert!(!x.excluded("xstar"));
    }
}
