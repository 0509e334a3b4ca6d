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
//! 8. `publish`: what crates.io and docs.rs will do with the published crates (the library
//!    crates and `its-model`): each package must hold its README and both licence texts
//!    (`cargo package --list`); `cargo publish --workspace --dry-run` must pass (every
//!    dependency with a version, each crate packaged and built from its package, in
//!    dependency order; crates with `publish = false` are skipped); and each crate's API docs
//!    must build without a rustdoc warning as docs.rs will build them, for the
//!    `default-target` and with the `features` of its `[package.metadata.docs.rs]`
//!    (`aarch64-unknown-none` for the `no_std` crates). The dry run reads crates.io's index,
//!    so it needs the network; when the index cannot be reached it says so and runs `cargo
//!    package --offline` on the published crates instead, the same packaging and build from
//!    the packages without the registry (the dependencies come from cargo's cache, filled by
//!    the stages before);
//! 9. `qemu`: the QEMU suite (`cargo xtask qemu-test`).
//!
//! Then a summary, one `stage NAME ... ok|FAILED` line per stage, and a closing line
//! `N passed, N failed` that counts stages (not individual tests: each stage prints its own
//! test counts above). The exit status is 0 only when every stage passed. Everything it needs
//! is built by cargo, so it works on a fresh clone.
//!
//! `XTASK_TEST_STAGES=publish,host cargo xtask test` runs only the stages named (in the
//! order above; a name that is no stage is reported as a failed stage), for working on one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use crate::toolchain::TARGET;
use crate::workspace::{CargoEnv, cargo, workspace_root};

/// Everything: fmt, clippy, no_std builds, host tests, loom, fuzz-corpus replay, publish checks, the QEMU suite
///
/// Runs, in order: cargo fmt --check on every workspace; clippy with warnings denied (host,
/// and the qemu-tests images for aarch64-unknown-none); a no_std build of each library
/// crate; host tests (cargo test --workspace); the loom model checks (its-cmdq, doorbell);
/// its-core with all features and the API docs; the fuzz-corpus replays (its-core and the
/// test kit); the publish checks (README and licences packaged, a publish dry run of the
/// workspace, the docs.rs builds); the QEMU suite.
///
/// Prints `stage NAME ... ok|FAILED` per stage and ends with `N passed, N failed` (N counts
/// stages). Exits non-zero if any stage failed. XTASK_TEST_STAGES=NAME,... runs only those
/// stages.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {}

/// One stage of `cargo xtask test`.
struct Stage {
    name: &'static str,
    run: fn() -> Result<(), String>,
}

const STAGES: [Stage; 9] = [
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
        name: "publish",
        run: publish,
    },
    Stage {
        name: "qemu",
        run: qemu,
    },
];

/// The environment variable that names the stages to run (comma-separated; all when unset).
const STAGES_ENV: &str = "XTASK_TEST_STAGES";

/// The stages `only` names, in [`STAGES`] order, and the names in it that are no stage; every
/// stage when `only` is `None`.
fn select_stages(only: Option<&str>) -> (Vec<&'static Stage>, Vec<String>) {
    let Some(only) = only else {
        return (STAGES.iter().collect(), Vec::new());
    };
    let names: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let stages = STAGES.iter().filter(|s| names.contains(&s.name)).collect();
    let unknown = names
        .iter()
        .filter(|n| !STAGES.iter().any(|s| s.name == **n))
        .map(|n| n.to_string())
        .collect();
    (stages, unknown)
}

/// `cargo xtask test`.
pub fn run(_: &Args) -> ExitCode {
    let only = std::env::var(STAGES_ENV).ok();
    let (stages, unknown) = select_stages(only.as_deref());
    if let Err(e) = crate::toolchain::ensure_target() {
        eprintln!("test: {e}");
        println!("0 passed, {} failed", stages.len() + unknown.len());
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    for name in &unknown {
        let known: Vec<_> = STAGES.iter().map(|s| s.name).collect();
        println!("stage {name} failed: no such stage in {STAGES_ENV} (the stages: {known:?})");
        results.push((name.as_str(), false));
    }
    for stage in stages {
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

/// Published library crates that are host-only on purpose, so not in [`LIBRARY_CRATES`] and
/// not built `no_std`: the host model of the ITS and redistributors (`its-model`), a test
/// double that needs `std`.
const HOST_ONLY_LIBRARIES: [&str; 1] = ["its-model"];

/// Every crate `cargo publish --workspace` uploads: the library crates and the host-only
/// ones. The others have `publish = false`.
fn published_crates() -> Vec<&'static str> {
    LIBRARY_CRATES
        .iter()
        .copied()
        .chain(HOST_ONLY_LIBRARIES)
        .collect()
}

/// The files every published crate's package holds besides its manifest and sources.
const PACKAGE_FILES: [&str; 3] = ["README.md", "LICENSE-MIT", "LICENSE-APACHE"];

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

fn publish() -> Result<(), String> {
    let root = workspace_root();
    let crates = published_crates();
    let mut failed = Vec::new();
    for krate in &crates {
        if let Err(e) = package_files(&root, krate) {
            failed.push(e);
        }
    }
    if let Err(e) = publish_check(&root, &crates) {
        failed.push(e);
    }
    for krate in &crates {
        if let Err(e) = docs_rs_check(&root, krate) {
            failed.push(e);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Checks that `cargo package --list` of `krate` (in the workspace at `dir`) names every one
/// of [`PACKAGE_FILES`].
fn package_files(dir: &Path, krate: &str) -> Result<(), String> {
    let lines = run_cargo(cargo(None, CargoEnv::Host).current_dir(dir).args([
        "package",
        "--list",
        "--allow-dirty",
        "-p",
        krate,
    ]))
    .map_err(|e| format!("cargo package --list -p {krate}: {e}"))?;
    let missing: Vec<_> = PACKAGE_FILES
        .iter()
        .filter(|f| !lines.iter().any(|l| l == *f))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("the package of {krate} lacks {missing:?}"))
    }
}

/// Runs `cmd`, echoing the command line and its output, stderr included; on failure returns
/// what it wrote on stderr.
fn run_cargo_stderr(cmd: &mut Command) -> Result<(), String> {
    let shown: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    println!("+ cargo {}", shown.join(" "));
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut stderr = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// Whether cargo's error output says a registry could not be reached (no network, or cargo
/// told to stay offline), rather than that something is wrong with a package.
fn unreachable_registry(stderr: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "--offline was specified",
        "net.offline",
        "resolve host",
        "failed to query replaced source registry",
        "failed to get successful HTTP response",
        "spurious network error",
        "network failure",
        "Connection refused",
        "Timeout was reached",
    ];
    SIGNS.iter().any(|s| stderr.contains(s))
}

/// cargo's error in `stderr`: the `error:` line and the cause under it (a few lines).
fn cargo_error(stderr: &str) -> String {
    let from_error = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(6)
        .collect::<Vec<_>>();
    if from_error.is_empty() {
        "cargo failed".into()
    } else {
        from_error.join(" ")
    }
}

/// `cargo publish --workspace --dry-run` in the workspace at `dir`, whose published crates
/// are `crates`: every crate packaged and built from its package, in dependency order, with
/// nothing uploaded. It reads crates.io's index; when that cannot be reached, `cargo package
/// --offline` of `crates` checks the same without the registry, and says so.
fn publish_check(dir: &Path, crates: &[&str]) -> Result<(), String> {
    if let Some(home) = cargo_home() {
        forget_unpacked_packages(&home.join("registry").join("src"), crates);
    }
    // A target directory of its own, where the builds of our packages can be forgotten too:
    // cargo takes a registry package's sources as immutable and would reuse its first build.
    let target = dir.join("target").join("publish");
    forget_builds(&target.join("debug").join(".fingerprint"), crates);
    let dry_run = run_cargo_stderr(
        cargo(None, CargoEnv::Host)
            .current_dir(dir)
            .args(["publish", "--workspace", "--dry-run", "--allow-dirty"])
            .arg("--target-dir")
            .arg(&target),
    );
    let stderr = match dry_run {
        Ok(()) => return Ok(()),
        Err(stderr) if unreachable_registry(&stderr) => stderr,
        Err(stderr) => {
            return Err(format!(
                "cargo publish --workspace --dry-run: {}",
                cargo_error(&stderr)
            ));
        }
    };
    println!(
        "publish: crates.io's index cannot be reached ({}); checking the packages with \
         `cargo package --offline` instead (no registry check)",
        cargo_error(&stderr)
    );
    let mut cmd = cargo(None, CargoEnv::Host);
    cmd.current_dir(dir)
        .args(["package", "--offline", "--allow-dirty"]);
    for krate in crates {
        cmd.args(["-p", krate]);
    }
    run_cargo_stderr(&mut cmd)
        .map_err(|stderr| format!("cargo package --offline: {}", cargo_error(&stderr)))
}

/// `CARGO_HOME`, or `~/.cargo`.
fn cargo_home() -> Option<std::path::PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// Removes what an earlier dry run unpacked of `crates` from the temporary registry cargo
/// builds under `target/package`: the dry run verifies each crate against the packages of
/// the crates it depends on, and cargo unpacks a registry package only once per version, so
/// without this a later run would build against the sources of the first (a false failure,
/// or a false pass). `src` is `$CARGO_HOME/registry/src`; the temporary registry has no name,
/// so its directory there starts with `-` (crates.io's is `index.crates.io-...`). Nothing
/// else is touched.
fn forget_unpacked_packages(src: &Path, crates: &[&str]) {
    let Ok(registries) = std::fs::read_dir(src) else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(packages) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for package in packages.flatten() {
            let name = package.file_name().to_string_lossy().into_owned();
            let ours = crates.iter().any(|k| {
                name.strip_prefix(k)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                let _ = std::fs::remove_dir_all(package.path());
            }
        }
    }
}

/// Removes the fingerprints of `crates` from `fingerprints` (a target directory's
/// `debug/.fingerprint`, whose entries are `<package>-<16 hex digits>`), so that cargo builds
/// them again: it never checks a registry package's sources for changes.
fn forget_builds(fingerprints: &Path, crates: &[&str]) {
    let Ok(entries) = std::fs::read_dir(fingerprints) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = crates.iter().any(|k| {
            name.strip_prefix(k)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
        });
        if ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What a crate's `[package.metadata.docs.rs]` asks docs.rs for.
#[derive(Debug, Default, PartialEq, Eq)]
struct DocsRs {
    /// `default-target`.
    default_target: String,
    /// `targets`.
    targets: Vec<String>,
    /// `features`.
    features: Vec<String>,
}

/// The `[package.metadata.docs.rs]` table of `manifest`, if it has one: its `default-target`,
/// `targets` and `features`, each on one line (as this workspace writes them).
fn docs_rs_metadata(manifest: &str) -> Option<DocsRs> {
    let (_, table) = manifest.split_once("[package.metadata.docs.rs]\n")?;
    let table = table.split("\n[").next().unwrap_or(table);
    let value = |key: &str| {
        table.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.trim_start().strip_prefix('=')?;
            Some(rest.trim().to_string())
        })
    };
    let strings = |v: Option<String>| -> Vec<String> {
        v.map(|v| {
            v.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    Some(DocsRs {
        default_target: value("default-target")?.trim_matches('"').to_string(),
        targets: strings(value("targets")),
        features: strings(value("features")),
    })
}

/// The API docs of `krate` as docs.rs builds them: for its `default-target` (the host for a
/// host crate, whose target is a tier-1 host's) with the `features` of its
/// `[package.metadata.docs.rs]`, rustdoc warnings denied.
fn docs_rs_check(root: &Path, krate: &str) -> Result<(), String> {
    let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml"))
        .map_err(|e| format!("{krate}/Cargo.toml: {e}"))?;
    let meta = docs_rs_metadata(&manifest)
        .ok_or_else(|| format!("{krate}: no [package.metadata.docs.rs] with a default-target"))?;
    let mut cmd = cargo(None, CargoEnv::Host);
    cmd.args(["doc", "--no-deps", "-p", krate]);
    if meta.default_target == TARGET {
        cmd.args(["--target", TARGET]);
    }
    if !meta.features.is_empty() {
        cmd.args(["--features", &meta.features.join(",")]);
    }
    run_cargo(cmd.env("RUSTDOCFLAGS", "-D warnings"))
        .map(drop)
        .map_err(|e| {
            format!(
                "{krate}: the docs.rs build ({}, features {:?}) has warnings or fails: {e}",
                meta.default_target, meta.features
            )
        })
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
    fn only_our_packages_unpacked_from_the_temporary_registry_are_forgotten() {
        let src = std::env::temp_dir().join(format!("xtask-unpacked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&src);
        let dirs = [
            "-1234abcd/its-core-0.1.0",
            "-1234abcd/its-core-extra-0.1.0",
            "-1234abcd/log-0.4.28",
            "index.crates.io-1949cf8c6b5b557f/its-core-0.1.0",
        ];
        for d in dirs {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        forget_unpacked_packages(&src, &["its-core", "vits"]);
        let left: Vec<_> = dirs.iter().filter(|d| src.join(d).is_dir()).collect();
        assert_eq!(
            left,
            [&dirs[1], &dirs[2], &dirs[3]],
            "only the temporary registry's its-core is gone"
        );
        let _ = std::fs::remove_dir_all(&src);
    }

    #[test]
    fn only_our_packages_builds_are_forgotten() {
        let dir = std::env::temp_dir().join(format!("xtask-fingerprints-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dirs = [
            "its-core-8beeddb3d5195b1b",
            "its-core-extra-8beeddb3d5195b1b",
            "its-core-build",
            "log-8beeddb3d5195b1b",
        ];
        for d in dirs {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        forget_builds(&dir, &["its-core"]);
        let left: Vec<_> = dirs.iter().filter(|d| dir.join(d).is_dir()).collect();
        assert_eq!(left, [&dirs[1], &dirs[2], &dirs[3]]);
        let _ = std::fs::remove_dir_all(&dir);
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

    /// The crates.io category slugs the published crates use (the list is at
    /// <https://crates.io/category_slugs>: check a new one there before adding it here).
    const CATEGORIES: [&str; 7] = [
        "development-tools::testing",
        "embedded",
        "hardware-support",
        "no-std",
        "no-std::no-alloc",
        "simulation",
        "virtualization",
    ];

    /// The strings of the one-line array `key = [..]` of `manifest`.
    fn array(manifest: &str, key: &str) -> Vec<String> {
        let line = manifest
            .lines()
            .find(|l| l.starts_with(&format!("{key} = [")))
            .unwrap_or_else(|| panic!("no `{key} = [..]`"));
        line.split_once('[')
            .and_then(|(_, v)| v.strip_suffix(']'))
            .unwrap_or_else(|| panic!("`{key}` on one line"))
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Every published crate carries what crates.io and docs.rs need: a README and both
    /// licence texts (the root's), a description, a docs.rs link, at most five well-formed
    /// keywords, known category slugs, no placeholder repository, and docs.rs metadata that
    /// builds the `no_std` crates for the bare-metal target.
    #[test]
    fn every_published_crate_is_ready_to_publish() {
        let root = workspace_root();
        let licence = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).ok();
        for krate in published_crates() {
            let dir = root.join(krate);
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            assert!(
                manifest.contains("\nreadme = \"README.md\"\n"),
                "{krate}: readme"
            );
            let readme = std::fs::read_to_string(dir.join("README.md")).expect(krate);
            assert!(
                readme.contains(&format!("# {krate}")),
                "{krate}: README title"
            );
            for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
                assert!(licence(&dir, f).is_some(), "{krate}: {f}");
                assert_eq!(
                    licence(&dir, f),
                    licence(&root, f),
                    "{krate}: {f} is the root's"
                );
            }
            assert!(
                manifest.contains("\ndescription = \""),
                "{krate}: description"
            );
            let docs = format!("\ndocumentation = \"https://docs.rs/{krate}\"\n");
            assert!(manifest.contains(&docs), "{krate}: documentation");
            assert!(
                !manifest.contains("example.invalid"),
                "{krate}: placeholder URL"
            );
            let keywords = array(&manifest, "keywords");
            assert!(
                (1..=5).contains(&keywords.len()),
                "{krate}: 1 to 5 keywords"
            );
            for k in &keywords {
                assert!(
                    k.len() <= 20
                        && k.starts_with(|c: char| c.is_ascii_alphabetic())
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c)),
                    "{krate}: keyword {k:?}"
                );
            }
            let categories = array(&manifest, "categories");
            assert!(
                (1..=5).contains(&categories.len()),
                "{krate}: 1 to 5 categories"
            );
            for c in &categories {
                assert!(CATEGORIES.contains(&c.as_str()), "{krate}: category {c:?}");
            }
            let meta = docs_rs_metadata(&manifest).expect(krate);
            assert_eq!(
                meta.targets,
                std::slice::from_ref(&meta.default_target),
                "{krate}: one target"
            );
            if LIBRARY_CRATES.contains(&krate) {
                assert_eq!(meta.default_target, TARGET, "{krate}: docs.rs target");
            }
        }
        let root_manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            !root_manifest.contains("example.invalid"),
            "placeholder URL"
        );
    }

    #[test]
    fn docs_rs_metadata_is_read() {
        let manifest = "[package]\nname = \"x\"\n\n# Why.\n[package.metadata.docs.rs]\n\
                        default-target = \"aarch64-unknown-none\"\n\
                        targets = [\"aarch64-unknown-none\"]\nfeatures = [\"fdt\", \"defmt\"]\n\n\
                        [features]\nfdt = []\n";
        assert_eq!(
            docs_rs_metadata(manifest),
            Some(DocsRs {
                default_target: "aarch64-unknown-none".into(),
                targets: vec!["aarch64-unknown-none".into()],
                features: vec!["fdt".into(), "defmt".into()],
            })
        );
        let no_features = manifest.replace("features = [\"fdt\", \"defmt\"]\n", "");
        assert_eq!(
            docs_rs_metadata(&no_features).unwrap().features,
            Vec::<String>::new()
        );
        // `features` of the [features] table below is not the docs.rs table's.
        assert!(
            docs_rs_metadata(
                &no_features.replace("[features]\n", "[features]\nfeatures = [\"a\"]\n")
            )
            .unwrap()
            .features
            .is_empty()
        );
        assert_eq!(docs_rs_metadata("[package]\nname = \"x\"\n"), None);
    }

    #[test]
    fn stages_are_selected_by_name_in_order() {
        let names =
            |(s, u): (Vec<&Stage>, Vec<String>)| (s.iter().map(|s| s.name).collect::<Vec<_>>(), u);
        assert_eq!(names(select_stages(None)).0.len(), STAGES.len());
        assert_eq!(
            names(select_stages(Some("qemu, publish,host"))),
            (vec!["host", "publish", "qemu"], vec![])
        );
        assert_eq!(
            names(select_stages(Some("publish,bogus"))),
            (vec!["publish"], vec!["bogus".to_string()])
        );
    }

    #[test]
    fn a_registry_out_of_reach_is_told_from_a_package_error() {
        let offline = "error: failed to get `x` as a dependency\n\nCaused by:\n  \
                       attempting to make an HTTP request, but --offline was specified\n";
        assert!(unreachable_registry(offline));
        let dns = "warning: spurious network error (3 tries remaining): [6] Couldn't resolve \
                   host name (Could not resolve host: index.crates.io)\n";
        assert!(unreachable_registry(dns));
        let version = "error: failed to verify manifest at `b/Cargo.toml`\n\nCaused by:\n  \
                       all dependencies must have a version requirement specified when \
                       publishing.\n  dependency `a` does not specify a version\n";
        assert!(!unreachable_registry(version));
        let e = cargo_error(version);
        assert!(e.starts_with("error: failed to verify manifest"), "{e}");
        assert!(
            e.contains("dependency `a` does not specify a version"),
            "{e}"
        );
    }

    /// A scratch workspace in a temporary directory: a library crate `lib` and a crate `user`
    /// that depends on it through `dep` (a dependency specification such as
    /// `{ path = "../lib" }`).
    fn scratch_workspace(tag: &str, dep: &str) -> (std::path::PathBuf, [String; 2]) {
        let dir = std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Names no crate on crates.io has: the dry run may look them up there.
        let lib = format!("xtask-scratch-{tag}-lib");
        let user = format!("xtask-scratch-{tag}-user");
        let package = |name: &str| {
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
                 license = \"MIT\"\ndescription = \"A scratch crate of xtask's tests.\"\n"
            )
        };
        for (sub, name, extra) in [
            ("lib", &lib, String::new()),
            ("user", &user, format!("\n[dependencies]\n{lib} = {dep}\n")),
        ] {
            std::fs::create_dir_all(dir.join(sub).join("src")).unwrap();
            std::fs::write(
                dir.join(sub).join("Cargo.toml"),
                format!("{}{extra}", package(name)),
            )
            .unwrap();
            std::fs::write(dir.join(sub).join("src").join("lib.rs"), "//! Scratch.\n").unwrap();
        }
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nresolver = \"3\"\nmembers = [\"lib\", \"user\"]\n",
        )
        .unwrap();
        (dir, [lib, user])
    }

    /// The publish check fails on a path dependency without a version, as crates.io would,
    /// and passes once the dependency has one (online through the dry run, offline through
    /// `cargo package --offline`).
    #[test]
    fn the_publish_stage_fails_on_a_path_dependency_without_version() {
        let (bad, names) = scratch_workspace("publish-bad", "{ path = \"../lib\" }");
        let crates = [names[0].as_str(), names[1].as_str()];
        let e = publish_check(&bad, &crates).unwrap_err();
        assert!(e.contains("does not specify a version"), "{e}");
        let (good, names) =
            scratch_workspace("publish-good", "{ path = \"../lib\", version = \"0.0.0\" }");
        let crates = [names[0].as_str(), names[1].as_str()];
        assert_eq!(publish_check(&good, &crates), Ok(()));
        let _ = (std::fs::remove_dir_all(bad), std::fs::remove_dir_all(good));
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
