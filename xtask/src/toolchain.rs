// SPDX-License-Identifier: MIT OR Apache-2.0
//! The pinned toolchain and its bare-metal target.
//!
//! `rust-toolchain.toml` pins an exact Rust version (never a channel such as `stable`, which
//! rustup would move). Everything xtask builds uses that toolchain: the rustup proxy that
//! started `cargo xtask` set `RUSTUP_TOOLCHAIN` to it, and every cargo xtask starts keeps that
//! variable (see [`crate::workspace`]).
//!
//! [`ensure_target`] adds `aarch64-unknown-none` to that toolchain, once, before any build for
//! it starts: the images and the `no_std` builds need its standard library, and the rustup
//! proxies cargo starts in parallel must never be the ones to install it (two racing proxies
//! broke a user's toolchain that way). It never installs, updates or removes a toolchain;
//! when the target cannot be added it says what to run.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::workspace::workspace_root;

/// The bare-metal target of the QEMU images and the `no_std` builds.
pub const TARGET: &str = "aarch64-unknown-none";

/// The `channel` of a `rust-toolchain.toml` text (its `[toolchain]` table), if any.
pub fn pinned_channel(toml: &str) -> Option<String> {
    let mut in_toolchain = false;
    for line in toml.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_toolchain = line == "[toolchain]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_toolchain && key.trim() == "channel" {
            let v = value.trim().trim_matches('"');
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

/// The toolchain the builds use: `RUSTUP_TOOLCHAIN` as the rustup proxy resolved it, or the
/// channel pinned in `rust-toolchain.toml` at `root`.
pub fn active(root: &Path) -> Option<String> {
    if let Some(t) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        return Some(t.to_string_lossy().into_owned());
    }
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml")).ok()?;
    pinned_channel(&text)
}

/// What to run by hand to add the target to `toolchain`.
fn add_command(toolchain: &str) -> String {
    format!("rustup target add {TARGET} --toolchain {toolchain}")
}

/// Adds [`TARGET`] to the pinned toolchain if it is missing, saying so; an error names the
/// command to run by hand. Without rustup, checks the compiler's sysroot instead.
pub fn ensure_target() -> Result<(), String> {
    let root = workspace_root();
    let Some(toolchain) = active(&root) else {
        return Err(format!(
            "no pinned toolchain: {} has no [toolchain] channel",
            root.join("rust-toolchain.toml").display()
        ));
    };
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed", "--toolchain", &toolchain])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let out = match listed {
        Ok(out) => out,
        // No rustup: a toolchain installed some other way must bring the target itself.
        Err(_) => return sysroot_has_target(),
    };
    if !out.status.success() {
        return Err(format!(
            "rustup cannot list the targets of toolchain {toolchain}: {}\n\
             install the pinned toolchain with: rustup toolchain install {toolchain} \
             --profile minimal --component rustfmt,clippy --target {TARGET}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    println!(
        "rust target {TARGET} is missing from toolchain {toolchain}: adding it once, before \
         any build (`{}`)",
        add_command(&toolchain)
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET, "--toolchain", &toolchain])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run rustup: {e}; run `{}`", add_command(&toolchain)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "adding the target failed ({status}); run `{}` by hand (it needs access to \
             static.rust-lang.org)",
            add_command(&toolchain)
        ))
    }
}

/// Without rustup: the target's standard library must be in the compiler's sysroot.
fn sysroot_has_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let lib = Path::new(&sysroot).join("lib").join("rustlib").join(TARGET);
    if lib.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the {TARGET} standard library is missing from {sysroot} and there is no rustup \
             to add it: install a Rust toolchain with that target"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_read_from_the_toolchain_table_only() {
        let file = "# a comment\n[toolchain]\nchannel = \"1.95.0\" # pinned\n\
                    targets = [\"aarch64-unknown-none\"]\n";
        assert_eq!(pinned_channel(file).as_deref(), Some("1.95.0"));
        assert_eq!(pinned_channel("[other]\nchannel = \"x\"\n"), None);
        assert_eq!(pinned_channel("[toolchain]\ncomponents = []\n"), None);
        assert_eq!(pinned_channel("[toolchain]\nchannel = \"\"\n"), None);
    }

    #[test]
    fn the_repository_pins_an_exact_version_with_the_target() {
        let text = std::fs::read_to_string(workspace_root().join("rust-toolchain.toml")).unwrap();
        let channel = pinned_channel(&text).expect("a channel");
        let parts: Vec<_> = channel.split('.').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "an exact version, not a moving channel: {channel}"
        );
        assert!(text.contains(TARGET), "the target is listed");
    }
}
