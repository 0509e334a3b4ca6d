// SPDX-License-Identifier: MIT OR Apache-2.0
//! Building the hyp and guest images in the `qemu-tests` workspace.
//!
//! Cargo runs in `qemu-tests/` with a sanitized environment: the `CARGO*` / `RUST*` variables
//! that `cargo xtask` inherited (target dir, rustflags, the host build's settings) are dropped,
//! except `CARGO_HOME` and `RUSTUP_HOME`. The two images are built in separate invocations so
//! that features of shared dependencies are never unified between them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The bare-metal target.
pub const TARGET: &str = "aarch64-unknown-none";

/// Paths of the built images.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Images {
    /// The EL2 hyp (ELF, booted with `-kernel`).
    pub hyp: PathBuf,
    /// The EL1 guest (ELF, placed with `-device loader`).
    pub guest: PathBuf,
}

/// Whether an inherited variable is dropped from the images' build environment.
pub fn dropped_from_build_env(key: &str) -> bool {
    (key.starts_with("CARGO") || key.starts_with("RUST"))
        && key != "CARGO_HOME"
        && key != "RUSTUP_HOME"
}

/// `cargo` (from `$CARGO` when set, which is the cargo running xtask) with a clean
/// environment, in `dir`.
fn cargo(dir: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && dropped_from_build_env(k)
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Installs the target with rustup if it is missing. Without rustup, assumes the toolchain has
/// it (cargo will say if not).
fn ensure_target() -> Result<(), String> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    println!("rust target {TARGET} missing: running `rustup target add {TARGET}`");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("rustup target add {TARGET}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {TARGET}` failed ({status})"))
    }
}

/// Builds both images (release) and returns their paths. `root` is the repository root.
pub fn build(root: &Path) -> Result<Images, String> {
    ensure_target()?;
    let dir = root.join("qemu-tests");
    for package in ["hyp", "guest"] {
        let status = cargo(&dir)
            .args(["build", "--release", "--target", TARGET, "-p", package])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building the {package} image failed ({status})"));
        }
    }
    let out = dir.join("target").join(TARGET).join("release");
    let images = Images {
        hyp: out.join("hyp"),
        guest: out.join("guest"),
    };
    for p in [&images.hyp, &images.guest] {
        if !p.is_file() {
            return Err(format!("{} missing after the build", p.display()));
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_env_keeps_only_the_homes() {
        for k in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "RUSTC",
            "RUSTUP_TOOLCHAIN",
        ] {
            assert!(dropped_from_build_env(k), "{k}");
        }
        for k in ["CARGO_HOME", "RUSTUP_HOME", "PATH", "HOME"] {
            assert!(!dropped_from_build_env(k), "{k}");
        }
    }
}
