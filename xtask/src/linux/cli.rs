// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask linux-fetch` and `cargo xtask qemu-fetch`: the provisioning run by hand (a
//! stopgap until `cargo xtask linux` and the QEMU runner call [`super`]'s functions).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::machine::{DirectBoot, InitReport, Machine};
use super::{build_initramfs, disk, disk_image, dump_dtb, initramfs};
use crate::qemu::launch::{find_qemu, parse_version};
use crate::workspace::workspace_root;

/// Fetch and check the Debian arm64 Linux guest (a stopgap until `cargo xtask linux`)
///
/// Fetches Debian's arm64 cloud kernel and busybox-static into target/linux through a private
/// apt (cached: a second run downloads nothing), checks the kernel's Image header, builds
/// target/linux/initramfs.cpio and the NVMe disk image target/linux/nvme-disk.img, and prints
/// the versions and sizes. The cache holds until target/linux/arm64-bookworm is deleted (then
/// the current versions are fetched). One run at a time: the private apt takes no lock.
///
/// Environment: XTASK_DEBIAN_MIRROR=http://HOST (or HOST:PORT) fetches from a mirror with Debian's
/// /debian and /debian-security paths; http_proxy is honoured.
///
/// Exit status: 0 done (and the boot passed); 1 a step failed; 2 bad arguments.
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LinuxFetchArgs {
    /// Then boot them on QEMU directly (no hypervisor): -M virt,gic-version=4,
    /// virtualization=on, NVMe attached; checks /init ran to poweroff and prints the timings
    /// and the NVMe lines of /proc/interrupts (log: target/linux/boot-MODE.log)
    #[arg(long, verbatim_doc_comment)]
    boot: bool,
    /// /init's workload, vgt.mode=M: boot or nvme (default nvme; with --boot)
    #[arg(long, value_name = "M", value_parser = parse_mode)]
    mode: Option<String>,
    /// CPUs for --boot, 1 to 8 (default 2)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8))]
    smp: Option<u32>,
    /// The QEMU to use (default: qemu-system-aarch64 on PATH); repeatable with --dtb-fixtures
    #[arg(long, value_name = "PATH")]
    qemu: Vec<PathBuf>,
    /// Write QEMU's device tree for gic-version 3 and 4, 1 and 4 CPUs, NVMe attached, for each
    /// QEMU, as DIR/virt-gicvG-smpN-qemuX.Y.Z.dtb, and print each command
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    dtb_fixtures: Option<PathBuf>,
}

fn parse_mode(m: &str) -> Result<String, String> {
    if initramfs::MODES.contains(&m) {
        Ok(m.to_string())
    } else {
        Err(format!("one of {:?}", initramfs::MODES))
    }
}

/// Fetch QEMU 10 (bookworm-backports) into target/qemu, for --qemu PATH
///
/// Fetches qemu-system-arm from Debian bookworm-backports for this host's architecture through
/// a private apt and unpacks it under target/qemu (cached), then prints the path of its
/// qemu-system-aarch64. It uses the host's libraries (those of Debian 12's own
/// qemu-system-arm).
///
/// Environment: XTASK_DEBIAN_MIRROR and http_proxy, as for linux-fetch.
///
/// Exit status: 0 done; 1 it failed; 2 bad arguments.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct QemuFetchArgs {}

/// The combinations of options clap cannot express on its own.
fn check_args(a: &LinuxFetchArgs) -> Result<(), String> {
    if a.dtb_fixtures.is_some() && (a.boot || a.mode.is_some() || a.smp.is_some()) {
        return Err("--dtb-fixtures goes with --qemu only".into());
    }
    if a.dtb_fixtures.is_none() && a.qemu.len() > 1 {
        return Err("one --qemu only, except with --dtb-fixtures".into());
    }
    if !a.boot && (a.mode.is_some() || a.smp.is_some()) {
        return Err("--mode and --smp go with --boot".into());
    }
    Ok(())
}

/// `path` relative to the repository root when it is inside it.
fn short(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `cargo xtask linux-fetch`.
pub fn linux_fetch(args: &LinuxFetchArgs) -> ExitCode {
    if let Err(e) = check_args(args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linux-fetch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &LinuxFetchArgs) -> Result<(), String> {
    let root = workspace_root();
    let dir = super::linux_dir(&root);
    let disk = dir.join("nvme-disk.img");
    let start = Instant::now();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let wrote = disk_image(&disk, disk::DEFAULT_SIZE)?;
    if let Some(out) = &args.dtb_fixtures {
        return dtb_fixtures(&root, &args.qemu, &disk, out);
    }

    let images = super::fetch(&root)?;
    let v = &images.versions;
    println!(
        "linux: {} {} -> {} {}; {} {}",
        super::KERNEL_META,
        v.meta,
        v.kernel_package,
        v.kernel,
        super::BUSYBOX,
        v.busybox
    );
    match &images.download {
        Some(d) => {
            println!("linux: package lists: {}", d.lists);
            for (name, size) in &d.packages {
                println!("linux: downloaded {name}: {}", mb(*size));
            }
        }
        None => println!(
            "linux: from the cache under {} (no download)",
            short(&root, &dir)
        ),
    }
    println!("linux: kernel {}", short(&root, &images.kernel));
    println!("linux: {}", images.header);
    let initrd = build_initramfs(&images.busybox, &dir.join("initramfs.cpio"))?;
    println!(
        "linux: initramfs {} ({}, busybox {})",
        short(&root, &initrd.path),
        mb(initrd.size),
        short(&root, &images.busybox)
    );
    println!(
        "linux: NVMe disk {} ({} MiB, {})",
        short(&root, &disk),
        disk::DEFAULT_SIZE >> 20,
        if wrote { "written" } else { "unchanged" }
    );
    println!(
        "linux: provisioning took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if !args.boot {
        return Ok(());
    }

    let qemu = find_qemu(args.qemu.first().map(PathBuf::as_path))?;
    let mode = args.mode.as_deref().unwrap_or("nvme");
    let boot = DirectBoot {
        qemu: qemu.path.clone(),
        machine: Machine::new(4, args.smp.unwrap_or(2)).with_nvme(&disk),
        kernel: images.kernel.clone(),
        initrd: initrd.path.clone(),
        append: match mode {
            "nvme" => format!(
                "console=ttyAMA0 vgt.mode=nvme vgt.reads={}",
                initramfs::DEFAULT_READS
            ),
            _ => format!("console=ttyAMA0 vgt.mode={mode}"),
        },
        deadline: Duration::from_secs(300),
        log: dir.join(format!("boot-{mode}.log")),
    };
    println!("linux: {}", qemu.version_line);
    println!(
        "linux: booting ({}): {}",
        short(&root, &boot.log),
        boot.args()?.join(" ")
    );
    let run = boot.run(&mut |line| {
        if line.starts_with(initramfs::MARK) {
            println!("  | {line}");
        }
    })?;
    let report = InitReport::parse(&run.serial);
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "linux: /init after {} (kernel uptime {} s), total {}, QEMU exit {:?}{}",
        secs(run.to_init),
        report.init_uptime.map_or("-".into(), |u| u.to_string()),
        secs(Some(run.elapsed)),
        run.exit,
        if run.timed_out {
            ", killed at the deadline"
        } else {
            ""
        }
    );
    if let Some(cpus) = &report.cpus_online {
        println!("linux: CPUs online {cpus}");
    }
    for when in ["boot", "before", "after"] {
        for l in report.irq_lines(when, "nvme") {
            println!("linux: {when:>6}: {:>4}: {:>6}  {}", l.irq, l.total, l.desc);
        }
    }
    if let Some(t) = report.reads_seconds {
        println!("linux: the reads took {t:.2} s by the guest's clock");
    }
    if let Some((n, tag)) = &report.block {
        println!("linux: block {n} read back: {tag:?}");
    }
    report
        .verdict(mode)
        .and_then(|()| match run.exit {
            Some(0) => Ok(()),
            other => Err(format!("QEMU exit {other:?}")),
        })
        .map_err(|e| {
            format!(
                "boot failed: {e}\n  command: {}\n  log: {}",
                run.command,
                boot.log.display()
            )
        })?;
    println!("linux: boot passed");
    Ok(())
}

/// Writes the device-tree fixtures for each QEMU (see the usage text).
fn dtb_fixtures(root: &Path, qemus: &[PathBuf], disk: &Path, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut qemus: Vec<Option<&Path>> = qemus.iter().map(|p| Some(p.as_path())).collect();
    if qemus.is_empty() {
        qemus.push(None);
    }
    for q in qemus {
        let qemu = find_qemu(q)?;
        let (x, y, z) = parse_version(&qemu.version_line)
            .ok_or_else(|| format!("no version in {:?}", qemu.version_line))?;
        println!("# {} ({})", qemu.path.display(), qemu.version_line);
        for gic in [3, 4] {
            for smp in [1, 4] {
                let file = out.join(format!("virt-gicv{gic}-smp{smp}-qemu{x}.{y}.{z}.dtb"));
                let machine = Machine::new(gic, smp).with_nvme(disk);
                let size = dump_dtb(&qemu.path, &machine, &file)?;
                let line = machine
                    .args(Some(&file))?
                    .iter()
                    .map(|a| a.replace(&format!("{}/", root.display()), ""))
                    .collect::<Vec<_>>()
                    .join(" ");
                println!("{} {line}    # {size} bytes", qemu.path.display());
            }
        }
    }
    Ok(())
}

/// `cargo xtask qemu-fetch`.
pub fn qemu_fetch(_args: &QemuFetchArgs) -> ExitCode {
    match super::qemu_fetch(&workspace_root()) {
        Ok(q) => {
            match q.downloaded {
                Some(size) => println!(
                    "qemu-fetch: downloaded {} {} ({})",
                    super::QEMU_PACKAGE,
                    q.version,
                    mb(size)
                ),
                None => println!(
                    "qemu-fetch: {} {} from the cache (no download)",
                    super::QEMU_PACKAGE,
                    q.version
                ),
            }
            println!("qemu-fetch: {}", q.version_line);
            println!("{}", q.path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qemu-fetch: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<LinuxFetchArgs, String> {
        let mut all = vec!["linux-fetch"];
        all.extend_from_slice(args);
        match crate::parse(&all) {
            Ok(crate::Command::LinuxFetch(a)) => check_args(&a).map(|()| a),
            Ok(other) => Err(format!("parsed as {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn arguments_parse_and_bad_ones_are_refused() {
        let a = p(&["--boot", "--mode", "boot", "--smp", "4", "--qemu", "/q"]).unwrap();
        assert!(a.boot);
        assert_eq!(a.mode.as_deref(), Some("boot"));
        assert_eq!(a.smp, Some(4));
        assert_eq!(a.qemu, vec![PathBuf::from("/q")]);
        let f = p(&["--dtb-fixtures", "d", "--qemu", "/a", "--qemu", "/b"]).unwrap();
        assert_eq!(f.dtb_fixtures, Some("d".into()));
        assert_eq!(f.qemu.len(), 2);
        for bad in [
            &["--mode", "x", "--boot"][..],
            &["--boot", "--smp", "0"],
            &["--boot", "--smp"],
            &["--mode", "boot"],
            &["--dtb-fixtures", "d", "--boot"],
            &["--qemu", "/a", "--qemu", "/b"],
            &["--frobnicate"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
