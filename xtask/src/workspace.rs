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
//! - the `qemu-tests` workspace (bare-metal `aarch64-unknown-none`) also drops what would
//!   break its build or put its images where the runner does not look: the host build's target
//!   dir and target settings, rustflags, profile overrides and compiler or wrapper overrides.
//!
//! Both keep every `RUSTUP_*` variable. `RUSTUP_TOOLCHAIN` is the toolchain the proxy resolved
//! for `cargo xtask` (the one `rust-toolchain.toml` pins) and `RUSTUP_AUTO_INSTALL` the user's
//! choice: without them, the rustup proxies that cargo starts resolve the toolchain on their
//! own and, with auto-install on, may install or update toolchains, several at once. Cargo's
//! own network and registry settings (`CARGO_HOME`, `CARGO_NET_*`, `CARGO_HTTP_*`,
//! `CARGO_REGISTRIES_*`) stay too.

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
    /// A build of another workspace for another target: also drop the host build's target,
    /// flag, profile and compiler settings.
    Clean,
}

impl CargoEnv {
    /// Whether the inherited variable `key` is dropped.
    pub(crate) fn drops(self, key: &str) -> bool {
        // What cargo set for xtask's own build.
        const OWN_BUILD: [&str; 4] = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ];
        // The host build's settings that would break a bare-metal build elsewhere.
        const HOST_SETTINGS: [&str; 3] = ["CARGO_TARGET_", "CARGO_BUILD_", "CARGO_PROFILE_"];
        const HOST_VARS: [&str; 10] = [
            "CARGO",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_ENCODED_RUSTDOCFLAGS",
            "CARGO_MAKEFLAGS",
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
            "RUSTC",
            "RUSTDOC",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ];
        let own = OWN_BUILD.iter().any(|p| key.starts_with(p)) || key == "CARGO_PRIMARY_PACKAGE";
        match self {
            Self::Host => own,
            Self::Clean => {
                own || HOST_SETTINGS.iter().any(|p| key.starts_with(p)) || HOST_VARS.contains(&key)
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
    fn clean_builds_drop_the_host_settings_and_keep_rustup_and_network_settings() {
        for k in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            "CARGO_BUILD_TARGET",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_PKG_NAME",
            "RUSTFLAGS",
            "RUSTC",
            "RUSTC_WRAPPER",
        ] {
            assert!(CargoEnv::Clean.drops(k), "{k}");
        }
        for k in [
            "CARGO_HOME",
            "CARGO_NET_OFFLINE",
            "CARGO_HTTP_PROXY",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "RUSTUP_AUTO_INSTALL",
            "RUSTUP_DIST_SERVER",
            "RUST_BACKTRACE",
            "PATH",
            "HOME",
        ] {
            assert!(!CargoEnv::Clean.drops(k), "{k}");
        }
    }

    #[test]
    fn no_build_drops_a_rustup_variable() {
        for env in [CargoEnv::Host, CargoEnv::Clean] {
            for k in [
                "RUSTUP_TOOLCHAIN",
                "RUSTUP_AUTO_INSTALL",
                "RUSTUP_HOME",
                "RUSTUP_UPDATE_ROOT",
            ] {
                assert!(!env.drops(k), "{env:?} {k}");
            }
        }
    }
}
