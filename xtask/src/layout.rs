//! Checks of the source tree's shape that CI enforces (run by `cargo test`):
//! no source file with over 700 lines of code (its unit tests and `tests/` left
//! out), and no two modules of a crate
//! that use each other (an import circle means one concern is split in two, or two
//! are tangled into one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const MAX_LINES: usize = 700;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "tests" || n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of a file that are not its unit tests (the `#[cfg(test)]` module
/// at its end).
fn code_lines(src: &str) -> usize {
    src.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// Source files with more than [`MAX_LINES`] lines of code: (path, lines).
pub fn long_files(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut files = Vec::new();
    for d in ["crates", "xtask"] {
        rust_files(&root.join(d), &mut files);
    }
    files
        .into_iter()
        .filter_map(|f| {
            let n = code_lines(&std::fs::read_to_string(&f).ok()?);
            (n > MAX_LINES).then_some((f, n))
        })
        .collect()
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of every `crate::…` path in `src`, including each
/// item of `use crate::{a, b::c}`.
fn crate_refs(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.insert(ident(rest));
            continue;
        };
        // Split the group at its own commas (not those of nested groups).
        let mut depth = 1;
        let mut start = 0;
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if (c == ',' && depth == 1) || depth == 0 {
                out.insert(ident(group[start..j].trim_start()));
                start = j + 1;
            }
            if depth == 0 {
                break;
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A crate's top-level modules and the other top-level modules each one uses.
fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(src_dir) else {
        return BTreeMap::new();
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if matches!(name.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p.clone());
        }
        modules.entry(name).or_default().extend(files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(m, files)| {
            let uses: BTreeSet<String> = files
                .iter()
                .filter_map(|f| std::fs::read_to_string(f).ok())
                .flat_map(|s| crate_refs(&s))
                .filter(|r| *r != m && names.contains(r))
                .collect();
            (m, uses)
        })
        .collect()
}

/// Pairs of modules that use each other, per crate source directory.
pub fn import_circles(root: &Path) -> Vec<(PathBuf, String, String)> {
    let mut dirs = Vec::new();
    for d in ["crates", "crates/jobs"] {
        if let Ok(rd) = std::fs::read_dir(root.join(d)) {
            dirs.extend(rd.flatten().map(|e| e.path().join("src")));
        }
    }
    dirs.push(root.join("xtask/src"));
    // Binaries with modules of their own (`src/bin/NAME/main.rs`).
    for d in dirs.clone() {
        if let Ok(rd) = std::fs::read_dir(d.join("bin")) {
            dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    let mut out = Vec::new();
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        let g = module_graph(&dir);
        for (a, uses) in &g {
            for b in uses.iter().filter(|b| a < *b) {
                if g.get(b).is_some_and(|u| u.contains(a)) {
                    out.push((dir.clone(), a.clone(), b.clone()));
                }
            }
        }
    }
    out
}

/// `cargo xtask layout`: both checks, each problem on a line.
pub fn check(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for (f, n) in long_files(root) {
        problems.push(format!("{}: {n} lines (at most {MAX_LINES})", f.display()));
    }
    for (dir, a, b) in import_circles(root) {
        problems.push(format!(
            "{}: modules {a} and {b} use each other",
            dir.display()
        ));
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} layout problems", problems.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    #[test]
    fn paths_into_the_crate_are_read_with_their_groups() {
        let refs =
            crate_refs("use crate::{a, b::{c, d}, e::f};\nfn x() { crate::g::h(); crate::i(); }");
        let want: BTreeSet<String> = ["a", "b", "e", "g", "i"].map(String::from).into();
        assert_eq!(refs, want);
    }

    #[test]
    fn no_source_file_is_over_the_limit() {
        let long = long_files(&root());
        assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
    }

    #[test]
    fn no_two_modules_of_a_crate_use_each_other() {
        let circles = import_circles(&root());
        assert!(circles.is_empty(), "import circles: {circles:#?}");
    }
}
