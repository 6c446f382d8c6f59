//! The build context: the request body (a tar, maybe gzip, bzip2, xz or zstd
//! compressed, maybe without its closing blocks) or a `remote` (git repository,
//! tarball or plain-text Dockerfile by URL) unpacked into a private directory,
//! the Dockerfile read from it, and the Dockerfile and `.dockerignore` dropped
//! when `.dockerignore` names them (dockerd excludes nothing else: the client
//! already did).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::ignore::{read_patterns, Matcher};
use crate::tartail::TarTail;

/// Decompresses `r` by what its first bytes say.
pub fn decompress<'a, R: Read + 'a>(r: R) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(64 * 1024, r);
    let head = br.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(br))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(br))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(br)?)
    } else {
        Box::new(br)
    })
}

/// Unpacks a context tar into `dir` (an existing empty directory). Nothing can
/// land outside `dir`: the graph's confined extraction does the writing.
pub fn unpack<R: Read>(r: R, dir: &Path) -> Result<(), BuildError> {
    let plain = decompress(r).map_err(|e| BuildError::Context(e.to_string()))?;
    let opts = berth_graph::extract::FileOptions {
        owner: None,
        no_overwrite_dir_non_dir: false,
    };
    berth_graph::extract::extract_files(TarTail::new(plain), dir, opts)
        .map_err(|e| BuildError::Context(format!("failed to read the build context: {e}")))?;
    Ok(())
}

/// Whether `head` starts a tar archive (a header with a valid checksum).
pub fn is_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let h = &head[..512];
    let field: String = h[148..156]
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(sum) = u32::from_str_radix(&field, 8) else {
        return false;
    };
    let computed: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == computed
}

/// Whether `head` starts a compressed stream the builder can read.
pub fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// The Dockerfile's path in the context: `name` as given (default `Dockerfile`,
/// falling back to `dockerfile`), resolved inside the context.
pub fn dockerfile_path(ctx: &Path, name: &str) -> Result<(String, PathBuf), BuildError> {
    let given = if name.is_empty() { "Dockerfile" } else { name };
    let rel = crate::scope::clean_rel(given);
    let candidates: Vec<String> = if name.is_empty() {
        vec![rel.clone(), "dockerfile".into()]
    } else {
        vec![rel.clone()]
    };
    for c in &candidates {
        let p = crate::scope::resolve(ctx, c).map_err(|e| BuildError::Context(e.to_string()))?;
        if p.is_file() {
            return Ok((c.clone(), p));
        }
    }
    Err(BuildError::Invalid(format!(
        "Cannot locate specified Dockerfile: {given}"
    )))
}

/// Reads the Dockerfile and applies the server side of `.dockerignore`.
pub fn take_dockerfile(ctx: &Path, name: &str) -> Result<String, BuildError> {
    let (rel, path) = dockerfile_path(ctx, name)?;
    let raw = std::fs::read(&path).map_err(|e| BuildError::Context(e.to_string()))?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(BuildError::Invalid(format!(
            "the Dockerfile ({rel}) cannot be empty"
        )));
    }
    let text = String::from_utf8_lossy(&raw)
        .trim_start_matches('\u{feff}')
        .to_string();
    let ignore = ctx.join(".dockerignore");
    if let Ok(patterns) = std::fs::read_to_string(&ignore) {
        let m = Matcher::new(&read_patterns(&patterns)).map_err(BuildError::Invalid)?;
        if m.excluded(".dockerignore") {
            let _ = std::fs::remove_file(&ignore);
        }
        if m.excluded(&rel) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(text)
}

/// A git URL as dockerd recognizes one (`git://`, `git@`, `github.com/`, or a
/// URL ending in `.git`, with an optional `#ref:subdir`).
pub fn is_git(remote: &str) -> bool {
    let base = remote.split('#').next().unwrap_or("");
    remote.starts_with("git://")
        || remote.starts_with("git@")
        || remote.starts_with("github.com/")
        || ((base.starts_with("http://") || base.starts_with("https://")) && base.ends_with(".git"))
}

/// Clones a git context (shallow, with submodules) into `dir`.
pub fn clone_git(remote: &str, dir: &Path) -> Result<(), BuildError> {
    let (url, frag) = remote.split_once('#').unwrap_or((remote, ""));
    let url = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    let (git_ref, subdir) = frag.split_once(':').unwrap_or((frag, ""));
    let checkout = dir.join(".git-checkout");
    let git = |args: &[&str], cwd: &Path| -> Result<(), BuildError> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| BuildError::Context(format!("running git: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BuildError::Context(format!(
                "error fetching: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    std::fs::create_dir_all(&checkout).map_err(|e| BuildError::Context(e.to_string()))?;
    let c = checkout.to_string_lossy().to_string();
    git(&["init", "-q", &c], dir)?;
    git(&["remote", "add", "origin", &url], &checkout)?;
    let r = if git_ref.is_empty() { "HEAD" } else { git_ref };
    git(
        &["fetch", "-q", "--depth", "1", "origin", "--", r],
        &checkout,
    )?;
    git(&["checkout", "-q", "FETCH_HEAD"], &checkout)?;
    git(
        &[
            "submodule",
            "update",
            "-q",
            "--init",
            "--recursive",
            "--depth",
            "1",
        ],
        &checkout,
    )?;
    let _ = std::fs::remove_dir_all(checkout.join(".git"));
    let src =
        crate::scope::resolve(&checkout, subdir).map_err(|e| BuildError::Context(e.to_string()))?;
    if !src.is_dir() {
        return Err(BuildError::Context(format!(
            "subdirectory {subdir} not found in {url}"
        )));
    }
    // The context is the subdirectory's content.
    let ctx = dir.join("context");
    std::fs::rename(&src, &ctx).map_err(|e| BuildError::Context(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&checkout);
    Ok(())
}
