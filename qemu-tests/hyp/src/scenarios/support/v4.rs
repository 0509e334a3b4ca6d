// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared steps of the GICv4 scenarios (`vlpi`, `bench`, `demo`, `stress`): the GICv4 layer
//! brought up around a body, VMs created and destroyed, vPEs scheduled and descheduled, vLPIs
//! and devices unmapped with failures recorded, the vLPI guest started, ordered and stopped,
//! "no exit" and "received exactly" checks, and CPU1 playing the outside world ([`Events`]).

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use common::{check, timer};
use its_cmdq::SyncTarget;
use its_core::cmd::Command;
use its_core::ids::{EventId, VLpi};
use vpe_sched::{Descheduled, VlpiConfig, VmConfig};

use super::up_default;
use crate::gic::{Gic, HwDevice};
use crate::pci::Edu;
use crate::smp;
use crate::v4::guest::{GuestLink, Order, Report};
use crate::v4::{self, HwVm, V4};

/// vINTID bits of every VM here: vLPIs 8192 to 16383.
const VM_BITS: u8 = 14;
/// Priority of every vLPI (the guest's VPMR is 0xff).
pub const PRIO: u8 = 0xa0;
/// How long the guest goes on watching after the vLPIs it waited for, to catch extras.
pub const QUIET: Duration = Duration::from_millis(2);
/// How long the guest watches when nothing may arrive.
pub const SILENCE: Duration = Duration::from_millis(10);
/// How long CPU1 may take for its share.
pub const CPU1_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a blocked vCPU waits for its doorbell.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Shared steps.

/// Brings the GIC up (and CPU1 with `smp`), then the GICv4 layer, and runs `body`.
pub fn run_v4(smp: bool, body: impl FnOnce(&V4<'_>)) {
    let Some(gic) = up_default() else { return };
    if smp && let Err(e) = smp::start(1, Duration::from_secs(1)) {
        check!(false, "cpu1 did not start: {e:?}");
        return;
    }
    if let Err(e) = v4::with_v4(&gic, body) {
        check!(false, "{e}");
    }
}

/// The vLPI numbered `v`.
fn vlpi(v: u32) -> VLpi {
    VLpi::new(v).expect("vINTIDs here are LPI INTIDs")
}

/// An enabled vLPI `v` at [`PRIO`], with the vPE's doorbell or not.
pub fn cfg(v: u32, doorbell: bool) -> VlpiConfig {
    VlpiConfig {
        vintid: vlpi(v),
        priority: PRIO,
        enabled: true,
        doorbell,
    }
}

/// A VM with one vPE per entry of `vpes` (the CPU its VTE first targets).
pub fn create_vm(v: &V4<'_>, vpes: &[usize]) -> Option<HwVm> {
    match v.g4.create_vm(VmConfig {
        vintid_bits: VM_BITS,
        vpes,
    }) {
        Ok(vm) => Some(vm),
        Err(e) => {
            check!(false, "create_vm({} vPEs): {e}", vpes.len());
            None
        }
    }
}

/// Destroys a VM (VMAPP V = 0, doorbells, IDs and tables freed).
pub fn destroy_vm(v: &V4<'_>, mut vm: HwVm) {
    if let Err(e) = v.g4.destroy_vm(&mut vm) {
        check!(false, "destroy_vm: {}", e);
    }
}

/// DISCARD of its mapped events, MAPD V = 0, ITT freed.
pub fn unmap_device(gic: &Gic, mut dev: HwDevice) {
    if let Err(e) = gic.its().unmap_device(&mut dev) {
        check!(false, "unmap_device: {:?}", e);
        core::mem::forget(dev);
    }
}

/// Unmaps every forwarded event of `dev` below `events` (DISCARD, no host mapping restored).
pub fn unmap_vlpis(v: &V4<'_>, dev: &mut HwDevice, vm: &HwVm, events: u32) {
    for e in 0..events {
        if dev.event(e).is_ok_and(|s| s.virt.is_some()) {
            let r = v.g4.unmap_vlpi(v.gic.its(), dev, e, vm, false);
            check!(r.is_ok(), "unmap_vlpi(event {e}): {r:?}");
        }
    }
}

/// Makes vPE `i` resident on `cpu` (VMOVP first if it moved; on GICv4.0 the driver also
/// clears a doorbell left pending while it was away) and waits for the VPT parse.
pub fn schedule(v: &V4<'_>, vm: &HwVm, i: usize, cpu: usize) -> bool {
    let r = v.gic.with_redist(cpu, |rd| {
        v.g4.make_resident(vm, i, cpu, rd)?;
        v.g4.commit(rd)
    });
    check!(
        matches!(r, Some(Ok(()))),
        "vPE {i} resident on cpu{cpu}: {r:?}"
    )
}

/// Makes vPE `i` non-resident from wherever it is, with its doorbell armed or not.
pub fn deschedule(v: &V4<'_>, vm: &HwVm, i: usize, doorbell: bool) -> Option<Descheduled> {
    let cpu = match vm.vpe(i).map(|p| p.residency()) {
        Ok(vpe_sched::Residency::Resident { cpu }) => cpu,
        other => {
            check!(false, "vPE {i} is not resident: {other:?}");
            return None;
        }
    };
    let r = v
        .gic
        .with_redist(cpu, |rd| v.g4.make_non_resident(vm, i, rd, doorbell));
    match r {
        Some(Ok(d)) => Some(d),
        other => {
            check!(false, "vPE {i} non-resident from cpu{cpu}: {other:?}");
            None
        }
    }
}

/// The guest, loaded on this CPU and waiting at its HELLO.
pub fn start_guest() -> Option<GuestLink> {
    let mut g = GuestLink::new();
    g.load();
    match g.start() {
        Ok(()) => Some(g),
        Err(e) => {
            check!(false, "the guest did not reach its HELLO: {e:x?}");
            None
        }
    }
}

/// Gives the guest an order with the default exit handling; checks it reports no anomaly.
pub fn order(g: &mut GuestLink, o: Order) -> Option<Report> {
    match g.order(o, |_, _| None) {
        Ok(r) => {
            check!(
                r.anomalies == 0,
                "the guest reports {} anomalies after {o:?}",
                r.anomalies
            );
            Some(r)
        }
        Err(e) => {
            check!(false, "the guest stopped during {o:?}: {e:x?}");
            None
        }
    }
}

/// Waits for `n` more vLPIs, then watches [`QUIET`] for extras.
pub fn wait_more(g: &mut GuestLink, total: &mut u64, n: u64) -> Option<Report> {
    *total += n;
    let r = order(
        g,
        Order::Wait {
            total: *total,
            quiet: QUIET,
        },
    )?;
    check!(
        r.total == *total,
        "the guest took {} vLPIs in all, expected {}",
        r.total,
        *total
    );
    Some(r)
}

/// Tells the guest to finish, checks it passed, and puts the vCPU.
pub fn finish_guest(mut g: GuestLink) {
    match g.stop() {
        Ok(0) => {}
        Ok(n) => {
            check!(false, "the guest reported {n} failed checks");
        }
        Err(e) => {
            check!(false, "the guest did not finish: {e:x?}");
        }
    }
    g.put();
}

/// Checks that an order ran with no EL2 exit at all.
pub fn check_no_exits(what: &str, r: &Report) -> bool {
    let e = r.exits;
    check!(
        e.exits() == 0,
        "{what}: {} EL2 exits (hvc {}, wfi {}, irq {}, dabt {}, other {})",
        e.exits(),
        e.hvc,
        e.wfi,
        e.irq,
        e.dabt,
        e.other
    )
}

/// Checks that the guest took each vINTID in `vintids` exactly `n` times.
pub fn check_received(g: &GuestLink, vintids: impl Iterator<Item = u32>, n: u32) -> bool {
    let mut ok = true;
    for x in vintids {
        let got = g.received(x);
        ok &= check!(
            got == n,
            "vINTID {x} taken {got} times by the guest, expected {n}"
        );
        if !ok {
            break;
        }
    }
    ok
}

/// `n / d` with two decimals, for `@@M` lines.
pub struct Ratio(pub u64, pub u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self(n, d) = *self;
        if d == 0 {
            return f.write_str("nan");
        }
        let hundredths = (n * 100 + d / 2) / d;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// INT on events `events(0..n)` of `dev` as one batch, then `syncs` (a VSYNC per vPE they
/// target): one GITS_CWRITER write, where the driver's `int_event` posts INT + VSYNC per call.
pub fn int_batch(
    v: &V4<'_>,
    dev: &HwDevice,
    events: impl Fn(usize) -> u32,
    n: usize,
    syncs: &[SyncTarget],
) -> bool {
    let id = dev.id();
    let r = v.gic.its().execute(
        n,
        |i| Command::Int {
            device: id,
            event: EventId::new(events(i)),
        },
        syncs,
    );
    match r {
        Ok(out) => check!(out.error().is_none(), "INT batch: {:?}", out.error()),
        Err(e) => check!(false, "INT batch: {e}"),
    }
}

/// What CPU1 is asked to send ([`Events`]).
const FIRE_NONE: u32 = 0;
/// INT on event 0 of the device.
pub const FIRE_INT: u32 = 1;
/// `edu` raises its interrupt (one MSI).
pub const FIRE_EDU: u32 = 2;
const FIRE_STOP: u32 = 3;

/// The outside world of the wake-up scenarios, played by CPU1: it sends an event when asked,
/// 300 µs later (so the hyp on CPU0 is asleep by then), while CPU0 blocks in WFI.
pub struct Events {
    fire: AtomicU32,
    sent: AtomicU32,
}

impl Events {
    pub const fn new() -> Self {
        Self {
            fire: AtomicU32::new(FIRE_NONE),
            sent: AtomicU32::new(0),
        }
    }

    /// Asks for one event ([`FIRE_INT`] or [`FIRE_EDU`]).
    pub fn send(&self, what: u32) {
        self.fire.store(what, Ordering::Release);
    }

    /// Tells the agent to return.
    pub fn stop(&self) {
        self.fire.store(FIRE_STOP, Ordering::Release);
    }

    /// Events sent so far.
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Acquire)
    }

    /// The agent for [`crate::v4::cpus::alongside`]: INT on event 0 of `dev`, or `edu` raising its
    /// interrupt, on request, until told to stop (or [`CPU1_TIMEOUT`] / 2 passed).
    pub fn agent<'a>(
        &'a self,
        its: &'a crate::gic::HwIts,
        dev: &'a HwDevice,
        edu: Option<Edu>,
    ) -> impl FnMut() + Send + Copy + 'a {
        move || {
            let deadline = timer::Deadline::after(CPU1_TIMEOUT / 2);
            while !deadline.expired() {
                let what = self.fire.swap(FIRE_NONE, Ordering::AcqRel);
                match (what, edu) {
                    (FIRE_STOP, _) => return,
                    (FIRE_INT, _) => {
                        timer::delay(Duration::from_micros(300));
                        let r = its.int_event(dev, 0);
                        check!(r.is_ok(), "INT from cpu1: {r:?}");
                    }
                    (FIRE_EDU, Some(edu)) => {
                        timer::delay(Duration::from_micros(300));
                        edu.raise(1);
                    }
                    _ => {
                        core::hint::spin_loop();
                        continue;
                    }
                }
                self.sent.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}
