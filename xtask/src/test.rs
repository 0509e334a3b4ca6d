// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask test`: every check and test layer, in order, with a one-line verdict per stage.
//!
//! First the pinned toolchain gets the bare-metal target if it lacks it
//! ([`crate::toolchain::ensure_target`]), before any build. Then the stages, each run even if an
//! earlier one failed:
//! 1. `fmt`: `cargo fmt --check` on every workspace (the root, `qemu-tests`, `fuzz`);
//! 2. `clippy`: warnings denied, on the host workspace (`--all-targets --all-features`) and on
//!    each `qemu-tests` image for `aarch64-unknown-none` (hyp and guest separately, as they are
//!    built);
//! 3. `no_std`: each library crate built for `aarch64-unknown-none` with its default features
//!    (a crate that needs `std` without a feature asking for it fails here);
//! 4. `host`: `cargo test --workspace`, the host unit, integration and doc tests of every
//!    crate with default features (the xtask CLI contract tests included);
//! 5. `loom`: the model-checked concurrency tests (`tests/loom.rs` of its-cmdq and doorbell,
//!    `--cfg loom`, release, in `target/loom`), checked to have run;
//! 6. `all-features`: `cargo test -p its-core --all-features`, its-core with its `std`,
//!    `arbitrary` and `defmt` code compiled in; then the API docs of every crate with every
//!    feature (`cargo doc --workspace --no-deps --all-features` with rustdoc warnings denied: a
//!    broken intra-doc link or an unnameable public type fails);
//! 7. `fuzz-corpus`: the replay of the committed fuzz corpora: `cargo test -p its-core
//!    --features arbitrary --test fuzz_corpus` (targets `decode`, `encode`) and `cargo test -p
//!    its-testkit --test fuzz_corpus` (the stateful targets `driver` and `vits`, whose
//!    harnesses are the test kit's, plus driver's scripted sequences and vits's seeds). It
//!    checks from their output that every corpus was actually replayed (a stage that passes
//!    because nothing ran is a failure);
//! 8. `qemu`: the QEMU suite (`cargo xtask qemu-test`).
//!
//! Then a summary, one `stage NAME ... ok|FAILED` line per stage, and a closing line
//! `N passed, N failed` that counts stages (not individual tests: each stage prints its own
//! test counts above). The exit status is 0 only when every stage passed. Everything it needs
//! is built by cargo, so it works on a fresh clone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use crate::toolchain::TARGET;
use crate::workspace::{CargoEnv, cargo, workspace_root};

/// Everything: fmt, clippy, no_std builds, host tests, loom, fuzz-corpus replay, the QEMU suite
///
/// Runs, in order: cargo fmt --check on every workspace; clippy with warnings denied (host,
/// and the qemu-tests images for aarch64-unknown-none); a no_std build of each library
/// crate; host tests (cargo test --workspace); the loom model checks (its-cmdq, doorbell);
/// its-core with all features and the API docs; the fuzz-corpus replays (its-core and the
/// test kit); the QEMU suite.
///
/// Prints `stage NAME ... ok|FAILED` per stage and ends with `N passed, N failed` (N counts
/// stages). Exits non-zero if any stage failed.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {}

/// One stage of `cargo xtask test`.
struct Stage {
    name: &'static str,
    run: fn() -> Result<(), String>,
}

const STAGES: [Stage; 8] = [
    Stage {
        name: "fmt",
        run: fmt,
    },
    Stage {
        name: "clippy",
        run: clippy,
    },
    Stage {
        name: "no_std",
        run: no_std,
    },
    Stage {
        name: "host",
        run: host,
    },
    Stage {
        name: "loom",
        run: loom,
    },
    Stage {
        name: "all-features",
        run: all_features,
    },
    Stage {
        name: "fuzz-corpus",
        run: fuzz_corpus,
    },
    Stage {
        name: "qemu",
        run: qemu,
    },
];

/// `cargo xtask test`.
pub fn run(_: &Args) -> ExitCode {
    if let Err(e) = crate::toolchain::ensure_target() {
        eprintln!("test: {e}");
        println!("0 passed, {} failed", STAGES.len());
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    for stage in &STAGES {
        println!("\n=== stage {} ===", stage.name);
        let result = (stage.run)();
        if let Err(e) = &result {
            println!("stage {} failed: {e}", stage.name);
        }
        results.push((stage.name, result.is_ok()));
    }
    println!();
    for (name, ok) in &results {
        println!("stage {name} ... {}", if *ok { "ok" } else { "FAILED" });
    }
    let passed = results.iter().filter(|(_, ok)| *ok).count();
    let failed = results.len() - passed;
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `cmd`, echoing the command line and its output; returns its stdout lines.
fn run_cargo(cmd: &mut Command) -> Result<Vec<String>, String> {
    let shown: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    println!("+ cargo {}", shown.join(" "));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(lines)
    } else {
        Err(format!("cargo exited with {status}"))
    }
}

/// The workspaces of the repository, relative to its root: the host workspace and those that
/// build on their own (another target, a nightly toolchain).
const WORKSPACES: [&str; 3] = [".", "qemu-tests", "fuzz"];

/// The library crates: each must build `no_std` for the bare-metal target.
const LIBRARY_CRATES: &[&str] = &[
    "its-core",
    "its-cmdq",
    "vpe-sched",
    "doorbell",
    "fwd-irq",
    "vgic",
    "guest-fdt",
    "vits",
];

/// The `qemu-tests` images, checked one at a time as they are built.
const IMAGES: [&str; 2] = ["hyp", "guest"];

/// `cargo fmt --check` in the workspace at `dir`.
fn fmt_check(dir: &Path) -> Result<(), String> {
    run_cargo(
        cargo(None, CargoEnv::Clean)
            .current_dir(dir)
            .args(["fmt", "--all", "--", "--check"]),
    )
    .map(drop)
    .map_err(|e| {
        format!(
            "{}: not formatted ({e}); run `cargo fmt --all` there",
            dir.display()
        )
    })
}

fn fmt() -> Result<(), String> {
    let root = workspace_root();
    let failed: Vec<_> = WORKSPACES
        .iter()
        .filter_map(|w| fmt_check(&root.join(w)).err())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// `cargo clippy ARGS -- -D warnings` in the workspace at `dir` (`env`: see [`CargoEnv`]).
fn clippy_check(dir: &Path, env: CargoEnv, args: &[&str]) -> Result<(), String> {
    run_cargo(
        cargo(None, env)
            .current_dir(dir)
            .arg("clippy")
            .args(args)
            .args(["--", "-D", "warnings"]),
    )
    .map(drop)
    .map_err(|e| format!("clippy {} in {}: {e}", args.join(" "), dir.display()))
}

fn clippy() -> Result<(), String> {
    let root = workspace_root();
    let mut failed = Vec::new();
    if let Err(e) = clippy_check(
        &root,
        CargoEnv::Host,
        &["--workspace", "--all-targets", "--all-features"],
    ) {
        failed.push(e);
    }
    for image in IMAGES {
        if let Err(e) = clippy_check(
            &root.join("qemu-tests"),
            CargoEnv::Clean,
            &["--target", TARGET, "-p", image],
        ) {
            failed.push(e);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn no_std() -> Result<(), String> {
    let mut failed = Vec::new();
    for krate in LIBRARY_CRATES {
        if let Err(e) =
            run_cargo(cargo(None, CargoEnv::Host).args(["build", "-p", krate, "--target", TARGET]))
        {
            failed.push(format!("{krate} does not build for {TARGET}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn host() -> Result<(), String> {
    run_cargo(cargo(None, CargoEnv::Host).args(["test", "--workspace"])).map(drop)
}

/// The crates whose concurrent protocols are model-checked with loom (`tests/loom.rs`, built
/// with `--cfg loom`): the command queue's multi-CPU posting, the doorbell state word.
const LOOM_CRATES: [&str; 2] = ["its-cmdq", "doorbell"];

fn loom() -> Result<(), String> {
    let mut cmd = cargo(None, CargoEnv::Host);
    cmd.args(["test", "--release", "--test", "loom"]);
    for krate in LOOM_CRATES {
        cmd.args(["-p", krate]);
    }
    // Its own target dir: `--cfg loom` would otherwise rebuild the normal artefacts each time.
    let lines = run_cargo(cmd.env("RUSTFLAGS", "--cfg loom").env(
        "CARGO_TARGET_DIR",
        workspace_root().join("target").join("loom"),
    ))?;
    // A build without `--cfg loom` compiles those targets empty: make sure tests ran.
    let ran: usize = lines
        .iter()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|r| r.split(' ').next()?.parse::<usize>().ok())
        .sum();
    if ran == 0 {
        return Err("no loom test ran".into());
    }
    Ok(())
}

fn all_features() -> Result<(), String> {
    run_cargo(cargo(None, CargoEnv::Host).args(["test", "-p", "its-core", "--all-features"]))?;
    run_cargo(
        cargo(None, CargoEnv::Host)
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
    .map(drop)
}

fn fuzz_corpus() -> Result<(), String> {
    let mut lines = run_cargo(cargo(None, CargoEnv::Host).args([
        "test",
        "-p",
        "its-core",
        "--features",
        "arbitrary",
        "--test",
        "fuzz_corpus",
        "--",
        "--nocapture",
        "--exact",
        // Only the replays: the test's self-check of its failure paths panics on purpose,
        // which is noise without capture (stage all-features runs it).
        "decode_corpus",
        "encode_corpus",
    ]))?;
    lines.extend(run_cargo(cargo(None, CargoEnv::Host).args([
        "test",
        "-p",
        "its-testkit",
        "--test",
        "fuzz_corpus",
        "--",
        "--nocapture",
    ]))?);
    check_replayed(&lines)
}

/// Checks that the replay test reported a non-zero number of inputs for every fuzz target.
fn check_replayed(lines: &[String]) -> Result<(), String> {
    for target in crate::fuzz::TARGETS {
        let prefix = format!("{target}: ");
        let count = lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix(&prefix)?
                    .strip_suffix(" corpus inputs replayed")
            })
            .find_map(|n| n.parse::<usize>().ok());
        match count {
            Some(n) if n > 0 => println!("fuzz corpus {target}: {n} inputs replayed"),
            _ => return Err(format!("the {target} corpus was not replayed")),
        }
    }
    Ok(())
}

fn qemu() -> Result<(), String> {
    if crate::qemu::qemu_test(&Default::default()) == ExitCode::SUCCESS {
        Ok(())
    } else {
        Err("the QEMU suite failed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published library crates that are host-only on purpose, so not in [`LIBRARY_CRATES`]
    /// and not built `no_std`: the host model of the ITS and redistributors (`its-model`), a
    /// test double that needs `std`.
    const HOST_ONLY_LIBRARIES: [&str; 1] = ["its-model"];

    /// Every workspace member with a library and no `publish = false` is a library crate,
    /// checked `no_std` by its stage, unless it is one of the [`HOST_ONLY_LIBRARIES`].
    #[test]
    fn every_library_crate_is_built_no_std() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        // `members = [ ... ]`, on one line or several.
        let members = manifest
            .split_once("members = [")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list)
            .expect("a members list");
        let mut seen: Vec<&str> = Vec::new();
        for member in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let member = member.trim_matches('"');
            let dir = root.join(member);
            let package = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let published_library =
                dir.join("src").join("lib.rs").is_file() && !package.contains("publish = false");
            let host_only = HOST_ONLY_LIBRARIES.contains(&member);
            assert!(
                published_library || !host_only,
                "{member}: listed host-only, but not a published library"
            );
            assert_eq!(
                LIBRARY_CRATES.contains(&member),
                published_library && !host_only,
                "{member}: a library crate exactly when it has a lib.rs, is published and is \
                 not host-only"
            );
            if host_only {
                seen.push(member);
            }
        }
        assert_eq!(
            seen.len(),
            HOST_ONLY_LIBRARIES.len(),
            "every host-only library is a member: {HOST_ONLY_LIBRARIES:?}"
        );
    }

    #[test]
    fn every_workspace_has_a_manifest() {
        for w in WORKSPACES {
            assert!(workspace_root().join(w).join("Cargo.toml").is_file(), "{w}");
        }
    }

    /// A scratch crate in a temporary directory with `src/lib.rs` = `lib`.
    fn scratch_crate(name: &str, lib: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
                 [workspace]\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("src").join("lib.rs"), lib).unwrap();
        dir
    }

    #[test]
    fn the_fmt_stage_fails_on_an_unformatted_line() {
        let good = scratch_crate(
            "fmt-good",
            "//! Fine.\n\n/// One.\npub fn one() -> u32 {\n    1\n}\n",
        );
        assert_eq!(fmt_check(&good), Ok(()));
        let bad = scratch_crate(
            "fmt-bad",
            "//! Not fine.\n\n/// One.\npub fn one()->u32{1}\n",
        );
        let e = fmt_check(&bad).unwrap_err();
        assert!(e.contains("not formatted"), "{e}");
        let _ = (std::fs::remove_dir_all(good), std::fs::remove_dir_all(bad));
    }

    #[test]
    fn the_clippy_stage_fails_on_a_warning() {
        let good = scratch_crate(
            "clippy-good",
            "//! Fine.\n\n/// One.\npub fn one() -> u32 {\n    1\n}\n",
        );
        assert_eq!(clippy_check(&good, CargoEnv::Clean, &[]), Ok(()));
        // clippy::needless_return, a warning by default.
        let bad = scratch_crate(
            "clippy-bad",
            "//! Not fine.\n\n/// One.\npub fn one() -> u32 {\n    return 1;\n}\n",
        );
        let e = clippy_check(&bad, CargoEnv::Clean, &[]).unwrap_err();
        assert!(e.contains("clippy"), "{e}");
        let _ = (std::fs::remove_dir_all(good), std::fs::remove_dir_all(bad));
    }

    #[test]
    fn replay_counts_are_checked() {
        let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let all = lines(&[
            "decode: 12 corpus inputs replayed",
            "test decode_corpus ... ok",
            "encode: 3 corpus inputs replayed",
            "driver: 40 corpus inputs replayed",
            "vits: 9 corpus inputs replayed",
        ]);
        assert_eq!(check_replayed(&all), Ok(()));
        assert!(
            check_replayed(&all[..4]).is_err(),
            "a missing vits replay must fail"
        );
        assert!(check_replayed(&lines(&["decode: 12 corpus inputs replayed"])).is_err());
        assert!(
            check_replayed(&lines(&[
                "decode: 12 corpus inputs replayed",
                "encode: 3 corpus inputs replayed"
            ]))
            .is_err(),
            "a missing driver replay must fail"
        );
        assert!(
            check_replayed(&lines(&[
                "decode: 0 corpus inputs replayed",
                "encode: 3 corpus inputs replayed",
                "driver: 40 corpus inputs replayed",
                "vits: 9 corpus inputs replayed"
            ]))
            .is_err()
        );
    }
}
