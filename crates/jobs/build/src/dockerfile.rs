//! A Dockerfile, parsed by the `parse-dockerfile` crate, turned into the
//! classic builder's instructions: stages, each instruction's original line
//! (what `Step i/N :` prints and ONBUILD stores), flags checked as dockerd
//! checks them, and the arguments left unexpanded (expansion needs the
//! environment of the step, see [`crate::lex`]).

use parse_dockerfile::{
    Command, Flag, HealthcheckArguments, Instruction, JsonOrStringArray, Source,
};

use crate::lex::split_words;

const BUILDKIT: &str =
    "Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled";

#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `None` for `HEALTHCHECK NONE`.
    pub cmd: Option<Cmd>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CopySpec {
    pub add: bool,
    pub srcs: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(Cmd),
    Cmd(Cmd),
    Entrypoint(Cmd),
    /// Raw `name=value` pairs (quotes kept; expanded when dispatched).
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Copy(CopySpec),
    Onbuild(String),
    Stopsignal(String),
    Healthcheck(Health),
    Maintainer(String),
    Shell(Vec<String>),
    /// Parsed, but only BuildKit can run it: the error comes when the step is
    /// reached, as with dockerd.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instr {
    /// The logical line, continuations joined (`Step i/N : <original>`).
    pub original: String,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub from: Instr,
    pub name: Option<String>,
    pub instrs: Vec<Instr>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub escape: char,
    /// ARGs before the first FROM (they serve FROM lines only).
    pub meta_args: Vec<Instr>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// Steps as dockerd counts them: meta ARGs, FROMs and instructions.
    pub fn steps(&self) -> usize {
        self.meta_args.len()
            + self
                .stages
                .iter()
                .map(|s| 1 + s.instrs.len())
                .sum::<usize>()
    }
}

/// Joins a logical line from the text at its start: an escape character ending
/// a line (trailing blanks allowed) continues it; comment and empty lines inside
/// are skipped, as BuildKit's parser does.
fn logical_line(text: &str, escape: char) -> String {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 {
            let t = line.trim_start();
            if t.starts_with('#') || t.is_empty() {
                continue;
            }
        }
        let trimmed = line.trim_end_matches([' ', '\t']);
        match trimmed.strip_suffix(escape) {
            Some(rest) => out.push_str(rest),
            None => {
                out.push_str(line);
                return out.trim().to_string();
            }
        }
    }
    out.trim().to_string()
}

fn parse_error(e: parse_dockerfile::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    // dockerd's words: `unknown instruction: FOO`.
    let msg = match msg.strip_prefix("unknown instruction '") {
        Some(rest) => format!("unknown instruction: {}", rest.trim_end_matches('\'')),
        None => msg,
    };
    format!("dockerfile parse error line {}: {msg}", e.line())
}

fn flag_value(f: &Flag<'_>) -> Option<String> {
    f.value.as_ref().map(|v| v.value.to_string())
}

fn needs_buildkit(flag: &str) -> String {
    format!("the --{flag} option requires BuildKit. {BUILDKIT}")
}

fn command(c: &Command<'_>, escape: char) -> Cmd {
    match c {
        Command::Exec(v) => Cmd::Exec(v.value.iter().map(|s| s.value.to_string()).collect()),
        Command::Shell(s) => Cmd::Shell(logical_line(s.value, escape)),
        _ => Cmd::Shell(String::new()),
    }
}

/// Parses `text`. Errors are dockerd's texts, for a 400 answer.
pub fn parse(text: &str) -> Result<Dockerfile, String> {
    let instructions = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#'));
    if !instructions {
        return Err("file with no instructions".into());
    }
    let df = parse_dockerfile::parse(text).map_err(parse_error)?;
    let escape = df
        .parser_directives
        .escape
        .as_ref()
        .map(|d| d.value.value)
        .unwrap_or('\\');
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        let start = keyword_start(ins);
        let original = logical_line(&text[start..], escape);
        let instr = convert(ins, original, escape)?;
        match (&instr.kind, stages.last_mut()) {
            (Kind::From { name, .. }, _) => stages.push(Stage {
                name: name.clone(),
                from: instr,
                instrs: Vec::new(),
            }),
            (Kind::Arg(_), None) => meta_args.push(instr),
            (_, Some(stage)) => stage.instrs.push(instr),
            (_, None) => return Err("no build stage in current context".into()),
        }
    }
    if stages.is_empty() && meta_args.is_empty() {
        return Err("file with no instructions".into());
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

/// Parses one ONBUILD trigger (`RUN echo hi`).
pub fn parse_trigger(trigger: &str) -> Result<Instr, String> {
    let text = format!("FROM scratch\n{trigger}\n");
    let df = parse(&text)?;
    df.stages
        .into_iter()
        .next()
        .and_then(|s| s.instrs.into_iter().next())
        .ok_or_else(|| format!("invalid ONBUILD trigger {trigger:?}"))
}

fn keyword_start(ins: &Instruction<'_>) -> usize {
    match ins {
        Instruction::Add(i) => i.add.span.start,
        Instruction::Arg(i) => i.arg.span.start,
        Instruction::Cmd(i) => i.cmd.span.start,
        Instruction::Copy(i) => i.copy.span.start,
        Instruction::Entrypoint(i) => i.entrypoint.span.start,
        Instruction::Env(i) => i.env.span.start,
        Instruction::Expose(i) => i.expose.span.start,
        Instruction::From(i) => i.from.span.start,
        Instruction::Healthcheck(i) => i.healthcheck.span.start,
        Instruction::Label(i) => i.label.span.start,
        Instruction::Maintainer(i) => i.maintainer.span.start,
        Instruction::Onbuild(i) => i.onbuild.span.start,
        Instruction::Run(i) => i.run.span.start,
        Instruction::Shell(i) => i.shell.span.start,
        Instruction::Stopsignal(i) => i.stopsignal.span.start,
        Instruction::User(i) => i.user.span.start,
        Instruction::Volume(i) => i.volume.span.start,
        Instruction::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

/// `name=value` pairs of ENV and LABEL; the legacy `ENV name value` form too.
fn name_values(what: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{what} requires at least one argument"));
    };
    if !first.contains('=') {
        // The old form: the first word is the name, the rest of the line its value.
        let value = rest.trim_start()[first.len()..].trim().to_string();
        if value.is_empty() {
            return Err(format!("{what} must have two arguments"));
        }
        return Ok(vec![(first.clone(), value)]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{what} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

fn string_array<const N: usize>(a: &JsonOrStringArray<'_, N>) -> Vec<String> {
    match a {
        JsonOrStringArray::Json(v) => v.value.iter().map(|s| s.value.to_string()).collect(),
        JsonOrStringArray::String(v) => v.iter().map(|s| s.value.to_string()).collect(),
    }
}

fn copy_spec(
    add: bool,
    options: &[Flag<'_>],
    src: &[Source<'_>],
    dest: &str,
) -> Result<Kind, String> {
    let mut spec = CopySpec {
        add,
        srcs: Vec::new(),
        dest: dest.to_string(),
        chown: None,
        from: None,
    };
    let mut refused = None;
    for f in options {
        match (&*f.name.value, add) {
            ("chown", _) => spec.chown = flag_value(f),
            ("from", false) => spec.from = flag_value(f),
            ("chmod", _) => refused = Some(needs_buildkit("chmod")),
            // Accepted and without effect in the classic builder, as in dockerd.
            ("link", _) | ("checksum", true) | ("keep-git-dir", true) => {}
            (name, _) => return Err(format!("Unknown flag: {name}")),
        }
    }
    for s in src {
        match s {
            Source::Path(p) => spec.srcs.push(p.value.to_string()),
            Source::HereDoc(_) => refused = Some(format!("heredocs require BuildKit. {BUILDKIT}")),
            _ => return Err("unsupported source".into()),
        }
    }
    if spec.srcs.is_empty() {
        return Err(format!(
            "{} requires at least two arguments, but only one was provided. Destination could not be determined.",
            if add { "ADD" } else { "COPY" }
        ));
    }
    Ok(match refused {
        Some(m) => Kind::Refused(m),
        None => Kind::Copy(spec),
    })
}

fn convert(ins: &Instruction<'_>, original: String, escape: char) -> Result<Instr, String> {
    let kind = match ins {
        Instruction::From(i) => {
            let mut platform = None;
            for f in &i.options {
                match &*f.name.value {
                    "platform" => platform = flag_value(f),
                    n => return Err(format!("Unknown flag: {n}")),
                }
            }
            let name = match &i.as_ {
                Some((_, n)) => {
                    let n = n.value.to_ascii_lowercase();
                    let ok = n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && n.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !ok {
                        return Err(format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            n
                        ));
                    }
                    Some(n)
                }
                None => None,
            };
            Kind::From {
                image: i.image.value.to_string(),
                name,
                platform,
            }
        }
        Instruction::Run(i) => {
            if let Some(f) = i.options.first() {
                Kind::Refused(needs_buildkit(&f.name.value))
            } else if !i.here_docs.is_empty() {
                Kind::Refused(format!("heredocs require BuildKit. {BUILDKIT}"))
            } else {
                Kind::Run(command(&i.arguments, escape))
            }
        }
        Instruction::Cmd(i) => Kind::Cmd(command(&i.arguments, escape)),
        Instruction::Entrypoint(i) => Kind::Entrypoint(command(&i.arguments, escape)),
        Instruction::Env(i) => Kind::Env(name_values("ENV", &i.arguments.value, escape)?),
        Instruction::Label(i) => Kind::Label(name_values("LABEL", &i.arguments.value, escape)?),
        Instruction::Arg(i) => {
            let words = split_words(&i.arguments.value, escape);
            if words.is_empty() {
                return Err("ARG requires exactly one argument".into());
            }
            Kind::Arg(
                words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            )
        }
        Instruction::Expose(i) => {
            Kind::Expose(i.arguments.iter().map(|s| s.value.to_string()).collect())
        }
        Instruction::Volume(i) => {
            let v = string_array(&i.arguments);
            if v.iter().all(|s| s.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(v)
        }
        Instruction::User(i) => Kind::User(i.arguments.value.to_string()),
        Instruction::Workdir(i) => Kind::Workdir(i.arguments.value.to_string()),
        Instruction::Copy(i) => copy_spec(false, &i.options, &i.src, &i.dest.value)?,
        Instruction::Add(i) => copy_spec(true, &i.options, &i.src, &i.dest.value)?,
        Instruction::Onbuild(i) => {
            match &*i.instruction {
                Instruction::Onbuild(_) => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                Instruction::From(_) | Instruction::Maintainer(_) => {
                    return Err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        original
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("")
                            .to_ascii_uppercase()
                    ))
                }
                _ => {}
            }
            let rest = original
                .trim_start()
                .get("ONBUILD".len()..)
                .unwrap_or("")
                .trim_start()
                .to_string();
            Kind::Onbuild(rest)
        }
        Instruction::Stopsignal(i) => Kind::Stopsignal(i.arguments.value.to_string()),
        Instruction::Healthcheck(i) => {
            let mut h = Health {
                cmd: None,
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            };
            for f in &i.options {
                let v = flag_value(f);
                match &*f.name.value {
                    "interval" => h.interval = v,
                    "timeout" => h.timeout = v,
                    "start-period" => h.start_period = v,
                    "start-interval" => h.start_interval = v,
                    "retries" => h.retries = v,
                    n => return Err(format!("Unknown flag: {n}")),
                }
            }
            match &i.arguments {
                HealthcheckArguments::Cmd { arguments, .. } => {
                    h.cmd = Some(command(arguments, escape))
                }
                HealthcheckArguments::None { .. } => {
                    if !i.options.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                }
                _ => return Err("unsupported HEALTHCHECK".into()),
            }
            Kind::Healthcheck(h)
        }
        Instruction::Maintainer(i) => Kind::Maintainer(i.name.value.to_string()),
        Instruction::Shell(i) => {
            let v: Vec<String> = i.arguments.iter().map(|s| s.value.to_string()).collect();
            if v.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            Kind::Shell(v)
        }
        _ => return Err(format!("unknown instruction: {original}")),
    };
    Ok(Instr { original, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        let df = parse(text).expect(text);
        df.stages
            .into_iter()
            .flat_map(|s| std::iter::once(s.from).chain(s.instrs))
            .map(|i| i.kind)
            .collect()
    }

    #[test]
    fn stages_meta_args_and_originals() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM $BASE AS Build\nRUN echo a && \\\n  # inside\n  echo b\n\nfrom build\ncmd [\"sh\"]\n",
        )
        .expect("parse");
        assert_eq!(df.meta_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages[0].instrs[0].original, "RUN echo a &&   echo b");
        assert_eq!(
            df.stages[0].instrs[0].kind,
            Kind::Run(Cmd::Shell("echo a &&   echo b".into()))
        );
        assert_eq!(df.stages[1].from.original, "from build");
        assert_eq!(
            df.stages[1].instrs[0].kind,
            Kind::Cmd(Cmd::Exec(vec!["sh".into()]))
        );
        assert_eq!(df.steps(), 5);
    }

    #[test]
    fn env_and_label_forms() {
        let k = kinds(
            "FROM a\nENV a=b c=\"d e\" \\\n    f=g\nENV legacy some value\nLABEL \"x y\"=z\n",
        );
        assert_eq!(
            k[1],
            Kind::Env(vec![
                ("a".into(), "b".into()),
                ("c".into(), "\"d e\"".into()),
                ("f".into(), "g".into())
            ])
        );
        assert_eq!(
            k[2],
            Kind::Env(vec![("legacy".into(), "some value".into())])
        );
        assert_eq!(k[3], Kind::Label(vec![("\"x y\"".into(), "z".into())]));
        assert!(parse("FROM a\nENV a=b c\n")
            .expect_err("no =")
            .contains("can't find = in \"c\""));
    }

    #[test]
    fn escape_directive() {
        let df = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo x\n").expect("parse");
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.stages[0].instrs[0].kind,
            Kind::Run(Cmd::Shell("dir c:\\   && echo x".into()))
        );
    }

    #[test]
    fn buildkit_only_syntax_is_refused() {
        let refused = |t: &str| match &kinds(t)[1] {
            Kind::Refused(m) => m.clone(),
            k => panic!("{k:?}"),
        };
        let e = refused("FROM a\nRUN --mount=type=cache,target=/x true\n");
        assert!(
            e.starts_with("the --mount option requires BuildKit."),
            "{e}"
        );
        let e = refused("FROM a\nCOPY --chmod=755 a /b\n");
        assert!(
            e.starts_with("the --chmod option requires BuildKit."),
            "{e}"
        );
        let e = refused("FROM a\nRUN <<EOF\necho\nEOF\n");
        assert!(e.starts_with("heredocs require BuildKit."), "{e}");
        assert_eq!(
            parse("FROM a\nCOPY --parents a /b\n").expect_err("x"),
            "Unknown flag: parents"
        );
    }

    #[test]
    fn copy_add_and_onbuild() {
        let k = kinds(
            "FROM a\nCOPY --from=0 --chown=u:g a b /c/\nADD --link x y\nONBUILD RUN echo hi\n",
        );
        assert_eq!(
            k[1],
            Kind::Copy(CopySpec {
                add: false,
                srcs: vec!["a".into(), "b".into()],
                dest: "/c/".into(),
                chown: Some("u:g".into()),
                from: Some("0".into())
            })
        );
        assert!(matches!(&k[2], Kind::Copy(c) if c.add && c.srcs == ["x"]));
        assert_eq!(k[3], Kind::Onbuild("RUN echo hi".into()));
        assert!(parse("FROM a\nONBUILD FROM b\n").is_err());
        let t = parse_trigger("RUN echo hi").expect("trigger");
        assert_eq!(t.kind, Kind::Run(Cmd::Shell("echo hi".into())));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("# only a comment\n").expect_err("empty"),
            "file with no instructions"
        );
        assert!(parse("FROM a\nFOO bar\n")
            .expect_err("unknown")
            .starts_with("dockerfile parse error line 2: unknown instruction: FOO"));
        assert!(parse("FROM a AS 1x\n").is_err());
        assert!(parse("FROM a\nVOLUME []\n").is_err());
    }
}
