// SPDX-License-Identifier: MIT OR Apache-2.0
//! Linux scenarios: Debian's arm64 kernel boots on `hyp::linux` and powers off; with the
//! guest's own ITS, its NVMe's MSIs arrive as vLPIs (GICv4) or as LPIs the hypervisor
//! injects.
//!
//! The runner provisions the kernel, the initramfs (its `/init` prints `@@L` lines), the NVMe
//! disk and the boot parameter block, and judges the guest's console (`@@L` markers, no
//! kernel panic, Oops or WARNING); the checks here are the hypervisor's side: the guest
//! powered off through PSCI, no exit went unhandled, and each scenario's own figures. Every
//! scenario prints its EL2 exits by cause (`@@M`, see `hyp::linux::stats`).

use common::check;
use common::platform::HYP_BASE;
use common::report::metrics;
use smccc::psci::{
    PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_64, PSCI_FEATURES,
    PSCI_SYSTEM_RESET, error,
};

use super::Ctx;
use crate::gic_hw;
use crate::linux::params::BootParams;
use crate::linux::psci::Action;
use crate::linux::{self, Msi, Options, Report, Stop};

/// The PCIe INTx SPIs (INTA-INTD): the NVMe device's interrupt is one of them.
const PCIE_INTX: [u32; 4] = [35, 36, 37, 38];

/// Boots the guest on every CPU QEMU has and returns the report, printed.
fn boot(ctx: &mut Ctx, before_entry: impl FnOnce(&BootParams)) -> (usize, Report) {
    boot_with(ctx, Options::INTX, before_entry)
}

/// [`boot`] with `opts`.
fn boot_with(
    ctx: &mut Ctx,
    opts: Options,
    before_entry: impl FnOnce(&BootParams),
) -> (usize, Report) {
    let vcpus = gic_hw::get().cpus();
    let msis = match opts.msi {
        Msi::Intx => "the timer, UART and PCIe INTx are forwarded",
        Msi::Direct => {
            "the timer and UART are forwarded; the guest drives its own ITS (vits) and its \
             NVMe's MSIs are vLPIs (GICv4)"
        }
        Msi::Soft => {
            "the timer and UART are forwarded; the guest drives its own ITS (vits) and its \
             NVMe's MSIs are host LPIs injected through list registers"
        }
    };
    common::narrate!(
        "{}: booting Linux on {vcpus} vCPU(s): stage 2 maps guest RAM, the UART and PCIe; \
         GICD/GICR are emulated by vgic; {msis}",
        ctx.name
    );
    let report = linux::boot(vcpus, opts, before_entry);
    common::narrate!(
        "the guest stopped ({:?}) after {} ms at EL1: {} EL2 exits",
        report.stop,
        report.run_us / 1000,
        report.exits.exits()
    );
    print_report(&report);
    (vcpus, report)
}

fn print_report(r: &Report) {
    if let Some(e) = &r.error {
        common::println!("linux: the hypervisor failed: {e}");
    }
    if let Some(x) = r.first_refused {
        common::println!(
            "linux: {} guest access(es) refused; the first: vCPU {} at VA {:#x}, IPA {:x?} \
             (ESR_EL2 {:#x})",
            r.exits.dabt_refused,
            x.vcpu,
            x.va,
            x.ipa,
            x.esr
        );
    }
    if let Some((esr, elr)) = r.first_unexpected {
        common::println!(
            "linux: unexpected exit ESR_EL2 {esr:#x} at {elr:#x} ({}): UNDEFINED injected",
            common::exceptions::ec_name((esr >> 26) & 0x3f)
        );
    }
    r.exits.report("");
    if let Some(w) = &r.window {
        w.report("window_");
    }
    if let Some(w) = r.window_its {
        metrics(&[
            ("window_its_first", w.first),
            ("window_its_commands", w.physical),
            ("window_vits_commands", w.guest),
        ]);
    }
    if let Some(i) = &r.its {
        metrics(&[
            ("vits_commands", i.vits.commands),
            ("vits_ignored", i.vits.ignored),
            ("vits_stalls", i.vits.stalls),
            ("vits_backend_ops", i.vits.backend_ops),
            ("vits_deferred", i.vits.deferred),
            ("vits_events", i.events.len() as u64),
        ]);
        metrics(&[
            ("op_map_device", i.ops.map_device),
            ("op_unmap_device", i.ops.unmap_device),
            ("op_map", i.ops.map),
            ("op_unmap", i.ops.unmap),
            ("op_move", i.ops.moves),
            ("op_update", i.ops.update),
            ("op_invall", i.ops.invall),
            ("op_int", i.ops.int),
            ("op_clear", i.ops.clear),
        ]);
        metrics(&[
            ("its_commands", i.queue.commands),
            ("its_cwriter_writes", i.queue.cwriter_writes),
            ("doorbell_rings", i.doorbells.map_or(0, |d| d.rings)),
            ("doorbell_late", i.doorbells.map_or(0, |d| d.late)),
            ("soft_routes", i.routed.map_or(0, |n| n as u64)),
            ("swaps", u64::from(r.swaps)),
        ]);
        for (dev, ev, vintid, vcpu) in &i.events {
            common::println!(
                "linux: guest event: DeviceID {dev:#x} EventID {ev} -> vINTID {vintid} on vCPU \
                 {vcpu:?}"
            );
        }
        if let Some(e) = &i.last_error {
            common::println!("linux: the guest's ITS: last error: {e}");
        }
    }
    let p = &r.psci;
    metrics(&[
        ("psci_version", p.version),
        ("psci_features", p.features),
        ("psci_migrate_info_type", p.migrate_info_type),
        ("psci_cpu_on", p.cpu_on),
        ("psci_cpu_off", p.cpu_off),
        ("psci_affinity_info", p.affinity_info),
        ("psci_system_off", p.system_off),
        ("psci_system_reset", p.system_reset),
        ("psci_other", p.other),
    ]);
    metrics(&[
        ("vgic_reads", r.vgic.reads),
        ("vgic_writes", r.vgic.writes),
        ("vgic_sgis", r.vgic.sgis_delivered),
        ("vgic_syncs", r.vgic.syncs),
        ("vgic_spi_moves", r.vgic.spi_moves),
        ("guest_run_us", r.run_us),
    ]);
}

/// What every Linux scenario requires of the run: it started, nothing failed, the guest
/// powered off, every exit was one the hypervisor handles, and the timer ticked.
fn check_run(r: &Report, refused_allowed: bool) {
    check!(
        r.error.is_none(),
        "the hypervisor failed: {}",
        Failure(&r.error)
    );
    check!(
        r.stop == Some(Stop::PowerOff),
        "the guest did not power off: {:?}",
        r.stop
    );
    check!(
        r.psci.system_off == 1,
        "SYSTEM_OFF calls: {}",
        r.psci.system_off
    );
    check!(
        r.first_unexpected.is_none(),
        "unexpected exit (ESR, ELR): {:x?}",
        r.first_unexpected
    );
    check!(
        refused_allowed || r.exits.dabt_refused == 0,
        "{} guest accesses refused, the first {:x?}",
        r.exits.dabt_refused,
        r.first_refused
    );
    check!(r.exits.irq_vtimer > 0, "no virtual timer interrupt taken");
    check!(
        r.exits.dabt_gicd > 0 && r.exits.dabt_gicr > 0,
        "the guest never programmed the emulated GIC: {} GICD / {} GICR accesses",
        r.exits.dabt_gicd,
        r.exits.dabt_gicr
    );
}

/// `cargo xtask linux`: whatever kernel and initramfs the boot parameters name, on every CPU
/// QEMU has; passes when the guest powers off (or resets) cleanly.
pub fn linux_any(ctx: &mut Ctx) {
    let (_, r) = boot(ctx, |_| {});
    check!(
        r.error.is_none(),
        "the hypervisor failed: {}",
        Failure(&r.error)
    );
    check!(
        matches!(r.stop, Some(Stop::PowerOff | Stop::Reset)),
        "the guest stopped with {:?}",
        r.stop
    );
    if r.stop == Some(Stop::Reset) {
        common::println!("linux: the guest asked for a reset: the run ends here");
    }
}

/// One vCPU: the kernel boots to `/init` and powers off.
pub fn linux_boot(ctx: &mut Ctx) {
    let (vcpus, r) = boot(ctx, |_| {});
    check!(vcpus == 1, "{vcpus} CPUs: this scenario runs on 1");
    check_run(&r, false);
    check!(
        r.psci.cpu_on == 0,
        "CPU_ON calls on one vCPU: {}",
        r.psci.cpu_on
    );
}

/// Four vCPUs: the guest brings the three secondaries up with PSCI CPU_ON, takes the last
/// one offline (CPU_OFF, AFFINITY_INFO) and back (CPU_ON), and powers off; a CPU_ON for a
/// running vCPU is answered ALREADY_ON.
pub fn linux_smp(ctx: &mut Ctx) {
    let (vcpus, r) = boot(ctx, |_| {});
    check!(vcpus == 4, "{vcpus} CPUs: this scenario runs on 4");
    check_run(&r, false);
    let n = vcpus as u64;
    check!(
        r.psci.cpu_on == n,
        "CPU_ON calls: {} (want {} at boot and 1 after the hotplug)",
        r.psci.cpu_on,
        n - 1
    );
    check!(r.psci.cpu_off == 1, "CPU_OFF calls: {}", r.psci.cpu_off);
    check!(
        r.psci.affinity_info >= 1,
        "AFFINITY_INFO calls: {}",
        r.psci.affinity_info
    );
    check!(r.exits.sysreg_sgi > 0, "no IPI trapped");
    check!(r.exits.irq_kick > 0, "no vCPU was kicked");
    // Linux starts each CPU once and never makes the calls below; the answers come from the
    // same code its SMCs reach (the VM is stopped: nothing acts on them).
    let entry = r.params.map_or(0, |p| p.kernel.addr);
    let answers = [
        // A second CPU_ON for a running vCPU.
        (
            [u64::from(PSCI_CPU_ON_64), 1, entry, 0],
            ret(error::ALREADY_ON),
        ),
        // An MPIDR that names no vCPU.
        (
            [u64::from(PSCI_CPU_ON_64), 7, entry, 0],
            ret(error::INVALID_PARAMETERS),
        ),
        // vCPU 3 is on; affinity level 1 is not supported.
        (
            [u64::from(PSCI_AFFINITY_INFO_64), 3, 0, 0],
            Action::Return(0),
        ),
        (
            [u64::from(PSCI_AFFINITY_INFO_64), 3, 1, 0],
            ret(error::INVALID_PARAMETERS),
        ),
        // SMCCC_VERSION and CPU_SUSPEND are not offered; CPU_OFF is.
        (
            [u64::from(PSCI_FEATURES), 0x8000_0000, 0, 0],
            ret(error::NOT_SUPPORTED),
        ),
        (
            [
                u64::from(PSCI_FEATURES),
                u64::from(PSCI_CPU_SUSPEND_64),
                0,
                0,
            ],
            ret(error::NOT_SUPPORTED),
        ),
        (
            [u64::from(PSCI_FEATURES), u64::from(PSCI_CPU_OFF), 0, 0],
            Action::Return(0),
        ),
        ([0x8400_00ff, 0, 0, 0], ret(error::NOT_SUPPORTED)),
        ([u64::from(PSCI_CPU_OFF), 0, 0, 0], Action::CpuOff),
        ([u64::from(PSCI_SYSTEM_RESET), 0, 0, 0], Action::SystemReset),
    ];
    for (x, want) in answers {
        let got = linux::psci_call(0, x);
        check!(got == Some(want), "PSCI {x:#x?}: {got:?}, want {want:?}");
    }
}

/// A PSCI error as the return value the guest gets.
fn ret(code: i32) -> Action {
    Action::Return(i64::from(code))
}

/// NVMe on PCIe INTx: 2048 direct 4 KiB reads, the disk's interrupts forwarded (a level
/// SPI with the HW bit) and counted at EL2; the guest counts them too (`/proc/interrupts`,
/// judged by the runner against `el2_spi*`).
pub fn linux_nvme_intx(ctx: &mut Ctx) {
    let (_, r) = boot(ctx, |_| {});
    check_run(&r, false);
    let intx: u64 = PCIE_INTX.iter().map(|&i| r.exits.spi_taken(i)).sum();
    metrics(&[("el2_intx", intx)]);
    let reads = r
        .params
        .and_then(|p| p.bootarg("vgt.reads").and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    check!(reads > 0, "no vgt.reads on the command line");
    check!(
        intx >= reads,
        "{intx} PCIe INTx interrupts taken at EL2 for {reads} reads"
    );
}

/// The guest tries to read and write the hypervisor's memory (`devmem` at `vgt.target`, an
/// address in the hypervisor's image, outside the guest's memory): each access gets an
/// external abort (SIGBUS in the guest, judged by the runner), the hypervisor goes on, and
/// the memory at the target is unchanged.
pub fn linux_isolation(ctx: &mut Ctx) {
    let mut target = None;
    let mut before = None;
    let (_, r) = boot(ctx, |p| {
        let t = p
            .bootarg("vgt.target")
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        target = t;
        before = t.and_then(|t| page_checksum(t as usize));
    });
    check_run(&r, true);
    let Some(t) = target else {
        check!(false, "no vgt.target=0x... on the command line");
        return;
    };
    check!(
        before.is_some(),
        "vgt.target={t:#x} is not in the hypervisor's image (from {HYP_BASE:#x})"
    );
    let after = page_checksum(t as usize);
    check!(
        before == after,
        "the hypervisor's memory at {t:#x} changed: {before:x?} -> {after:x?}"
    );
    check!(
        r.exits.dabt_refused >= 2,
        "{} guest accesses refused (a read and a write expected)",
        r.exits.dabt_refused
    );
    check!(
        r.first_refused.is_some_and(|x| x.ipa == Some(t)),
        "first refused access {:x?}, target {t:#x}",
        r.first_refused
    );
    metrics(&[("isolation_refused", r.exits.dabt_refused)]);
}

/// Prints a run's failure, if any.
struct Failure<'a>(&'a Option<linux::LinuxError>);

impl core::fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(e) => write!(f, "{e}"),
            None => write!(f, "no failure"),
        }
    }
}

/// The checksum of the 4 KiB page of the hypervisor's image holding `addr`.
fn page_checksum(addr: usize) -> Option<u64> {
    crate::rawmem::image_checksum(addr & !0xfff, 4096)
}

/// What every scenario with the guest's ITS requires: the run's checks, the guest's ITS took
/// its commands without an error or a stall, the NVMe's vectors were mapped (and those left
/// at the end are live), and the guest marked its I/O window.
fn check_its_run(r: &Report) -> Option<linux::stats::ExitStats> {
    check_run(r, false);
    let Some(i) = &r.its else {
        check!(false, "no report of the guest's ITS");
        return None;
    };
    check!(
        i.vits.commands > 0 && i.ops.map_device > 0 && i.ops.map > 0,
        "the guest's ITS saw {} commands, {:?}",
        i.vits.commands,
        i.ops
    );
    check!(
        i.vits.ignored == 0 && i.vits.stalls == 0 && !i.stalled,
        "the guest's ITS: {} commands ignored, {} stalls (last error: {:?})",
        i.vits.ignored,
        i.vits.stalls,
        i.last_error
    );
    // Linux maps the NVMe's first vector, unmaps it, maps one per queue, and unmaps them all
    // when it shuts the device down at power-off.
    check!(
        i.ops.map >= 2 && i.ops.unmap <= i.ops.map && i.events.iter().all(|e| e.3.is_some()),
        "the guest's vectors: {:?}, events left {:?}",
        i.ops,
        i.events
    );
    let w = r.window;
    check!(
        w.is_some(),
        "the guest did not mark its I/O window (phases 1 and 2)"
    );
    w
}

/// `linux_nvme_vlpi`: the guest's ITS over GICv4, WFI not trapped. 2048 direct reads; every
/// NVMe completion is a vLPI delivered by the GIC into the vCPU its vector targets, resident
/// on its CPU all along: no EL2 exit caused by the disk (no doorbell, no host LPI) in the
/// window, no doorbell at all. The runner checks the guest's side: `ITS-MSI` vectors for the
/// NVMe in `/proc/interrupts`, counting up across the reads.
pub fn linux_nvme_vlpi(ctx: &mut Ctx) {
    let (_, r) = boot_with(ctx, Options::with_msi(Msi::Direct), |_| {});
    let Some(w) = check_its_run(&r) else { return };
    check!(
        w.disk_exits() == 0 && w.irq_doorbell == 0,
        "{} exits caused by disk interrupts in the window ({} doorbells)",
        w.disk_exits(),
        w.irq_doorbell
    );
    let rings = r
        .its
        .as_ref()
        .and_then(|i| i.doorbells)
        .map_or(0, |d| d.rings);
    check!(rings == 0, "{rings} doorbells rang for resident vPEs");
    check!(w.wfx == 0, "{} WFI exits with WFI not trapped", w.wfx);
    let cmds = r.window_its.map(|c| c.physical);
    check!(
        cmds == Some(0),
        "physical ITS commands while the guest read from resident vPEs: {cmds:?}"
    );
}

/// `linux_nvme_doorbell`: as `linux_nvme_vlpi` with WFI trapped: an idle vCPU blocks at EL2
/// with its vPE non-resident and its doorbell enabled, and the disk's vLPI wakes it through
/// the doorbell (taken at EL2 while blocked: no exit of its own). Every read completes (the
/// runner checks the reads and the block read back).
pub fn linux_nvme_doorbell(ctx: &mut Ctx) {
    let opts = Options {
        trap_wfi: true,
        ..Options::with_msi(Msi::Direct)
    };
    let (_, r) = boot_with(ctx, opts, |_| {});
    let Some(w) = check_its_run(&r) else { return };
    check!(w.wfi_blocks > 0, "no vCPU blocked in WFI during the reads");
    check!(
        w.doorbell_wakeups > 0,
        "no blocked vCPU was woken by its doorbell during the reads ({} blocks)",
        w.wfi_blocks
    );
    let rings = r
        .its
        .as_ref()
        .and_then(|i| i.doorbells)
        .map_or(0, |d| d.rings);
    check!(rings > 0, "no doorbell rang");
}

/// Swaps in `linux_vcpu_migrate`.
const SWAPS: u32 = 4;

/// `linux_vcpu_migrate`: vCPUs 0 and 1 trade CPUs four times while the guest reads its disk
/// (`hyp::linux::migrate`): each swap puts both vCPUs (vPE non-resident, timer and virtual
/// CPU interface saved, EL1 state saved), exchanges them, and loads each on the other CPU,
/// where its vPE becomes resident after a VMOVP. Nothing is lost: every read completes (the
/// runner checks them) and the interrupts keep coming (the guest counts them); no doorbell
/// rings (a vLPI that finds its vPE between two CPUs waits in the pending table), and the
/// runner checks QEMU's ITS processed the VMOVPs during the reads.
pub fn linux_vcpu_migrate(ctx: &mut Ctx) {
    let opts = Options {
        swaps: SWAPS,
        ..Options::with_msi(Msi::Direct)
    };
    let (_, r) = boot_with(ctx, opts, |_| {});
    let Some(w) = check_its_run(&r) else { return };
    check!(r.swaps == SWAPS, "{} swaps done, {SWAPS} asked", r.swaps);
    check!(
        w.swaps == 2 * u64::from(SWAPS),
        "{} vCPU moves in the window, expected {}",
        w.swaps,
        2 * SWAPS
    );
    check!(
        w.disk_exits() == 0 && w.doorbell_wakeups == 0,
        "{} exits caused by the disk, {} doorbell wake-ups, with WFI not trapped",
        w.disk_exits(),
        w.doorbell_wakeups
    );
}

/// `linux_irq_affinity`: the guest moves its NVMe interrupt (one MSI-X vector for admin and
/// I/O, `msix_qsize=1`, so not a managed interrupt) to CPU 1 and back with
/// `/proc/irq/N/smp_affinity` between read batches: each move is a MOVI to the guest's ITS,
/// which becomes a VMOVI of the vLPI to the other vCPU's vPE. The runner checks that the
/// interrupts followed (the per-CPU counts of each batch) and that QEMU's ITS processed the
/// VMOVIs during the reads; here, that the guest's MOVIs became moves of the vLPI.
pub fn linux_irq_affinity(ctx: &mut Ctx) {
    let (_, r) = boot_with(ctx, Options::with_msi(Msi::Direct), |_| {});
    let Some(w) = check_its_run(&r) else { return };
    let moves = r.its.as_ref().map_or(0, |i| i.ops.moves);
    check!(
        moves >= 2,
        "{moves} vLPI moves (VMOVI) for two affinity changes"
    );
    check!(
        w.disk_exits() == 0,
        "{} exits caused by the disk",
        w.disk_exits()
    );
}

/// `linux_nvme_soft`: the same guest ITS over the software backend (no GICv4): each NVMe
/// completion is a host LPI taken at EL2 (an IRQ exit while the vCPU runs), looked up in the
/// backend's routes and listed for the guest through a list register. At least one exit per
/// disk interrupt is the price; the runner checks the exits against the guest's count.
pub fn linux_nvme_soft(ctx: &mut Ctx) {
    let (_, r) = boot_with(ctx, Options::with_msi(Msi::Soft), |_| {});
    let Some(w) = check_its_run(&r) else { return };
    check!(
        w.lpis_injected > 0 && w.disk_exits() > 0,
        "no host LPI taken in the window: {} injected, {} exits",
        w.lpis_injected,
        w.disk_exits()
    );
    check!(
        w.lpis_injected <= w.disk_exits() + w.lpi_wakeups,
        "{} LPIs injected for {} host LPIs taken",
        w.lpis_injected,
        w.disk_exits() + w.lpi_wakeups
    );
    let rings = r
        .its
        .as_ref()
        .and_then(|i| i.doorbells)
        .map_or(0, |d| d.rings);
    check!(rings == 0, "{rings} doorbells without GICv4");
    let cmds = r.window_its.map(|c| c.physical);
    check!(
        cmds == Some(0),
        "physical ITS commands while the guest read (software injection needs none): {cmds:?}"
    );
}

/// A benchmark of the guest's ITS: the `nvme` workload (2048 direct 4 KiB reads between the
/// phase marks) under `-icount shift=0`, with `opts` and the instructions counted per phase
/// (`Options::pmu`). Checks what the suite's scenarios check; `cargo xtask bench` reads the
/// window's figures (`@@M window_*`), the guest's interrupt count (its `/proc/interrupts`) and
/// QEMU's trace of the ITS's commands.
fn bench_linux(ctx: &mut Ctx, opts: Options) {
    let (_, r) = boot_with(ctx, Options { pmu: true, ..opts }, |_| {});
    let Some(w) = check_its_run(&r) else { return };
    check!(
        w.inst_guest > 0 && w.inst_hyp > 0,
        "no instruction counted (guest {}, hypervisor {}): -icount and the PMU",
        w.inst_guest,
        w.inst_hyp
    );
}

/// `bench_linux_vlpi`: GICv4, vPEs resident (WFI not trapped).
pub fn bench_linux_vlpi(ctx: &mut Ctx) {
    bench_linux(ctx, Options::with_msi(Msi::Direct));
}

/// `bench_linux_doorbell`: GICv4, WFI trapped: idle vCPUs blocked, woken by doorbells.
pub fn bench_linux_doorbell(ctx: &mut Ctx) {
    bench_linux(
        ctx,
        Options {
            trap_wfi: true,
            ..Options::with_msi(Msi::Direct)
        },
    );
}

/// `bench_linux_soft`: no GICv4: host LPIs injected through list registers.
pub fn bench_linux_soft(ctx: &mut Ctx) {
    bench_linux(ctx, Options::with_msi(Msi::Soft));
}
