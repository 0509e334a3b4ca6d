// SPDX-License-Identifier: MIT OR Apache-2.0
//! Building the hyp and guest images in the `qemu-tests` workspace.
//!
//! Cargo runs in `qemu-tests/` with a sanitized environment ([`CargoEnv::Clean`]): the host
//! build's target dir, rustflags and compiler settings that `cargo xtask` inherited are
//! dropped; rustup's variables stay, so the pinned toolchain builds the images. The target is
//! added first if missing ([`crate::toolchain::ensure_target`]). The two images are built in
//! separate invocations so that features of shared dependencies are never unified between
//! them.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::toolchain::TARGET;
use crate::workspace::{CargoEnv, cargo};

/// Paths of the built images.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Images {
    /// The EL2 hyp (ELF, booted with `-kernel`).
    pub hyp: PathBuf,
    /// The EL1 guest (ELF, placed with `-device loader`).
    pub guest: PathBuf,
    /// The Linux test guest, once provisioned ([`crate::linux::provision`]): only runs of
    /// Linux scenarios need it.
    pub linux: Option<crate::linux::TestGuest>,
}

/// Builds both images (release) and returns their paths. `root` is the repository root.
pub fn build(root: &Path) -> Result<Images, String> {
    crate::toolchain::ensure_target()?;
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
        linux: None,
    };
    for p in [&images.hyp, &images.guest] {
        if !p.is_file() {
            return Err(format!("{} missing after the build", p.display()));
        }
    }
    Ok(images)
}
