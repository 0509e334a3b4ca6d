// SPDX-License-Identifier: MIT OR Apache-2.0
//! Guest programs of the fwd-irq scenarios (`hyp/src/scenarios/fwd.rs`).
//!
//! The guest programs its virtual timer (CNTV_*_EL0) and the PL031 RTC directly, takes their
//! interrupts through its virtual CPU interface (ICV_* via the ICC_* names, `crate::irq`), and
//! talks to the hyp only through `HVC_FWD_STEP`. With no stage 2 it can also read the
//! physical GIC's pending/active registers, which is how it checks, right after its own EOI
//! and without an exit, that the HW bit deactivated the physical interrupt.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use common::hvc_abi::{HVC_FWD_STEP, fwd_step};
use common::{check, read_sysreg, report, sysreg, timer, write_sysreg};

use crate::{devices, hvc, irq};

/// The virtual timer's INTID (PPI 27).
const VTIMER: u32 = 27;
/// The PL031's INTID (SPI 2).
const RTC_INTID: u32 = 34;
/// How long the guest waits for an interrupt it caused.
const IRQ_TIMEOUT: Duration = Duration::from_millis(500);
/// How long it gives the HW deactivation (or, without HW, the EOI maintenance exit).
const DEACTIVATE_TIMEOUT: Duration = Duration::from_millis(10);
/// How long it watches for interrupts that must not come.
const QUIET: Duration = Duration::from_millis(5);

/// One `HVC_FWD_STEP` hypercall.
fn step(step: u64, a: u64, b: u64) -> u64 {
    hvc::hvc(HVC_FWD_STEP, [step, a, b])
}

/// Whether physical PPI `intid` is active in the redistributor whose SGI_base frame is `sgi`.
fn ppi_active(sgi: usize, intid: u32) -> bool {
    devices::ppi_active(sgi, intid)
}

/// Whether physical SPI `intid` is active in the distributor.
fn spi_active(intid: u32) -> bool {
    devices::spi_state(intid, true)
}

/// Whether physical SPI `intid` is pending in the distributor (a level line high, or latched).
fn spi_pending(intid: u32) -> bool {
    devices::spi_state(intid, false)
}

/// ICV_HPPIR1_EL1: the highest-priority pending virtual interrupt (1023 if none), whatever
/// PSTATE.I says.
fn hppir() -> u32 {
    (read_sysreg!(icc_hppir1_el1) & 0xff_ffff) as u32
}

/// The physical redistributor frame of the CPU this vCPU runs on (asked from the hyp).
fn phys_gicr() -> usize {
    step(fwd_step::PHYS_GICR, 0, 0) as usize
}

fn wfi() {
    // SAFETY: WFI only waits; HCR_EL2.TWI traps it to the hyp, which resumes us after it.
    unsafe { core::arch::asm!("wfi", options(nostack)) };
}

/// Arms the virtual timer `delay` from now (CNTV_CVAL_EL0, then CNTV_CTL_EL0.ENABLE).
fn arm_vtimer(delay: Duration) {
    sysreg::isb();
    let cval = read_sysreg!(cntvct_el0) + timer::duration_to_ticks(delay);
    // SAFETY: the EL1 virtual timer is this guest's own; programming it only schedules its
    // interrupt.
    unsafe {
        write_sysreg!(cntv_cval_el0, cval);
        write_sysreg!(cntv_ctl_el0, 1);
    }
    sysreg::isb();
}

/// Disables the virtual timer: its output (and so the physical PPI 27 line) goes low.
fn quiet_vtimer() {
    // SAFETY: as for `arm_vtimer`.
    unsafe { write_sysreg!(cntv_ctl_el0, 0) };
    sysreg::isb();
}

/// IRQ hook: a timer interrupt is quieted before the handler's EOI, as a real guest does.
fn timer_hook(intid: u32) {
    if intid == VTIMER {
        quiet_vtimer();
    }
}

/// Waits for the interrupt count to pass `before` (with WFI in between if `idle`), then checks
/// it was exactly one timer interrupt and that the physical PPI 27 of the redistributor at
/// `sgi` is inactive after the EOI.
fn wait_timer_irq(sgi: usize, before: u64, idle: bool) -> bool {
    let got = timer::poll_until(IRQ_TIMEOUT, || {
        if idle && irq::count() == before {
            wfi();
        }
        irq::count() != before
    });
    let ok = check!(got, "no timer interrupt within {IRQ_TIMEOUT:?}")
        && check!(
            irq::count() == before + 1 && irq::last() == VTIMER,
            "{} interrupts, last {}: expected one vINTID 27",
            irq::count() - before,
            irq::last()
        );
    let inactive = timer::poll_until(DEACTIVATE_TIMEOUT, || !ppi_active(sgi, VTIMER));
    check!(
        inactive,
        "physical PPI 27 still active after the guest's EOI (GICR_ISACTIVER0)"
    );
    ok && inactive
}

/// Runs the hyp's measured phases (`BEGIN` .. `END`), `round` once per iteration.
fn phases(mut round: impl FnMut() -> bool) {
    for phase in 0..8 {
        let rounds = step(fwd_step::BEGIN, phase, 0);
        if rounds == 0 {
            break;
        }
        let failures = report::current_failures();
        let mut handled = 0;
        for _ in 0..rounds {
            handled += u64::from(round());
        }
        let failed = report::current_failures() - failures;
        step(fwd_step::END, handled, u64::from(failed));
    }
}

/// FWD_VTIMER: per phase, arms the timer 1 ms ahead and busy-waits for its interrupt.
pub fn vtimer() {
    irq::init();
    irq::set_hook(Some(&(timer_hook as fn(u32))));
    sysreg::unmask_irqs();
    let sgi = phys_gicr();
    phases(|| {
        let before = irq::count();
        arm_vtimer(Duration::from_millis(1));
        wait_timer_irq(sgi, before, false)
    });
    sysreg::mask_irqs();
    quiet_vtimer();
    irq::set_hook(None);
}

/// FWD_VTIMER_WFI: arms the timer 20 ms ahead (far enough that the WFI always comes first,
/// even on a loaded host) and idles in WFI until its interrupt.
pub fn vtimer_wfi() {
    irq::init();
    irq::set_hook(Some(&(timer_hook as fn(u32))));
    sysreg::unmask_irqs();
    let sgi = phys_gicr();
    phases(|| {
        let before = irq::count();
        arm_vtimer(Duration::from_millis(20));
        wait_timer_irq(sgi, before, true)
    });
    sysreg::mask_irqs();
    quiet_vtimer();
    irq::set_hook(None);
}

use devices::{rtc_latch, rtc_line, rtc_quiet};

/// IRQ hook of FWD_LEVEL_LOWERED: the device is quieted before the EOI.
fn rtc_quiet_hook(intid: u32) {
    if intid == RTC_INTID {
        rtc_quiet();
    }
}

/// FWD_LEVEL_LOWERED: see the hyp scenario.
pub fn level_lowered() {
    irq::init();
    irq::set_hook(Some(&(rtc_quiet_hook as fn(u32))));
    if !check!(rtc_latch(), "the PL031 did not latch its interrupt") {
        return;
    }
    // Interrupts are masked (PSTATE.I): the hyp takes SPI 34 and lists vINTID 34, but the
    // guest does not take it.
    rtc_line(true);
    let listed = timer::poll_until(IRQ_TIMEOUT, || hppir() == RTC_INTID);
    check!(
        listed,
        "vINTID 34 not pending in the virtual CPU interface (ICV_HPPIR1_EL1 = {})",
        hppir()
    );
    // The driver quiets the device with interrupts still masked, then something exits.
    rtc_line(false);
    check!(
        step(fwd_step::SYNC, 1, 0) == 1,
        "the hyp's fold did not drop the interrupt (see its failures)"
    );
    check!(
        hppir() == irq::SPURIOUS,
        "vINTID {} still pending after the line dropped",
        hppir()
    );
    let before = irq::count();
    sysreg::unmask_irqs();
    timer::delay(QUIET);
    check!(
        irq::count() == before,
        "spurious interrupt {} after the line dropped",
        irq::last()
    );
    // The next assertion must be seen: SPI 34 is no longer stuck active.
    rtc_line(true);
    let got = timer::poll_until(IRQ_TIMEOUT, || irq::count() != before);
    sysreg::mask_irqs();
    check!(
        got && irq::last() == RTC_INTID,
        "the line's next assertion was not delivered (count {}, last {})",
        irq::count() - before,
        irq::last()
    );
    check!(
        !spi_active(RTC_INTID),
        "physical SPI 34 still active after the guest's EOI (GICD_ISACTIVER1)"
    );
    step(fwd_step::END, irq::count() - before, 0);
    rtc_quiet();
    irq::set_hook(None);
}

/// Deliveries of vINTID 34 seen by FWD_LEVEL_REASSERT's hook.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);
/// After this many deliveries the guest quiets the device.
const REASSERTS: u64 = 3;

/// IRQ hook of FWD_LEVEL_REASSERT: leaves the line high until the last delivery.
fn rtc_reassert_hook(intid: u32) {
    if intid == RTC_INTID && DELIVERIES.fetch_add(1, Ordering::AcqRel) + 1 >= REASSERTS {
        rtc_quiet();
    }
}

/// FWD_LEVEL_REASSERT: see the hyp scenario.
pub fn level_reassert() {
    irq::init();
    DELIVERIES.store(0, Ordering::Release);
    irq::set_hook(Some(&(rtc_reassert_hook as fn(u32))));
    if !check!(rtc_latch(), "the PL031 did not latch its interrupt") {
        return;
    }
    sysreg::unmask_irqs();
    rtc_line(true);
    let got = timer::poll_until(IRQ_TIMEOUT, || {
        DELIVERIES.load(Ordering::Acquire) >= REASSERTS
    });
    timer::delay(QUIET);
    sysreg::mask_irqs();
    let n = DELIVERIES.load(Ordering::Acquire);
    check!(
        got && n == REASSERTS,
        "vINTID 34 delivered {n} times while its line stayed high for {REASSERTS}"
    );
    check!(
        devices::rtc_masked_status() == 0,
        "the PL031 still asserts its interrupt"
    );
    check!(
        !spi_active(RTC_INTID) && !spi_pending(RTC_INTID),
        "physical SPI 34 active or pending after the last EOI"
    );
    step(fwd_step::END, n, 0);
    irq::set_hook(None);
}

/// The order FWD_LR_OVERFLOW took its interrupts in.
static ORDER: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];
static SEEN: AtomicUsize = AtomicUsize::new(0);

fn record_hook(intid: u32) {
    let i = SEEN.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = ORDER.get(i) {
        slot.store(intid, Ordering::Release);
    }
}

/// FWD_LR_OVERFLOW: per phase, the hyp forwards several SPIs while interrupts are masked;
/// the guest unmasks, takes them all, and reports the order (16 bits per INTID, 4 per
/// argument).
pub fn lr_overflow() {
    irq::init();
    irq::set_hook(Some(&(record_hook as fn(u32))));
    for phase in 0..8 {
        SEEN.store(0, Ordering::Release);
        for slot in &ORDER {
            slot.store(0, Ordering::Release);
        }
        let n = step(fwd_step::BEGIN, phase, 0);
        if n == 0 {
            break;
        }
        let before = irq::count();
        sysreg::unmask_irqs();
        let got = timer::poll_until(IRQ_TIMEOUT, || irq::count() - before >= n);
        timer::delay(QUIET);
        sysreg::mask_irqs();
        check!(
            got && irq::count() - before == n,
            "phase {phase}: took {} of {n} interrupts",
            irq::count() - before
        );
        let mut packed = [0u64; 2];
        for (i, slot) in ORDER.iter().enumerate() {
            packed[i / 4] |= u64::from(slot.load(Ordering::Acquire) & 0xffff) << ((i % 4) * 16);
        }
        step(fwd_step::END, packed[0], packed[1]);
    }
    irq::set_hook(None);
}

/// FWD_VTIMER_MIGRATE: one timer interrupt on CPU0; one armed before the move to CPU1 and
/// taken there; one taken by CPU1 while masked, carried back to CPU0 pending; then a move to
/// CPU1 with nothing pending, where nothing may arrive.
pub fn vtimer_migrate() {
    irq::init();
    irq::set_hook(Some(&(timer_hook as fn(u32))));
    sysreg::unmask_irqs();
    let sgi0 = phys_gicr();

    // On the first CPU.
    let before = irq::count();
    arm_vtimer(Duration::from_millis(1));
    wait_timer_irq(sgi0, before, false);

    // Armed here, fires there.
    let before = irq::count();
    arm_vtimer(Duration::from_millis(50));
    let cpu = step(fwd_step::MIGRATE, 0, 0);
    check!(cpu == 1, "moved to cpu{cpu}, expected cpu1");
    let sgi1 = phys_gicr();
    check!(
        sgi1 != sgi0 && sgi1 != 0,
        "still on the redistributor at {sgi0:#x} after the move"
    );
    check!(
        irq::count() == before,
        "the timer fired before it was due (count {})",
        irq::count() - before
    );
    wait_timer_irq(sgi1, before, false);

    // Fires here while masked, taken there.
    sysreg::mask_irqs();
    let before = irq::count();
    arm_vtimer(Duration::from_millis(1));
    let listed = timer::poll_until(IRQ_TIMEOUT, || hppir() == VTIMER);
    check!(
        listed,
        "vINTID 27 never became pending (ICV_HPPIR1_EL1 = {})",
        hppir()
    );
    check!(
        ppi_active(sgi1, VTIMER),
        "PPI 27 not active on cpu1 while forwarded"
    );
    let cpu = step(fwd_step::MIGRATE, 0, 0);
    check!(cpu == 0, "moved to cpu{cpu}, expected cpu0");
    let sgi = phys_gicr();
    check!(
        sgi == sgi0,
        "on the redistributor at {sgi:#x}, expected {sgi0:#x}"
    );
    check!(
        hppir() == VTIMER,
        "vINTID 27 not pending after the move (ICV_HPPIR1_EL1 = {})",
        hppir()
    );
    check!(
        ppi_active(sgi0, VTIMER) && !ppi_active(sgi1, VTIMER),
        "PPI 27 active state did not move with the vCPU"
    );
    sysreg::unmask_irqs();
    wait_timer_irq(sgi0, before, false);

    // Nothing pending: the next move must not bring anything along. CPU1's list registers
    // still hold the timer entry of the previous stay there (parked, ICH_HCR_EL2.En = 0), and
    // this exit lets the hyp's next populate on CPU0 find nothing to list, so the vCPU's own
    // bookkeeping believes no list register is in use any more.
    check!(phys_gicr() == sgi0, "not on cpu0 any more");
    let before = irq::count();
    let cpu = step(fwd_step::MIGRATE, 0, 0);
    check!(cpu == 1, "moved to cpu{cpu}, expected cpu1");
    timer::delay(QUIET);
    check!(
        irq::count() == before && hppir() == irq::SPURIOUS,
        "phantom interrupt {} after moving with nothing pending (ICV_HPPIR1_EL1 = {})",
        irq::last(),
        hppir()
    );
    sysreg::mask_irqs();
    quiet_vtimer();
    irq::set_hook(None);
}
