// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarded physical interrupts through list registers (HW bit), level-triggered interrupts
//! and the arch timer, on QEMU's GIC, through the `fwd-irq` crate ([`crate::fwd`]).
//!
//! | Scenario | Physical source | What it proves |
//! |---|---|---|
//! | `fwd_vtimer` | EL1 virtual timer, PPI 27 | HW = 1 list register, pINTID 27; the guest's EOI deactivates the PPI (GICR_ISACTIVER0); one exit per timer interrupt; the EOI-maintenance flow costs two (`@@M fwd_vtimer_hw`, `@@M fwd_vtimer_sw`) |
//! | `fwd_vtimer_wfi` | EL2 timer, PPI 26 | WFI trapped, `vcpu_block` puts the timer and arms the EL2 timer, its expiry wakes the vCPU, `vcpu_unblock` marks PPI 27 active before the guest runs, the guest takes the interrupt (`@@M fwd_vtimer_wfi`) |
//! | `fwd_level_lowered` | PL031 RTC, SPI 34 (level) | the line drops while the guest has interrupts masked: fold samples it, clears the physical active state, nothing spurious is delivered, and the next assertion is seen |
//! | `fwd_level_reassert` | PL031 RTC, SPI 34 | the line stays high across the guest's EOI: delivered again, until the guest quiets the device |
//! | `fwd_lr_overflow` | 6 SPIs made pending with GICD_ISPENDR | more interrupts than list registers (4, then 1): UIE / NPIE maintenance, fold, repopulate; delivered in priority order, every physical SPI deactivated |
//! | `fwd_vtimer_migrate` | PPI 27 on CPU0 and CPU1 | put on one CPU, load on the other: the interrupt follows to CPU1's redistributor, and an interrupt pending at the move arrives active on the new CPU |
//!
//! # Why the PL031 for level-triggered interrupts
//! QEMU's PL031 RTC (SPI 2, INTID 34) drives a level line that software controls completely:
//! writing RTCMR with the current RTCDR latches RTCRIS at once (`pl031_set_alarm`: `ticks ==
//! 0`), the line is RTCRIS & RTCIMSC, so RTCIMSC raises and lowers it, and RTCICR clears it.
//! Nothing else in the images uses the RTC. The PL011 would share the line with the console,
//! the PL061's inputs cannot be driven from software, and the edu device's INTx needs PCI
//! enumeration. The guest drives the RTC directly (no stage 2: it sees physical memory), as it
//! would a passed-through device.
//!
//! # How exits are counted
//! The guest brackets each measured phase with `fwd_step::BEGIN` / `fwd_step::END`
//! hypercalls; the EL2 exits in between ([`exits::snapshot`]), minus the END hypercall, are
//! what the phase cost. The guest does nothing else that exits in the window (it polls its
//! IRQ count and reads the physical GICR directly). A phase's checks run at its END, so the
//! hyp also counts the ENDs: one with no phase open, or a count other than the phases the
//! scenario runs, is a failure.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use common::hvc_abi::{HVC_FWD_STEP, fwd_step, program};
use common::platform::cpu_index;
use common::sync::SpinLock;
use common::{check, println, read_sysreg};
use fwd_irq::host_irq::handle_host_irq;
use fwd_irq::hw::{HostCpuIf, IchRegs};
use fwd_irq::{Forward, FwdMode, HostIrq, HostPpis, PIntId, VIntId, VgicCpu, VirqConfig};

use super::Ctx;
use crate::exits::{self, ExitCounts};
use crate::fwd::{self, FwdStats, FwdVcpu, NR_VIRQS, VTIMER_PPI};
use crate::gic_hw;
use crate::smp;
use crate::vcpu::{Exit, Flow};

/// Timer interrupts per measured phase of `fwd_vtimer`.
const VTIMER_ROUNDS: u64 = 10;
/// WFI wake-ups of `fwd_vtimer_wfi`.
const WFI_ROUNDS: u64 = 5;
/// The PL031's interrupt: SPI 2.
const RTC_INTID: u32 = 34;
/// Deliveries the guest lets `fwd_level_reassert`'s line stay high for.
const REASSERTS: u64 = 3;
/// `fwd_lr_overflow`'s interrupts: (INTID, virtual priority). SPIs 168-173, wired to nothing
/// on QEMU `virt`; priorities differ in their top 5 bits (QEMU implements 5).
const OVERFLOW_SET: [(u32, u8); 6] = [
    (200, 0x60),
    (201, 0x20),
    (202, 0x50),
    (203, 0x30),
    (204, 0x58),
    (205, 0x28),
];
/// The list registers `fwd_lr_overflow` uses in each phase (0 = all ICH_VTR_EL2 reports).
const OVERFLOW_LRS: [usize; 2] = [0, 1];

/// Creates the vCPU and prepares this PE; records a failure and returns `None` if it can't.
fn setup(cpu: usize, program: u64, timer: Option<FwdMode>) -> Option<FwdVcpu> {
    if !check!(crate::vcpu::guest_image_present(), "guest image not loaded") {
        return None;
    }
    if let Err(e) = fwd::pe_setup(cpu) {
        check!(false, "PE set-up on cpu{cpu}: {e:?}");
        return None;
    }
    match FwdVcpu::new(program, timer) {
        Ok(f) => Some(f),
        Err(e) => {
            check!(false, "vCPU creation: {e}");
            None
        }
    }
}

/// Checks the guest's DONE status (or the exit that stopped the run).
fn check_done(result: Result<u64, Exit>) {
    match result {
        Ok(failures) => {
            check!(failures == 0, "the guest reported {failures} failed checks");
        }
        Err(exit) => {
            check!(false, "guest stopped with an unhandled exit: {exit:x?}");
        }
    }
}

/// Checks that the guest closed `expected` measured phases (`fwd_step::END`): the checks of a
/// phase run at its END, so a phase that never ended would otherwise check nothing.
fn check_ends(ends: usize, expected: usize) {
    check!(
        ends == expected,
        "the guest ended {ends} measured phases, expected {expected}"
    );
}

/// `n / d` with two decimals, as `(integer, hundredths)`.
fn ratio(n: u64, d: u64) -> (u64, u64) {
    if d == 0 {
        return (0, 0);
    }
    let hundredths = (n * 100 + d / 2) / d;
    (hundredths / 100, hundredths % 100)
}

/// What a measured phase cost: EL2 exits by cause and the run loop's own counts.
struct Window {
    exits: ExitCounts,
    stats: FwdStats,
    eoi_deactivations: u64,
    lines_dropped: u64,
    timer_host_irqs: u64,
    timer_blocks: u64,
}

impl Window {
    fn open(f: &FwdVcpu) -> Self {
        let vgic = f.vgic.stats();
        let timer = f.vtimer.map(|v| v.stats()).unwrap_or_default();
        Self {
            exits: exits::snapshot(),
            stats: f.stats,
            eoi_deactivations: vgic.eoi_deactivations,
            lines_dropped: vgic.lines_dropped,
            timer_host_irqs: timer.host_irqs,
            timer_blocks: timer.blocks,
        }
    }

    /// The exits since `open`, without the END hypercall that closes the window.
    fn exits(&self) -> ExitCounts {
        let mut e = exits::snapshot().since(&self.exits);
        e.hvc = e.hvc.saturating_sub(1);
        e
    }
}

/// The guest's `fwd_step` hypercall, if `exit` is one: (step, x2, x3).
fn step_of(exit: &Exit) -> Option<(u64, u64, u64)> {
    match *exit {
        Exit::Hvc {
            nr: HVC_FWD_STEP,
            args,
        } => Some((args[0], args[1], args[2])),
        _ => None,
    }
}

/// `fwd_vtimer`: the guest arms CNTV 1 ms ahead, [`VTIMER_ROUNDS`] times per phase, and
/// waits for the interrupt without WFI. Phase 0 forwards PPI 27 with HW = 1, phase 1 with
/// the EOI-maintenance software flow. Proves, per phase: each interrupt arrived through a
/// list register with HW = 1 and pINTID 27 (phase 0), the guest's EOI left PPI 27 inactive
/// (the guest reads GICR_ISACTIVER0 after each EOI; the hyp after the phase), and the EL2
/// exits per interrupt: exactly one (the IRQ) with HW = 1, exactly two (IRQ + EOI maintenance)
/// without.
pub fn fwd_vtimer(ctx: &mut Ctx) {
    let Some(mut f) = setup(ctx.cpu, program::FWD_VTIMER, Some(FwdMode::Hw)) else {
        return;
    };
    const PHASES: [(FwdMode, &str); 2] = [
        (FwdMode::Hw, "fwd_vtimer_hw"),
        (FwdMode::EoiMaintenance, "fwd_vtimer_sw"),
    ];
    f.load();
    let mut window: Option<(usize, Window)> = None;
    let mut phase = 0;
    let mut ends = 0;
    let result = f.run_until(|f, exit| {
        let (step, a, _) = step_of(exit)?;
        match step {
            fwd_step::BEGIN => {
                phase = a as usize;
                let mut rounds = 0;
                if let Some(&(mode, _)) = PHASES.get(phase) {
                    match f.set_vtimer_mode(mode) {
                        Ok(()) => rounds = VTIMER_ROUNDS,
                        Err(e) => {
                            check!(false, "switching the timer to {mode:?}: {e}");
                        }
                    }
                }
                window = Some((phase, Window::open(f)));
                f.vcpu.regs.x[0] = rounds;
            }
            fwd_step::END => {
                ends += 1;
                match window.take() {
                    Some((p, w)) => match PHASES.get(p) {
                        Some(&(mode, name)) => vtimer_phase_end(f, &w, mode, name, a),
                        None => {
                            check!(false, "END of phase {p}, which has no rounds");
                        }
                    },
                    None => {
                        check!(false, "END with no measured phase open");
                    }
                }
            }
            _ => return None,
        }
        Some(Flow::Continue)
    });
    check_done(result);
    check_ends(ends, PHASES.len());
    check!(
        !gic_hw::get().is_active(ctx.cpu, VTIMER_PPI),
        "PPI 27 active after the guest finished"
    );
    f.finish();
}

fn vtimer_phase_end(f: &FwdVcpu, w: &Window, mode: FwdMode, name: &str, irqs: u64) {
    let e = w.exits();
    let exits = e.exits();
    let vgic = f.vgic.stats();
    let maintenance = f.stats.maintenance - w.stats.maintenance;
    let host_irqs = f.stats.vtimer_irqs_total() - w.stats.vtimer_irqs_total();
    let hw_lrs = f.stats.hw_pending_vtimer - w.stats.hw_pending_vtimer;
    let eoi_lrs = f.stats.eoi_listed - w.stats.eoi_listed;
    let eoi_deact = vgic.eoi_deactivations - w.eoi_deactivations;
    let (i, h) = ratio(exits, irqs);
    println!(
        "@@M {name} exits_per_irq={i}.{h:02} irqs={irqs} exits={exits} irq_exits={} \
         maintenance_irqs={maintenance} hw_lrs={hw_lrs} eoi_lrs={eoi_lrs}",
        e.irq
    );
    check!(
        irqs == VTIMER_ROUNDS,
        "{name}: the guest saw {irqs} of {VTIMER_ROUNDS}"
    );
    check!(
        host_irqs == irqs,
        "{name}: {host_irqs} physical PPI 27 taken for {irqs} interrupts"
    );
    check!(
        e.hvc == 0 && e.wfi == 0 && e.dabt == 0 && e.other == 0,
        "{name}: exits other than IRQs in the window: {e:?}"
    );
    match mode {
        FwdMode::Hw => {
            check!(exits == irqs, "{name}: {exits} exits for {irqs} interrupts");
            check!(
                hw_lrs == irqs && eoi_lrs == 0,
                "{name}: {hw_lrs} HW = 1 list registers with pINTID 27, {eoi_lrs} with EOI = 1"
            );
            check!(
                maintenance == 0 && eoi_deact == 0,
                "{name}: EL2 took part in an EOI"
            );
        }
        FwdMode::EoiMaintenance => {
            check!(
                exits == 2 * irqs,
                "{name}: {exits} exits for {irqs} interrupts"
            );
            check!(
                hw_lrs == 0 && eoi_lrs == irqs,
                "{name}: {hw_lrs} HW = 1 list registers, {eoi_lrs} with EOI = 1"
            );
            check!(
                maintenance == irqs && eoi_deact == irqs,
                "{name}: {maintenance} maintenance IRQs, {eoi_deact} deactivations by fold"
            );
        }
    }
    check!(
        !gic_hw::get().is_active(cpu_index(), VTIMER_PPI),
        "{name}: PPI 27 still active"
    );
}

/// `fwd_vtimer_wfi`: [`WFI_ROUNDS`] times, the guest arms CNTV 20 ms ahead and executes WFI
/// (trapped: HCR_EL2.TWI). The hyp finds nothing pending, `vcpu_block` puts the timer (off,
/// PPI 27 inactive) and arms the EL2 physical timer (PPI 26) for the guest's deadline; the
/// hyp waits for it, `handle_host_irq` reports `HostTimer { woke: true }`, `vcpu_unblock`
/// marks PPI 27 active and restores the expired timer, and the guest takes vINTID 27 through
/// an HW list register as soon as it runs. One exit (the WFI) per interrupt; the physical
/// virtual-timer PPI never fires at the host.
pub fn fwd_vtimer_wfi(ctx: &mut Ctx) {
    let Some(mut f) = setup(ctx.cpu, program::FWD_VTIMER_WFI, Some(FwdMode::Hw)) else {
        return;
    };
    f.load();
    let mut window: Option<Window> = None;
    let mut ends = 0;
    let result = f.run_until(|f, exit| {
        let (step, a, _) = step_of(exit)?;
        match step {
            fwd_step::BEGIN => {
                window = Some(Window::open(f));
                f.vcpu.regs.x[0] = if a == 0 { WFI_ROUNDS } else { 0 };
            }
            fwd_step::END => {
                ends += 1;
                match window.take() {
                    Some(w) => wfi_phase_end(f, &w, a),
                    None => {
                        check!(false, "END with no measured phase open");
                    }
                }
            }
            _ => return None,
        }
        Some(Flow::Continue)
    });
    check_done(result);
    check_ends(ends, 1);
    f.finish();
}

fn wfi_phase_end(f: &FwdVcpu, w: &Window, irqs: u64) {
    let e = w.exits();
    let exits = e.exits();
    let s = &f.stats;
    let o = &w.stats;
    let timer = f.vtimer.map(|v| v.stats()).unwrap_or_default();
    let armed = s.block_armed - o.block_armed;
    let wakeups = s.wakeups - o.wakeups;
    let expired = s.block_expired - o.block_expired;
    let active = s.active_at_unblock - o.active_at_unblock;
    let host_irqs = timer.host_irqs - w.timer_host_irqs;
    let (i, h) = ratio(exits, irqs);
    println!(
        "@@M fwd_vtimer_wfi exits_per_irq={i}.{h:02} irqs={irqs} exits={exits} wfi_exits={} \
         blocks={} armed={armed} expired={expired} host_timer_wakeups={wakeups} \
         vtimer_host_irqs={host_irqs}",
        e.wfi,
        timer.blocks - w.timer_blocks
    );
    check!(
        irqs == WFI_ROUNDS,
        "the guest saw {irqs} of {WFI_ROUNDS} interrupts"
    );
    check!(
        exits == irqs && e.wfi == irqs,
        "{exits} exits ({} WFI) for {irqs} wake-ups",
        e.wfi
    );
    check!(
        armed == irqs && wakeups == irqs && expired == 0,
        "{armed} host timers armed, {wakeups} woke the vCPU, {expired} already expired"
    );
    check!(
        s.early_wakeups == o.early_wakeups && s.wake_timeouts == o.wake_timeouts,
        "host timer fired early {} times, never {} times",
        s.early_wakeups - o.early_wakeups,
        s.wake_timeouts - o.wake_timeouts
    );
    check!(
        s.block_leaks == o.block_leaks,
        "while blocked, the vtimer was still enabled or PPI 27 active"
    );
    check!(
        active == irqs,
        "PPI 27 active after {active} of {irqs} unblocks (the timer context owns it)"
    );
    check!(
        host_irqs == 0,
        "the physical vtimer PPI fired at the host {host_irqs} times"
    );
    check!(
        s.hw_pending_vtimer - o.hw_pending_vtimer == irqs,
        "{} HW = 1 list registers for {irqs} wake-ups",
        s.hw_pending_vtimer - o.hw_pending_vtimer
    );
}

/// Forwards the PL031's SPI 34 (level) to the vCPU as vINTID 34 with HW = 1.
fn map_rtc(f: &mut FwdVcpu) -> bool {
    if !check!(
        gic_hw::get().configure_spi(RTC_INTID, false, 0x80).is_ok(),
        "SPI {RTC_INTID} set-up did not complete"
    ) {
        return false;
    }
    let (Ok(v), Ok(p)) = (VIntId::new(RTC_INTID), PIntId::new(RTC_INTID)) else {
        check!(false, "INTID {RTC_INTID} refused as a vINTID or pINTID");
        return false;
    };
    let fwd = Forward {
        pintid: p,
        mode: FwdMode::Hw,
    };
    match f.vgic.map(v, VirqConfig::level(0xA0), fwd) {
        Ok(()) => true,
        Err(e) => {
            check!(false, "mapping SPI {RTC_INTID}: {e}");
            false
        }
    }
}

/// `fwd_level_lowered`: with interrupts masked, the guest raises the PL031's line. The hyp
/// takes SPI 34 (it stays active: EOImode = 1) and lists vINTID 34 with HW = 1; the guest sees
/// it pending (ICV_HPPIR1_EL1) but does not take it, lowers the line, and exits
/// (`fwd_step::SYNC`). The fold of that exit must find the list register still pending,
/// sample the physical line (low), drop the interrupt and clear SPI 34's active state. The
/// guest then unmasks: nothing arrives. It raises the line again: because the physical
/// interrupt is no longer stuck active, that assertion reaches the hyp and the guest.
pub fn fwd_level_lowered(ctx: &mut Ctx) {
    let Some(mut f) = setup(ctx.cpu, program::FWD_LEVEL_LOWERED, None) else {
        return;
    };
    if !map_rtc(&mut f) {
        return;
    }
    f.load();
    let start = Window::open(&f);
    let (mut syncs, mut ends) = (0, 0);
    let result = f.run_until(|f, exit| {
        let (step, a, _) = step_of(exit)?;
        match step {
            fwd_step::SYNC => {
                syncs += 1;
                let fold = f.last_fold;
                let cpu = cpu_index();
                let ok = check!(
                    fold.still_pending == 1 && fold.lines_dropped == 1,
                    "fold after the line dropped: {fold:?}"
                ) & check!(
                    !gic_hw::get().is_active(cpu, RTC_INTID),
                    "SPI {RTC_INTID} still active after the fold"
                ) & check!(
                    !gic_hw::get().is_pending(cpu, RTC_INTID),
                    "SPI {RTC_INTID} still pending with its line low"
                ) & check!(
                    !f.vgic.has_pending(),
                    "vINTID {RTC_INTID} still pending in software"
                );
                f.vcpu.regs.x[0] = u64::from(ok);
            }
            fwd_step::END => {
                ends += 1;
                let forwarded =
                    f.stats.forwarded_of(RTC_INTID) - start.stats.forwarded_of(RTC_INTID);
                let dropped = f.vgic.stats().lines_dropped - start.lines_dropped;
                let e = exits::snapshot().since(&start.exits);
                println!(
                    "@@M fwd_level_lowered deliveries={a} phys_irqs={forwarded} \
                     lines_dropped={dropped} irq_exits={}",
                    e.irq
                );
                check!(
                    a == 1,
                    "the guest took vINTID {RTC_INTID} {a} times, expected once"
                );
                check!(
                    forwarded == 2,
                    "SPI {RTC_INTID} taken {forwarded} times, expected 2 (raise, raise again)"
                );
                check!(dropped == 1, "{dropped} lines dropped by fold, expected 1");
            }
            _ => return None,
        }
        Some(Flow::Continue)
    });
    check_done(result);
    check!(
        syncs == 1,
        "the guest reported the dropped line {syncs} times, expected once"
    );
    check_ends(ends, 1);
    check!(
        !gic_hw::get().is_active(ctx.cpu, RTC_INTID),
        "SPI {RTC_INTID} active at the end"
    );
    // Best effort, as before: a distributor that does not settle shows in the next set-up.
    let _ = gic_hw::get().reset_spi(RTC_INTID);
    f.finish();
}

/// `fwd_level_reassert`: the guest raises the PL031's line with interrupts enabled and keeps
/// it high for [`REASSERTS`] deliveries. Each guest EOI deactivates SPI 34 through the HW bit;
/// the line is still high, so the physical GIC signals it again, the hyp forwards it again,
/// and the guest takes it again. On the last delivery the guest lowers the line before its
/// EOI, and nothing more arrives.
pub fn fwd_level_reassert(ctx: &mut Ctx) {
    let Some(mut f) = setup(ctx.cpu, program::FWD_LEVEL_REASSERT, None) else {
        return;
    };
    if !map_rtc(&mut f) {
        return;
    }
    f.load();
    let start = Window::open(&f);
    let mut ends = 0;
    let result = f.run_until(|f, exit| {
        let (step, a, _) = step_of(exit)?;
        if step != fwd_step::END {
            return None;
        }
        ends += 1;
        let forwarded = f.stats.forwarded_of(RTC_INTID) - start.stats.forwarded_of(RTC_INTID);
        let dropped = f.vgic.stats().lines_dropped - start.lines_dropped;
        let e = exits::snapshot().since(&start.exits);
        println!(
            "@@M fwd_level_reassert deliveries={a} phys_irqs={forwarded} irq_exits={} \
             lines_dropped={dropped}",
            e.irq
        );
        check!(
            a == REASSERTS,
            "the guest took vINTID {RTC_INTID} {a} times, expected {REASSERTS}"
        );
        check!(
            u64::from(forwarded) == REASSERTS,
            "SPI {RTC_INTID} taken {forwarded} times for {REASSERTS} deliveries"
        );
        check!(dropped == 0, "fold dropped a line that stayed high");
        check!(
            e.irq == REASSERTS,
            "{} IRQ exits for {REASSERTS} assertions",
            e.irq
        );
        Some(Flow::Continue)
    });
    check_done(result);
    check_ends(ends, 1);
    let cpu = ctx.cpu;
    check!(
        !gic_hw::get().is_active(cpu, RTC_INTID) && !gic_hw::get().is_pending(cpu, RTC_INTID),
        "SPI {RTC_INTID} active or pending at the end"
    );
    // Best effort, as before: a distributor that does not settle shows in the next set-up.
    let _ = gic_hw::get().reset_spi(RTC_INTID);
    f.finish();
}

/// The interrupt table of `fwd_lr_overflow`'s phase with `lrs` list registers (0 = all).
fn overflow_vgic(lrs: usize) -> Result<VgicCpu<NR_VIRQS>, fwd_irq::FwdError> {
    let mut vgic = if lrs == 0 {
        VgicCpu::from_vtr(fwd::ich().vtr())?
    } else {
        VgicCpu::new(lrs)?
    };
    for (n, prio) in OVERFLOW_SET {
        let fwd = Forward {
            pintid: PIntId::new(n)?,
            mode: FwdMode::Hw,
        };
        vgic.map(VIntId::new(n)?, VirqConfig::edge(prio), fwd)?;
    }
    Ok(vgic)
}

/// Makes all of [`OVERFLOW_SET`] pending at the physical distributor and takes them at EL2
/// (the vCPU is out); each is forwarded, left active. Returns how many were forwarded.
fn pend_overflow_set(f: &mut FwdVcpu) -> u64 {
    for (n, _) in OVERFLOW_SET {
        let _ = gic_hw::get().set_spi_pending(n);
    }
    let mut forwarded = 0;
    for _ in 0..4 * OVERFLOW_SET.len() {
        if gic_hw::hppir() == gic_hw::SPURIOUS {
            break;
        }
        let irq = handle_host_irq(
            &mut fwd::icc(),
            &mut f.vgic,
            None,
            &mut fwd::host_timer(),
            HostPpis::BSA,
        );
        match irq {
            HostIrq::Forwarded { .. } => forwarded += 1,
            HostIrq::Other(intid) => {
                fwd::icc().deactivate(intid);
                check!(false, "unexpected physical IRQ {intid}");
            }
            _ => {}
        }
    }
    forwarded
}

/// `fwd_lr_overflow`: six SPIs (physical priority equal, virtual priorities all different)
/// are made pending at the distributor, taken at EL2 and forwarded with HW = 1, all before the
/// guest unmasks. Phase 0 uses the 4 list registers QEMU implements (ICH_VTR_EL2 =
/// 0x90a8_0003): populate lists the 4 most urgent with UIE; once the guest has retired three,
/// the underflow maintenance interrupt exits, fold keeps the fourth and the next populate
/// lists the last two. Phase 1 uses a single list register: NPIE exits as soon as the guest
/// acknowledges, and the active entry is then listed HW = 0, EOI = 1 so that its EOI exits
/// too. The guest reports the order it took them in; it must be priority order, and every
/// physical SPI must end inactive.
pub fn fwd_lr_overflow(ctx: &mut Ctx) {
    let Some(mut f) = setup(ctx.cpu, program::FWD_LR_OVERFLOW, None) else {
        return;
    };
    for (n, _) in OVERFLOW_SET {
        if !check!(
            gic_hw::get().configure_spi(n, true, 0x80).is_ok(),
            "SPI {n} set-up did not complete"
        ) {
            return;
        }
    }
    let vtr = fwd::ich().vtr();
    println!(
        "fwd_lr_overflow: ICH_VTR_EL2 = {:#x}: {} list registers, {} priority bits",
        vtr.into_bits(),
        vtr.nr_lrs(),
        vtr.pribits() + 1
    );
    check!(
        vtr.nr_lrs() >= 2,
        "{} list registers: phase 0 needs at least 2",
        vtr.nr_lrs()
    );
    let mut expected = OVERFLOW_SET;
    expected.sort_unstable_by_key(|&(n, prio)| (prio, n));
    f.load();
    let mut window: Option<(usize, Window)> = None;
    let mut ends = 0;
    let result = f.run_until(|f, exit| {
        let (step, a, b) = step_of(exit)?;
        match step {
            fwd_step::BEGIN => {
                let phase = a as usize;
                let mut n = 0;
                if let Some(&lrs) = OVERFLOW_LRS.get(phase) {
                    match overflow_vgic(lrs) {
                        Ok(vgic) => {
                            f.replace_vgic(vgic);
                            window = Some((phase, Window::open(f)));
                            n = pend_overflow_set(f);
                            check!(
                                n == OVERFLOW_SET.len() as u64,
                                "phase {phase}: {n} of {} SPIs forwarded",
                                OVERFLOW_SET.len()
                            );
                        }
                        Err(e) => {
                            check!(false, "phase {phase}: interrupt table: {e}");
                        }
                    }
                }
                f.vcpu.regs.x[0] = n;
            }
            fwd_step::END => {
                ends += 1;
                match window.take() {
                    Some((phase, w)) => overflow_phase_end(f, &w, phase, [a, b], &expected),
                    None => {
                        check!(false, "END with no measured phase open");
                    }
                }
            }
            _ => return None,
        }
        Some(Flow::Continue)
    });
    check_done(result);
    check_ends(ends, OVERFLOW_LRS.len());
    for (n, _) in OVERFLOW_SET {
        // Best effort, as before: a distributor that does not settle shows in the next set-up.
        let _ = gic_hw::get().reset_spi(n);
    }
    f.finish();
}

fn overflow_phase_end(
    f: &FwdVcpu,
    w: &Window,
    phase: usize,
    packed: [u64; 2],
    expected: &[(u32, u8); 6],
) {
    let mut order = [0u32; 8];
    for (i, slot) in order.iter_mut().enumerate() {
        *slot = (packed[i / 4] >> ((i % 4) * 16)) as u32 & 0xffff;
    }
    let want: [u32; 6] = core::array::from_fn(|i| expected[i].0);
    let e = w.exits();
    let s = &f.stats;
    let o = &w.stats;
    let vgic = f.vgic.stats();
    let lrs = f.vgic.nr_lrs();
    println!(
        "@@M fwd_lr_overflow_lrs{lrs} irqs={} exits={} maintenance_irqs={} uie={} npie={} \
         eoi_lrs={} eoi_deactivations={} order={:?}",
        OVERFLOW_SET.len(),
        e.exits(),
        s.maintenance - o.maintenance,
        s.uie - o.uie,
        s.npie - o.npie,
        s.eoi_listed - o.eoi_listed,
        vgic.eoi_deactivations - w.eoi_deactivations,
        &order[..6]
    );
    check!(
        order[..6] == want && order[6..] == [0, 0],
        "phase {phase} ({lrs} list registers): delivered {:?}, expected {want:?}",
        &order[..6]
    );
    check!(
        s.maintenance > o.maintenance,
        "phase {phase}: no maintenance interrupt"
    );
    if lrs >= 2 {
        check!(s.uie > o.uie, "phase {phase}: UIE never requested");
    } else {
        check!(s.npie > o.npie, "phase {phase}: NPIE never requested");
        check!(
            s.eoi_listed > o.eoi_listed && vgic.eoi_deactivations > w.eoi_deactivations,
            "phase {phase}: the active entry was never listed with EOI = 1"
        );
    }
    for (n, _) in OVERFLOW_SET {
        check!(
            !gic_hw::get().is_active(cpu_index(), n),
            "phase {phase}: SPI {n} still active"
        );
    }
}

/// The migrating vCPU: it runs on CPU0 and CPU1 in turn, so it lives in a static.
static MIGRATING: SpinLock<Option<FwdVcpu>> = SpinLock::new(None);
/// The guest's DONE status, once it is done.
static MIGRATE_DONE: AtomicU64 = AtomicU64::new(u64::MAX);
/// `Flow::Done` status that means "the guest asked to move".
const MOVE: u64 = u64::MAX;
/// What a segment on one CPU ended with.
const SEG_MOVE: u64 = 1;
const SEG_DONE: u64 = 2;
const SEG_FAIL: u64 = 3;
/// How long CPU0 waits for CPU1's segment.
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads the migrating vCPU on the calling CPU, runs it until it asks to move (then puts it)
/// or is done.
fn migrate_segment(cpu: usize) -> u64 {
    if let Err(e) = fwd::pe_setup(cpu) {
        check!(false, "PE set-up on cpu{cpu}: {e:?}");
        return SEG_FAIL;
    }
    let mut slot = MIGRATING.lock();
    let Some(f) = slot.as_mut() else {
        return SEG_FAIL;
    };
    let before = f.stats.vtimer_irqs;
    f.load();
    let pending = f.vgic.needs_phys_active(fwd_irq::VIntId::VTIMER);
    check!(
        gic_hw::get().is_active(cpu, VTIMER_PPI) == pending,
        "cpu{cpu}: after load PPI 27 active = {}, the vCPU owes it: {pending}",
        gic_hw::get().is_active(cpu, VTIMER_PPI)
    );
    let other = if cpu == 0 { 1 } else { 0 };
    let result = f.run_until(|f, exit| {
        let (step, _, _) = step_of(exit)?;
        if step != fwd_step::MIGRATE {
            return None;
        }
        f.vcpu.regs.x[0] = other;
        Some(Flow::Done(MOVE))
    });
    let took: u64 = f.stats.vtimer_irqs[cpu] - before[cpu];
    println!("cpu{cpu}: vCPU segment took {took} vtimer PPIs here");
    match result {
        Ok(MOVE) => {
            f.put();
            let ctl = read_sysreg!(cntv_ctl_el0);
            check!(
                ctl & 1 == 0,
                "cpu{cpu}: CNTV_CTL_EL0 = {ctl:#x} after put: the timer stays on"
            );
            check!(
                !gic_hw::get().is_active(cpu, VTIMER_PPI),
                "cpu{cpu}: PPI 27 left active after put"
            );
            SEG_MOVE
        }
        Ok(status) => {
            MIGRATE_DONE.store(status, Ordering::Release);
            f.finish();
            SEG_DONE
        }
        Err(exit) => {
            check!(
                false,
                "cpu{cpu}: guest stopped with an unhandled exit: {exit:x?}"
            );
            SEG_FAIL
        }
    }
}

/// `fwd_vtimer_migrate` (2 CPUs): the guest takes one timer interrupt on CPU0; arms its timer
/// 50 ms ahead and asks to move: `vcpu_put` on CPU0 (timer off, PPI 27 inactive there), EL1
/// context carried over, `vcpu_load` on CPU1, where the timer fires on CPU1's redistributor
/// (PPI 27 taken on CPU1) and the guest's EOI deactivates CPU1's PPI 27. Then, with
/// interrupts masked, it lets the timer fire on CPU1 (forwarded, pending in a list register,
/// PPI 27 active on CPU1) and moves back: put clears CPU1's active state, load on CPU0 sets
/// CPU0's before the guest runs, and the guest's EOI deactivates CPU0's. Last, it moves to
/// CPU1 again with nothing pending: CPU1's list registers still hold the timer entry of its
/// previous stay (fold parks them behind ICH_HCR_EL2.En = 0), and the guest must not take it
/// (`VgicCpu::restore_cpuif` makes the next populate zero them). The guest checks the
/// physical PPI of the CPU it runs on after every EOI (`fwd_step::PHYS_GICR`).
pub fn fwd_vtimer_migrate(ctx: &mut Ctx) {
    if let Err(e) = smp::start(1, Duration::from_secs(1)) {
        check!(false, "cpu1 did not start: {e:?}");
        return;
    }
    let Some(f) = setup(ctx.cpu, program::FWD_VTIMER_MIGRATE, Some(FwdMode::Hw)) else {
        return;
    };
    *MIGRATING.lock() = Some(f);
    let mut moves = 0;
    let mut outcome = SEG_FAIL;
    for hop in 0..8 {
        let seg = if hop % 2 == 0 {
            migrate_segment(ctx.cpu)
        } else {
            match smp::run_on(1, migrate_segment, SEGMENT_TIMEOUT) {
                Ok(seg) => seg,
                Err(e) => {
                    // CPU1 may still hold the vCPU: do not touch it any more.
                    check!(false, "cpu1 segment: {e:?}");
                    return;
                }
            }
        };
        outcome = seg;
        if seg != SEG_MOVE {
            break;
        }
        moves += 1;
    }
    check!(outcome == SEG_DONE, "the guest never finished");
    let status = MIGRATE_DONE.load(Ordering::Acquire);
    check!(status == 0, "the guest reported {status} failed checks");
    let slot = MIGRATING.lock();
    if let Some(f) = slot.as_ref() {
        let irqs = f.stats.vtimer_irqs;
        println!(
            "@@M fwd_vtimer_migrate moves={moves} vtimer_irqs_cpu0={} vtimer_irqs_cpu1={} \
             loads={} puts={}",
            irqs[0],
            irqs[1],
            f.vtimer.map_or(0, |v| v.stats().loads),
            f.vtimer.map_or(0, |v| v.stats().puts),
        );
        check!(
            moves == 3,
            "{moves} moves, expected 3 (CPU0 -> CPU1 -> CPU0 -> CPU1)"
        );
        check!(
            irqs[0] == 1 && irqs[1] == 2,
            "PPI 27 taken {} times on cpu0 and {} on cpu1, expected 1 and 2",
            irqs[0],
            irqs[1]
        );
    }
    for cpu in [0, 1] {
        check!(
            !gic_hw::get().is_active(cpu, VTIMER_PPI) && !gic_hw::get().is_pending(cpu, VTIMER_PPI),
            "cpu{cpu}: PPI 27 active or pending at the end"
        );
    }
    check!(
        !fwd::ich().hcr().en(),
        "cpu0: virtual interface left enabled after put"
    );
    // The guest finished on cpu1, which cleaned up there; this is cpu0's share.
    fwd::pe_teardown();
}
