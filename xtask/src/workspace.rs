// SPDX-License-Identifier: MIT OR Apache-2.0
//! The repository root and the `cargo` commands xtask starts.
//!
//! Every cargo that xtask runs drops part of the environment xtask inherited, and which part
//! depends on the build ([`CargoEnv`]):
//!
//! - the host workspace's builds (tests, docs, fuzzing, the `its-bench` binary) drop only the
//!   variables cargo set for xtask's own build (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...). The
//!   user's settings (`CARGO_TARGET_DIR`, `RUSTFLAGS`, ...) were meant for this workspace and
//!   stay;
//! - the `qemu-tests` workspace (bare-metal `aarch64-unknown-none`) drops every `CARGO*` /
//!   `RUST*` variable except `CARGO_HOME` and `RUSTUP_HOME`: the host build's target dir,
//!   rustflags and compiler settings would break it or put its images where the runner does not
//!   look.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the parent of xtask/).
pub(crate) fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Which inherited variables a [`cargo`] command drops (see the module docs).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum CargoEnv {
    /// A build of the host workspace: drop what cargo set for xtask's own build.
    Host,
    /// A build of another workspace for another target: drop every `CARGO*` / `RUST*`
    /// variable but `CARGO_HOME` and `RUSTUP_HOME`.
    Clean,
}

impl CargoEnv {
    /// Whether the inherited variable `key` is dropped.
    pub(crate) fn drops(self, key: &str) -> bool {
        match self {
            Self::Host => {
                [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                ]
                .iter()
                .any(|p| key.starts_with(p))
                    || key == "CARGO_PRIMARY_PACKAGE"
            }
            Self::Clean => {
                (key.starts_with("CARGO") || key.starts_with("RUST"))
                    && key != "CARGO_HOME"
                    && key != "RUSTUP_HOME"
            }
        }
    }
}

/// A `cargo` command for `toolchain` (`None`: the toolchain running xtask, through `$CARGO`),
/// in the repository root, with the inherited variables `env` drops removed.
pub(crate) fn cargo(toolchain: Option<&str>, env: CargoEnv) -> Command {
    let mut cmd = match toolchain {
        Some(t) => {
            // `+toolchain` is understood by the rustup proxy only, not by $CARGO.
            let mut c = Command::new("cargo");
            c.arg(format!("+{t}")).env_remove("RUSTUP_TOOLCHAIN");
            c
        }
        None => Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    for (key, _) in std::env::vars_os() {
        if env.drops(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(workspace_root());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_xtask_and_the_qemu_tests_workspace() {
        let root = workspace_root();
        assert!(root.join("xtask").join("Cargo.toml").is_file());
        assert!(root.join("qemu-tests").join("Cargo.toml").is_file());
    }

    #[test]
    fn host_builds_drop_only_xtasks_own_build_variables() {
        for k in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_NAME",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(CargoEnv::Host.drops(k), "{k}");
        }
        for k in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "RUSTUP_TOOLCHAIN",
            "PATH",
        ] {
            assert!(!CargoEnv::Host.drops(k), "{k}");
        }
    }

    #[test]
    fn clean_builds_keep_only_the_homes() {
        for k in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_PKG_NAME",
            "RUSTFLAGS",
            "RUSTC",
            "RUSTUP_TOOLCHAIN",
        ] {
            assert!(CargoEnv::Clean.drops(k), "{k}");
        }
        for k in ["CARGO_HOME", "RUSTUP_HOME", "PATH", "HOME"] {
            assert!(!CargoEnv::Clean.drops(k), "{k}");
        }
    }
}
