// SPDX-License-Identifier: MIT OR Apache-2.0
//! Building the hyp and guest images in the `qemu-tests` workspace.
//!
//! Cargo runs in `qemu-tests/` with a sanitized environment ([`CargoEnv::Clean`]): the
//! `CARGO*` / `RUST*` variables that `cargo xtask` inherited (target dir, rustflags, the host
//! build's settings) are dropped, except `CARGO_HOME` and `RUSTUP_HOME`. The two images are
//! built in separate invocations so that features of shared dependencies are never unified
//! between them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace::{CargoEnv, cargo};

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
        let status = cargo(None, CargoEnv::Clean)
            .current_dir(&dir)
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
