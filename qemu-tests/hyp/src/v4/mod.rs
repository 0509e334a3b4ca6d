// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 direct injection on the driver crates: the doorbells and the GICv4 layer brought up
//! on top of a [`Gic`], doorbell interrupts dispatched at EL2, and a vCPU blocked until its
//! doorbell rings.
//!
//! Glue only, like [`crate::gic`]: every GICv4 decision is `vpe-sched`'s or `doorbell`'s.
//!
//! ```text
//! with_v4(&gic, |v| ..)
//!   Doorbells::new(its, lpis, proxy(0xffff, DOORBELLS))   LPI block + proxy device (no DirectLPI)
//!   GicV4::new(&[its], lpis, &doorbells, RedistCaps, ..)  GICv4.0, single VMOVP on QEMU
//!   init_redistributor(rd) per CPU                        VPROPBASER.IDbits, stale Valid cleared
//!   exits::set_irq_hook(irq_hook)                          gic::count_irq, then Doorbells::handle
//!   f(&V4 { gic, dbs, g4 })
//!   hook back to gic::count_irq, wait until no CPU is inside Doorbells::handle
//! ```
//!
//! [`guest`] runs the vLPI guest program on any CPU, [`cpus`] runs hyp code on CPU1 (in step
//! with CPU0, or alongside it).
//!
//! # Why the doorbell dispatch finds `Doorbells` through a static
//! The IRQ hook is a plain `fn(u32)` called from the EL2 vector on whichever CPU the doorbell
//! targets. [`with_v4`] publishes the `Doorbells` it built in [`DISPATCH`] for exactly as long as
//! they live, and withdraws them (waiting for any CPU still inside the hook) before they go.

pub mod cpus;
pub mod guest;

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use core::time::Duration;

use common::gic_platform::HwPlatform;
use common::platform::cpu_index;
use common::sysreg::{mask_irqs, unmask_irqs};
use common::timer::{self, Deadline};
use common::write_sysreg;
use doorbell::{DoorbellConfig, DoorbellError, Doorbells, Waiter};
use its_core::caps::RedistCaps;
use its_core::ids::{DeviceId, Lpi, VpeId};
use vpe_sched::{GicV4, V4Config, Vm, VpeError};

use crate::exits;
use crate::gic::{self, Gic};
use crate::gic_hw::{self, ItsFrame};

/// The GICv4 layer as the scenarios hold it.
pub type HwGicV4<'g> = GicV4<'g, ItsFrame, HwPlatform>;
/// The doorbells as the scenarios hold them.
pub type HwDoorbells<'g> = Doorbells<'g, ItsFrame, HwPlatform>;
/// A VM.
pub type HwVm = Vm<HwPlatform>;

/// The proxy device that invalidates doorbells (QEMU has no DirectLPI): the last DeviceID, as
/// Linux does.
pub const PROXY_DEVICE: u32 = 0xffff;
/// Doorbells reserved (one per vPE; `vpe_many` needs 64).
pub const DOORBELLS: u32 = 128;
/// vPE IDs the per-vPE counters ([`rang`], [`late`]) cover.
pub const MAX_VPE_IDS: usize = DOORBELLS as usize;
/// The EL2 physical timer's PPI (CNTHP), the watchdog of [`block_on`].
pub const WATCHDOG_PPI: u32 = 26;

/// The GICv4 layer, up for the duration of [`with_v4`]'s closure.
pub struct V4<'g> {
    /// The GIC under it.
    pub gic: &'g Gic,
    /// The doorbells.
    pub dbs: &'g HwDoorbells<'g>,
    /// VMs, vPEs, vLPIs, residency.
    pub g4: &'g HwGicV4<'g>,
}

/// Why the GICv4 layer did not come up.
#[derive(Debug)]
pub enum V4Error {
    /// `Doorbells::new`.
    Doorbells(DoorbellError),
    /// `GicV4::new` or `init_redistributor`.
    Gic(VpeError),
}

impl core::fmt::Display for V4Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Doorbells(e) => write!(f, "doorbells: {e}"),
            Self::Gic(e) => write!(f, "GICv4 layer: {e}"),
        }
    }
}

/// Brings the doorbells and the GICv4 layer up on `gic`, runs `f` with them, then withdraws
/// the doorbell dispatch and shuts the doorbells down (`Doorbells::shutdown`: the proxy device
/// unmapped, the doorbell LPIs freed). A scenario that left a VM alive gets an error here.
/// (`shutdown` takes `&self`: doorbells kept in a static shut down the same way.)
pub fn with_v4<T>(gic: &Gic, f: impl FnOnce(&V4<'_>) -> T) -> Result<T, V4Error> {
    let cfg = DoorbellConfig::proxy(DeviceId::new(PROXY_DEVICE), DOORBELLS);
    let dbs = Doorbells::new(gic.its(), gic.lpis(), cfg).map_err(V4Error::Doorbells)?;
    let redist = gic.redists[0].map_or(RedistCaps::from_typer(Default::default()), |r| {
        RedistCaps::from_typer(r.typer)
    });
    let g4 = GicV4::new(
        core::slice::from_ref(gic.its()),
        gic.lpis(),
        &dbs,
        redist,
        V4Config::default(),
    )
    .map_err(V4Error::Gic)?;
    for cpu in 0..gic.cpus {
        match gic.with_redist(cpu, |rd| g4.init_redistributor(rd)) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(V4Error::Gic(e)),
            None => return Err(V4Error::Gic(VpeError::NoSuchCpu(cpu))),
        }
    }
    reset_rang();
    let dispatch = Dispatch::publish(&dbs);
    let out = f(&V4 {
        gic,
        dbs: &dbs,
        g4: &g4,
    });
    drop(dispatch);
    drop(g4);
    dbs.shutdown().map_err(V4Error::Doorbells)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Doorbell interrupts at EL2.

/// The published `Doorbells` (type-erased), or null.
static DISPATCH: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());
/// CPUs inside [`irq_hook`]'s use of [`DISPATCH`].
static IN_HOOK: AtomicU32 = AtomicU32::new(0);
/// Doorbells handled, per vPE ID.
static RANG: [AtomicU32; MAX_VPE_IDS] = [const { AtomicU32::new(0) }; MAX_VPE_IDS];
/// Of those, the ones handled while already disabled, per vPE ID (see [`late`]).
static LATE: [AtomicU32; MAX_VPE_IDS] = [const { AtomicU32::new(0) }; MAX_VPE_IDS];

/// Doorbells handled at EL2 for vPE `id` since the layer came up.
pub fn rang(id: VpeId) -> u32 {
    RANG.get(usize::from(id.get()))
        .map_or(0, |c| c.load(Ordering::Acquire))
}

/// Doorbells handled for every vPE.
pub fn rang_total() -> u64 {
    RANG.iter()
        .map(|c| u64::from(c.load(Ordering::Acquire)))
        .sum()
}

/// Doorbells of vPE `id` handled while `doorbell` had them disabled already (counted in
/// [`rang`] too): `Doorbells::handle` disables a doorbell in the property table and leaves the
/// invalidation for later, so a second vLPI that made it pending in between can still be
/// delivered once (the crate counts these in `DoorbellStats::late`).
pub fn late(id: VpeId) -> u32 {
    LATE.get(usize::from(id.get()))
        .map_or(0, |c| c.load(Ordering::Acquire))
}

fn reset_rang() {
    for c in RANG.iter().chain(&LATE) {
        c.store(0, Ordering::Release);
    }
}

/// The published doorbells; withdrawn on drop.
struct Dispatch;

impl Dispatch {
    fn publish(dbs: &HwDoorbells<'_>) -> Self {
        DISPATCH.store(ptr::from_ref(dbs).cast_mut().cast(), Ordering::SeqCst);
        exits::set_irq_hook(Some(&(irq_hook as fn(u32))));
        Self
    }
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        exits::set_irq_hook(Some(&(gic::count_irq as fn(u32))));
        DISPATCH.store(ptr::null_mut(), Ordering::SeqCst);
        // A CPU that loaded the pointer before it was withdrawn has incremented IN_HOOK first
        // (SeqCst on both sides): wait for it to leave. The hook is a few hundred instructions.
        let left = timer::poll_until(Duration::from_millis(100), || {
            IN_HOOK.load(Ordering::SeqCst) == 0
        });
        assert!(left, "a CPU stayed inside the doorbell dispatch");
    }
}

/// The EL2 IRQ hook while the GICv4 layer is up: the watchdog is disarmed; everything else is
/// counted ([`gic::count_irq`]) and, if it is a doorbell, handed to `Doorbells::handle` (which
/// disables it and wakes the vPE's waiters), then counted per vPE.
fn irq_hook(intid: u32) {
    if intid == WATCHDOG_PPI {
        watchdog_off();
        return;
    }
    gic::count_irq(intid);
    IN_HOOK.fetch_add(1, Ordering::SeqCst);
    let p = DISPATCH.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: `with_v4` publishes a pointer to `Doorbells` that outlive the publication,
        // and withdraws it (then waits for IN_HOOK, incremented above before the load, to drop
        // to 0) before they can go. The lifetime is erased only for this call; `handle` is
        // the interrupt path the crate provides for any CPU, lock-free.
        let dbs = unsafe { &*p.cast_const().cast::<HwDoorbells<'static>>() };
        let late = Lpi::new(intid).is_ok_and(|l| !dbs.is_enabled(l));
        if let Some(vpe) = dbs.handle(intid) {
            let i = usize::from(vpe.get());
            if let Some(c) = RANG.get(i) {
                c.fetch_add(1, Ordering::AcqRel);
            }
            if late && let Some(c) = LATE.get(i) {
                c.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    IN_HOOK.fetch_sub(1, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Blocking a vCPU.

fn watchdog_off() {
    // SAFETY: CNTHP_CTL_EL2 = 0 disables the EL2 physical timer, which only this module uses
    // (as `block_on`'s watchdog); disabling it only deasserts its PPI.
    unsafe { write_sysreg!(cnthp_ctl_el2, 0u64) };
    common::sysreg::isb();
}

/// Blocks this CPU until `waiter` is woken by its vPE's doorbell (or `timeout` passes):
/// WFI with IRQs masked, then IRQs unmasked for an instant so the doorbell is taken and
/// dispatched ([`Doorbells::handle`] counts the ring that wakes the waiter), and again. The
/// EL2 physical timer (PPI 26) is armed for `timeout` as a watchdog, so no WFI sleeps
/// unbounded. Call with IRQs masked, with `waiter` armed (`Doorbells::arm`) before the
/// doorbell was enabled. Returns whether the waiter was woken.
pub fn block_on(dbs: &HwDoorbells<'_>, waiter: &Waiter, timeout: Duration) -> bool {
    let cpu = cpu_index();
    if gic_hw::get().enable_private_irq(cpu, WATCHDOG_PPI).is_err() {
        return false;
    }
    let deadline = Deadline::after(timeout);
    let cval = timer::ticks().saturating_add(timer::duration_to_ticks(timeout));
    // SAFETY: the EL2 physical timer is only this watchdog's (see `watchdog_off`); arming it
    // only makes PPI 26 pending at `cval`, which `irq_hook` handles by disarming it.
    unsafe {
        write_sysreg!(cnthp_cval_el2, cval);
        write_sysreg!(cnthp_ctl_el2, 1u64);
    }
    common::sysreg::isb();
    let woken = loop {
        if dbs.is_woken(waiter) {
            break true;
        }
        if deadline.expired() {
            break dbs.is_woken(waiter);
        }
        // SAFETY: `wfi` only waits for an interrupt; with PSTATE.I set, a pending one (the
        // doorbell, or the watchdog) ends it without being taken, and it is taken just below.
        unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
        unmask_irqs();
        mask_irqs();
    };
    watchdog_off();
    woken
}
