// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask linux`: boot an arm64 Linux Image on the project's hypervisor; and
//! `cargo xtask linux-fetch` and `cargo xtask qemu-fetch`: the provisioning run by hand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::guest::HypBoot;
use super::machine::{DirectBoot, InitReport, Machine};
use super::{build_initramfs, disk, disk_image, dump_dtb, initramfs};
use crate::qemu::launch::{Limits, find_qemu, parse_version, run_qemu};
use crate::qemu::scenarios::{self, Scenario};
use crate::workspace::workspace_root;

/// Boot an arm64 Linux Image on the project's hypervisor and stream its console
///
/// Builds the hypervisor (qemu-tests/hyp), places the kernel and the initramfs in guest RAM,
/// and boots QEMU `virt` (gic-version=4, virtualization=on, -cpu max,pauth-impdef=on, -m 1G)
/// with the hypervisor at EL2 and Linux at EL1 on N vCPUs, one per CPU; the hypervisor gives
/// the guest QEMU's own device tree, less what the guest must not see. The guest's console is
/// streamed as it comes; the run ends when the guest powers off (PSCI SYSTEM_OFF) or resets,
/// then the hypervisor prints its EL2 exits by cause.
///
/// Without --kernel: Debian's arm64 cloud kernel and the test initramfs (fetched and built
/// under target/linux, as linux-fetch does), `vgt.mode=boot`. Your own kernel: an
/// uncompressed arm64 Image (arch/arm64/boot/Image) with the GICv3, PL011 console, PSCI and
/// arch timer drivers built in; it gets no initramfs unless --initrd names one.
///
/// Logs: target/linux/run/linux.log (console) and linux.qemu.log (-d guest_errors,unimp).
///
/// Exit status: 0 the guest powered off (or reset) and its console shows no kernel panic,
/// Oops, WARNING or BUG; 1 otherwise (or killed at --timeout); 2 bad arguments or set-up
/// error.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LinuxArgs {
    /// The arm64 Image to boot (default: Debian's cloud kernel)
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<PathBuf>,
    /// The initramfs (default: the test initramfs when --kernel is not given, none otherwise)
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// The kernel command line (console=ttyAMA0 is added unless it names a console; default
    /// `console=ttyAMA0 vgt.mode=boot` with the test initramfs)
    #[arg(long, value_name = "ARGS", verbatim_doc_comment)]
    append: Option<String>,
    /// vCPUs (= QEMU CPUs), 1 to 8 (default 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8))]
    smp: Option<u32>,
    /// Attach FILE as the raw image of an NVMe disk (PCIe, INTx)
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// Kill the run after this many seconds (default 600)
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    #[command(flatten)]
    qemu: crate::qemu::QemuArg,
}

/// The scenario of the hypervisor that boots whatever the boot parameters name.
const ANY_KERNEL: &str = "linux_any";

/// The kernel command line for `append` (`None`: the default for the test initramfs, or
/// just the console for a kernel of one's own).
fn bootargs(append: Option<&str>, own_kernel: bool) -> String {
    match append {
        Some(a) if a.split_whitespace().any(|w| w.starts_with("console=")) => a.to_owned(),
        Some(a) => format!("console=ttyAMA0 {a}").trim_end().to_owned(),
        None if own_kernel => "console=ttyAMA0".to_owned(),
        None => "console=ttyAMA0 vgt.mode=boot".to_owned(),
    }
}

/// `cargo xtask linux`.
pub fn linux(args: &LinuxArgs) -> ExitCode {
    match boot_on_hyp(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("linux: {e}");
            ExitCode::from(2)
        }
    }
}

fn boot_on_hyp(a: &LinuxArgs) -> Result<bool, String> {
    let root = workspace_root();
    let scenario = scenarios::by_name(ANY_KERNEL)
        .ok_or_else(|| format!("no `{ANY_KERNEL}` scenario in the table"))?;
    let (qemu, images, _) = crate::qemu::prepare(a.qemu.path.as_deref(), &root)?;
    let (kernel, header, initrd) = match &a.kernel {
        Some(k) => (k.clone(), super::check_kernel(k)?, a.initrd.clone()),
        None => {
            let tg = super::provision(&root)?;
            let initrd = a.initrd.clone().unwrap_or(tg.initramfs);
            (tg.kernel, tg.header, Some(initrd))
        }
    };
    let smp = a.smp.unwrap_or(1);
    let dir = super::linux_dir(&root).join("run");
    let boot = HypBoot {
        hyp: images.hyp.clone(),
        scenario: ANY_KERNEL.to_owned(),
        smp,
        kernel,
        header,
        initrd,
        bootargs: bootargs(a.append.as_deref(), a.kernel.is_some()),
        nvme_disk: a.disk.clone(),
        nvme_vectors: None,
        work_dir: dir.clone(),
    };
    println!("linux: {}: {header}", short(&root, &boot.kernel));
    if let Some(i) = &boot.initrd {
        println!("linux: initramfs {}", short(&root, i));
    }
    println!("linux: command line: {}", boot.bootargs);
    let qemu_log = dir.join("linux.qemu.log");
    let mut args = boot.prepare()?;
    args.extend([
        "-d".into(),
        "guest_errors,unimp".into(),
        "-D".into(),
        qemu_log.display().to_string(),
    ]);
    let total = Duration::from_secs(a.timeout.unwrap_or(600));
    println!(
        "linux: booting on {smp} vCPU(s) (console below; log {})\n",
        short(&root, &dir.join("linux.log"))
    );
    let out = run_qemu(
        &qemu,
        &args,
        Limits { total, idle: total },
        &dir.join("linux.log"),
        &qemu_log,
        &mut |line| println!("{line}"),
    )
    .map_err(|e| format!("running QEMU: {e}"))?;
    let judged = Scenario { smp, ..*scenario };
    let v = crate::qemu::verdict_of(&judged, &out);
    println!();
    println!("{}", crate::qemu::linux_figures(&out));
    if v.passed {
        println!("linux: the guest stopped cleanly");
    } else {
        println!(
            "{}",
            crate::qemu::format_result(&judged, &Ok((out, v.clone())))
        );
    }
    Ok(v.passed)
}

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
    fn the_command_line_gets_a_console() {
        assert_eq!(bootargs(None, false), "console=ttyAMA0 vgt.mode=boot");
        assert_eq!(bootargs(None, true), "console=ttyAMA0");
        assert_eq!(bootargs(Some("quiet"), true), "console=ttyAMA0 quiet");
        assert_eq!(
            bootargs(Some("console=hvc0 rdinit=/bin/sh"), false),
            "console=hvc0 rdinit=/bin/sh"
        );
        let Ok(crate::Command::Linux(a)) = crate::parse(&[
            "linux",
            "--kernel",
            "/k",
            "--initrd",
            "/i",
            "--append",
            "x=1",
            "--smp",
            "2",
            "--disk",
            "/d",
            "--timeout",
            "30",
            "--qemu",
            "/q",
        ]) else {
            panic!("linux options");
        };
        assert_eq!(a.kernel, Some("/k".into()));
        assert_eq!(a.initrd, Some("/i".into()));
        assert_eq!(a.append.as_deref(), Some("x=1"));
        assert_eq!((a.smp, a.timeout), (Some(2), Some(30)));
        assert_eq!(a.disk, Some("/d".into()));
        assert_eq!(a.qemu.path, Some("/q".into()));
        for bad in [
            &["linux", "--smp", "0"][..],
            &["linux", "--smp", "9"],
            &["linux", "--timeout", "0"],
            &["linux", "extra"],
        ] {
            assert!(crate::parse(bad).is_err(), "{bad:?}");
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
