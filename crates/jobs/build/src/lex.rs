//! Variable expansion and word handling of Dockerfile arguments, as BuildKit's
//! `frontend/dockerfile/shell/lex.go` does it for the classic builder: quotes,
//! the escape character, `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`,
//! `${v:?m}`, `${v?m}`, `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}` and
//! `${v//p/r}`. Written here because no crate implements BuildKit's rules (the
//! parser crate leaves expansion to its users).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError(pub String);

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(m: impl Into<String>) -> LexError {
    LexError(m.into())
}

/// The variables a word is expanded with: `NAME=value` pairs, the last one of a
/// name winning (the builder passes its config's Env, then the build args).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for [String] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

impl Env for Vec<String> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

/// Expands one word (quotes removed, escapes applied).
pub fn process_word(word: &str, env: &dyn Env, escape: char) -> Result<String, LexError> {
    let mut l = Lexer::new(word, env, escape);
    let (s, _) = l.process_stop_on(None, false)?;
    Ok(s)
}

/// Expands a word and splits the result into fields at unquoted whitespace, as
/// a shell would (`EXPOSE $PORTS`).
pub fn process_words(word: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, LexError> {
    let mut l = Lexer::new(word, env, escape);
    l.process_stop_on(None, false)?;
    Ok(l.words.take())
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
    /// The current word has content (possibly empty quotes).
    started: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            self.flush();
        } else {
            self.cur.push(c);
            self.started = true;
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.cur.push(c);
        self.started = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.cur.push_str(s);
        self.started = true;
    }
    fn flush(&mut self) {
        if self.started {
            self.words.push(std::mem::take(&mut self.cur));
            self.started = false;
        }
    }
    fn take(&mut self) -> Vec<String> {
        self.flush();
        std::mem::take(&mut self.words)
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    escape: char,
    words: Words,
}

impl<'a> Lexer<'a> {
    fn new(word: &str, env: &'a dyn Env, escape: char) -> Lexer<'a> {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
            words: Words::default(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads up to `stop` (consumed); `raw_escapes` keeps escape characters
    /// (patterns of `#`, `%` and `/` match them themselves). Returns the text
    /// and whether `stop` was found.
    fn process_stop_on(
        &mut self,
        stop: Option<&[char]>,
        raw_escapes: bool,
    ) -> Result<(String, bool), LexError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if stop.is_some_and(|s| s.contains(&c)) {
                return Ok((out, true));
            }
            match c {
                '\'' => {
                    let s = self.single_quote()?;
                    self.words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    self.words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    self.words.add_string(&s);
                    out.push_str(&s);
                }
                _ => {
                    self.next();
                    if c == self.escape {
                        let Some(n) = self.next() else { break };
                        if raw_escapes {
                            out.push(c);
                        }
                        self.words.add_raw_char(n);
                        out.push(n);
                    } else {
                        self.words.add_char(c);
                        out.push(c);
                    }
                }
            }
        }
        Ok((out, false))
    }

    fn single_quote(&mut self) -> Result<String, LexError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, LexError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                            }
                            Some(_) => out.push(c),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!0".contains(c) {
                self.next();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, LexError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.env.get(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(err("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(err("syntax error: bad substitution")),
            _ => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err(err("syntax error: missing '}'"));
        };
        let mut chs = ch.to_string();
        let mut null_is_unset = false;
        if ch == '}' {
            return Ok(self.env.get(&name).unwrap_or_default());
        }
        if ch == ':' {
            null_is_unset = true;
            ch = self
                .next()
                .ok_or_else(|| err("syntax error: missing '}'"))?;
            chs.push(ch);
        }
        match ch {
            '+' | '-' | '?' | '#' | '%' => {
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(err(format!("unsupported modifier ({chs}) in substitution")));
                }
                let word = self.word_until(&['}'], raw)?;
                let value = self.env.get(&name);
                let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match ch {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) if null_is_unset && v.is_empty() => Err(err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) => Ok(v),
                    },
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word),
                        };
                        let re = glob_regex(&pat, self.escape)?;
                        Ok(if ch == '#' {
                            trim_prefix(&value, &re, greedy)
                        } else {
                            trim_suffix(&value, &re, greedy)
                        })
                    }
                }
            }
            '/' if !null_is_unset => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, found) = self.process_stop_on(Some(&['/', '}']), true)?;
                if !found {
                    return Err(err("syntax error: missing '}'"));
                }
                let replacement = if self.next() == Some('/') {
                    self.word_until(&['}'], true)?
                } else {
                    String::new()
                };
                let value = self.env.get(&name).unwrap_or_default();
                let re = glob_regex(&pattern, self.escape)?;
                Ok(replace(&value, &re, &replacement, all))
            }
            _ => Err(err(format!("unsupported modifier ({chs}) in substitution"))),
        }
    }

    /// The word of a modifier, up to and including the closing brace.
    fn word_until(&mut self, stop: &[char], raw: bool) -> Result<String, LexError> {
        let saved = std::mem::take(&mut self.words);
        let r = self.process_stop_on(Some(stop), raw);
        self.words = saved;
        let (word, found) = r?;
        if !found {
            return Err(err("syntax error: missing '}'"));
        }
        self.next();
        Ok(word)
    }
}

/// A shell pattern (`*`, `?`, `[...]`, escapes) as an anchored-nowhere regex.
fn glob_regex(pat: &str, escape: char) -> Result<regex::Regex, LexError> {
    let mut re = String::new();
    let mut chars = pat.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') || chars.peek() == Some(&'^') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == ']' {
                        closed = true;
                        break;
                    }
                    if n == '\\' || n == '[' {
                        class.push('\\');
                    }
                    class.push(n);
                }
                if !closed {
                    return Err(err(format!("invalid pattern {pat:?}")));
                }
                class.push(']');
                re.push_str(&class);
            }
            c if c == escape => {
                if let Some(n) = chars.next() {
                    re.push_str(&regex::escape(&n.to_string()));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| err(e.to_string()))
}

/// Char boundaries of `s`, both ends included.
fn bounds(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn trim_prefix(value: &str, re: &regex::Regex, greedy: bool) -> String {
    let b = bounds(value);
    let mut ends: Box<dyn Iterator<Item = &usize>> = if greedy {
        Box::new(b.iter().rev())
    } else {
        Box::new(b.iter())
    };
    match ends.find(|&&e| re.is_match(&value[..e])) {
        Some(&e) => value[e..].to_string(),
        None => value.to_string(),
    }
}

fn trim_suffix(value: &str, re: &regex::Regex, greedy: bool) -> String {
    let b = bounds(value);
    let mut starts: Box<dyn Iterator<Item = &usize>> = if greedy {
        Box::new(b.iter())
    } else {
        Box::new(b.iter().rev())
    };
    match starts.find(|&&s| re.is_match(&value[s..])) {
        Some(&s) => value[..s].to_string(),
        None => value.to_string(),
    }
}

/// `${v/p/r}`: the longest match of `p` at the leftmost place it matches.
fn replace(value: &str, re: &regex::Regex, with: &str, all: bool) -> String {
    let b = bounds(value);
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() - 1 {
        let s = b[i];
        let hit = b[i + 1..]
            .iter()
            .rev()
            .find(|&&e| re.is_match(&value[s..e]))
            .copied();
        match hit {
            Some(e) => {
                out.push_str(with);
                out.push_str(if all { "" } else { &value[e..] });
                if !all {
                    return out;
                }
                i = b.iter().position(|&x| x == e).unwrap_or(b.len() - 1);
            }
            None => {
                out.push_str(&value[s..b[i + 1]]);
                i += 1;
            }
        }
    }
    out
}

/// Splits an instruction's arguments into words at unquoted whitespace, keeping
/// quotes and escapes for the expansion that follows (BuildKit's `parseWords`,
/// used for ENV, LABEL and ARG).
pub fn split_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut blank = true;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if blank {
            if c.is_whitespace() {
                continue;
            }
            blank = false;
        }
        if quote.is_none() && c.is_whitespace() {
            words.push(std::mem::take(&mut word));
            blank = true;
            continue;
        }
        word.push(c);
        if c == escape {
            if let Some(n) = chars.next() {
                word.push(n);
            }
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '\'' || c == '"' => quote = Some(c),
            _ => {}
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<String> {
        [
            "A=apple",
            "E=",
            "P=/usr/local/bin:/usr/bin",
            "F=file.tar.gz",
            "S=a b  c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn w(s: &str) -> String {
        process_word(s, &env(), '\\').expect(s)
    }

    fn e(s: &str) -> String {
        process_word(s, &env(), '\\').expect_err(s).0
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A"), "apple");
        assert_eq!(w("${A}"), "apple");
        assert_eq!(w("x${A}y"), "xappley");
        assert_eq!(w("$Ax"), "");
        assert_eq!(w("$NOPE-"), "-");
        assert_eq!(w("$"), "$");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$1"), "");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "apple");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("\"a\\\"b\""), "a\"b");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("'a'\"b\"c"), "abc");
        assert_eq!(
            e("'abc"),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            e("\"abc"),
            "unexpected end of statement while looking for matching double-quote"
        );
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(w("${NOPE:-dflt}"), "dflt");
        assert_eq!(w("${E:-dflt}"), "dflt");
        assert_eq!(w("${E-dflt}"), "");
        assert_eq!(w("${NOPE-dflt}"), "dflt");
        assert_eq!(w("${A:-dflt}"), "apple");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${E:+alt}"), "");
        assert_eq!(w("${E+alt}"), "alt");
        assert_eq!(w("${NOPE+alt}"), "");
        assert_eq!(w("${NOPE:-$A}"), "apple");
        assert_eq!(w("${NOPE:-'x y'}"), "x y");
    }

    #[test]
    fn required() {
        assert_eq!(e("${NOPE?}"), "NOPE: is not allowed to be unset");
        assert_eq!(e("${NOPE:?must be set}"), "NOPE: must be set");
        assert_eq!(e("${E:?}"), "E: is not allowed to be empty");
        assert_eq!(w("${E?}"), "");
        assert_eq!(w("${A:?}"), "apple");
    }

    #[test]
    fn trims() {
        assert_eq!(w("${F#*.}"), "tar.gz");
        assert_eq!(w("${F##*.}"), "gz");
        assert_eq!(w("${F%.*}"), "file.tar");
        assert_eq!(w("${F%%.*}"), "file");
        assert_eq!(w("${F#nomatch}"), "file.tar.gz");
        assert_eq!(w("${P%%:*}"), "/usr/local/bin");
        assert_eq!(w("${F#f?l}"), "e.tar.gz");
        assert_eq!(w("${F%[.]gz}"), "file.tar");
        assert_eq!(e("${F:#x}"), "unsupported modifier (:#) in substitution");
    }

    #[test]
    fn replacements() {
        assert_eq!(w("${F/./-}"), "file-tar.gz");
        assert_eq!(w("${F//./-}"), "file-tar-gz");
        assert_eq!(w("${F/t*r/X}"), "file.X.gz");
        assert_eq!(w("${F//a}"), "file.tr.gz");
        assert_eq!(w("${NOPE/a/b}"), "");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(e("${A"), "syntax error: missing '}'");
        assert_eq!(e("${}"), "syntax error: bad substitution");
        assert_eq!(e("${:a}"), "syntax error: bad substitution");
        assert_eq!(e("${A:-x"), "syntax error: missing '}'");
        assert_eq!(e("${A!}"), "unsupported modifier (!) in substitution");
    }

    #[test]
    fn other_escape_character() {
        assert_eq!(process_word("a`$A", &env(), '`').expect("word"), "a$A");
        assert_eq!(
            process_word("C:\\dir", &env(), '`').expect("word"),
            "C:\\dir"
        );
    }

    #[test]
    fn word_splitting() {
        let ws = |s: &str| process_words(s, &env(), '\\').expect(s);
        assert_eq!(ws("80 $S"), ["80", "a", "b", "c"]);
        assert_eq!(ws("\"$S\" x"), ["a b  c", "x"]);
        assert_eq!(ws("''"), [""]);
    }

    #[test]
    fn splitting_arguments_keeps_quotes() {
        assert_eq!(
            split_words("a=b c=\"d e\"  f='g h' i=j\\ k", '\\'),
            ["a=b", "c=\"d e\"", "f='g h'", "i=j\\ k"]
        );
        assert_eq!(split_words("  x  ", '\\'), ["x"]);
    }
}
