// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 direct injection on QEMU, on `vpe-sched` and `doorbell`: vLPIs taken by the EL1 guest
//! with no EL2 exit, pending while the vPE is away and delivered at residency, doorbells that
//! wake a vCPU blocked in WFI, VMOVP, unmap, property changes, a PCI device passed through,
//! two VMs on one CPU, and many vLPIs and vPEs.
//!
//! Each scenario brings the GIC up ([`crate::gic`]), then the GICv4 layer ([`v4::with_v4`]:
//! doorbells through a proxy device, since QEMU has no DirectLPI), runs the vLPI guest program
//! ([`GuestLink`]), which counts at EL1 every interrupt it takes per vINTID, and counts EL2
//! exits by cause ([`crate::exits`]) around each delivery. Then it tears everything down (vPEs
//! non-resident, vLPIs unmapped, devices unmapped, VMs destroyed) and checks that the DMA
//! memory came back to where it was once the layer was up.
//!
//! The guest image is single-instance (one stack, one `.bss`), so where several vPEs or VMs
//! take turns, one guest vCPU runs whichever vPE is resident: what differs between them is
//! exactly what the GIC sees (the VPT, the VM's property table, the ITS mappings). The hyp
//! knows which vPE was resident when, and reads the guest's counters after each turn.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use common::sync::SpinLock;
use common::{check, println, require, timer};
use doorbell::Waiter;
use its_cmdq::{ItsError, LpiRange, QueueStats, SyncTarget};
use vpe_sched::{VlpiConfig, VlpiProp};

use super::Ctx;
use super::support::v4::{
    CPU1_TIMEOUT, Events, FIRE_EDU, FIRE_INT, PRIO, QUIET, Ratio, SILENCE, WAKE_TIMEOUT, cfg,
    check_no_exits, check_received, create_vm, deschedule, destroy_vm, finish_guest, int_batch,
    order, run_v4, schedule, start_guest, unmap_device, unmap_vlpis, wait_more,
};
use super::support::{
    LPI_TIMEOUT, MemMark, check_taken, check_total, cpu1_take_one, map_device, need, queue_delta,
};
use crate::gic::{self, HwDevice};
use crate::pci::Edu;
use crate::smp;
use crate::v4::cpus;
use crate::v4::guest::{GuestLink, Order};
use crate::v4::{self, HwVm, V4};
use crate::vcpu::{Exit, Flow};

// ---------------------------------------------------------------------------------------------
// vlpi_direct

/// vLPIs (and events) in `vlpi_direct`.
const DIRECT_N: u32 = 8;

/// `vlpi_direct` (2 CPUs): one vPE resident on CPU0 with the guest spinning in it; CPU1
/// issues INT for 8 events mapped to 8 vLPIs. Each vLPI is taken at EL1 by the guest
/// (ICV_IAR1_EL1 returns its vINTID) while the hyp counts EL2 exits by cause: there are none.
/// No doorbell rings (the vPE is resident), no LPI reaches EL2. Also measures what mapping a
/// vLPI costs in ITS commands and GITS_CWRITER writes, alone and in a batch.
pub fn vlpi_direct(_ctx: &mut Ctx) {
    run_v4(true, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x40, DIRECT_N) else {
            return;
        };
        let s0 = its.queue().stats();
        let r = v.g4.map_vlpi(its, &mut dev, 0, &vm, 0, cfg(8192, true));
        require!(r.is_ok(), "map_vlpi: {r:?}");
        let s1 = its.queue().stats();
        let items: [(u32, usize, VlpiConfig); DIRECT_N as usize - 1] =
            core::array::from_fn(|k| (k as u32 + 1, 0, cfg(8193 + k as u32, true)));
        let r = v.g4.map_vlpis(its, &mut dev, &vm, &items);
        require!(r.is_ok(), "map_vlpis: {r:?}");
        let s2 = its.queue().stats();
        let QueueStats {
            commands: one_cmds,
            cwriter_writes: one_writes,
            ..
        } = queue_delta(s0, s1);
        let QueueStats {
            commands: batch_cmds,
            cwriter_writes: batch_writes,
            ..
        } = queue_delta(s1, s2);
        println!(
            "vlpi_direct: map_vlpi alone: {one_cmds} commands, {one_writes} CWRITER writes; \
             {} more in one map_vlpis: {batch_cmds} commands, {batch_writes} CWRITER writes",
            items.len()
        );

        let Some(mut g) = start_guest() else { return };
        require!(schedule(v, &vm, 0, 0));
        let go = AtomicBool::new(false);
        let sent = AtomicU32::new(0);
        let devr = &dev;
        let agent = || {
            if !timer::poll_until(Duration::from_secs(2), || go.load(Ordering::Acquire)) {
                return;
            }
            // Let CPU0 enter the guest, then INT one event at a time.
            timer::delay(Duration::from_micros(500));
            for e in 0..DIRECT_N {
                if its.int_event(devr, e).is_ok() {
                    sent.fetch_add(1, Ordering::AcqRel);
                }
                timer::delay(Duration::from_micros(100));
            }
        };
        let r = cpus::alongside(1, agent, CPU1_TIMEOUT, || {
            go.store(true, Ordering::Release);
            order(
                &mut g,
                Order::Wait {
                    total: DIRECT_N.into(),
                    quiet: QUIET,
                },
            )
        });
        let report = match r {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                check!(false, "cpu1 agent: {e:?}");
                return;
            }
        };
        check!(
            sent.load(Ordering::Acquire) == DIRECT_N,
            "CPU1 issued {} INTs",
            sent.load(Ordering::Acquire)
        );
        check!(
            report.total == u64::from(DIRECT_N),
            "the guest took {} vLPIs",
            report.total
        );
        check_no_exits("INT -> vLPI while resident", &report);
        check_received(&g, 8192..8192 + DIRECT_N, 1);
        check_total(0);
        check!(v4::rang_total() == 0, "a doorbell rang for a resident vPE");
        println!(
            "@@M vlpi_direct el2_exits_per_vlpi={} vlpis={DIRECT_N} exits={} \
             map_cmds_per_vlpi={} map_cwriter_writes_per_vlpi={} batch_map_cmds_per_vlpi={} \
             batch_map_cwriter_writes_per_vlpi={}",
            Ratio(report.exits.exits(), DIRECT_N.into()),
            report.exits.exits(),
            Ratio(one_cmds, 1),
            Ratio(one_writes, 1),
            Ratio(batch_cmds, items.len() as u64),
            Ratio(batch_writes, items.len() as u64),
        );

        let d = deschedule(v, &vm, 0, false);
        check!(
            d.is_some_and(|d| !d.pending_last),
            "PendingLast after everything was taken: {d:?}"
        );
        let vpe = vm.vpe(0).ok();
        check!(
            (8192..8192 + DIRECT_N).all(|x| vpe.is_some_and(|p| !p.vpt_pending(x))),
            "VPT bits left set"
        );
        unmap_vlpis(v, &mut dev, &vm, DIRECT_N);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_pending_then_resident

/// `vlpi_pending_then_resident` (1 CPU): INT on four events while their vPE has never been
/// resident: each vLPI is pending in the vPE's VPT in memory, no doorbell rings (mapped
/// without one) and nothing reaches EL2; when the vPE becomes resident the redistributor
/// rescans the VPT and the guest takes all four, with no exit. Then a vLPI made pending while
/// the vPE is resident but the guest is not running is reported by the deschedule
/// (PendingLast = 1), stays in the VPT, and is delivered at the next residency.
pub fn vlpi_pending_then_resident(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x41, 4) else {
            return;
        };
        let items: [(u32, usize, VlpiConfig); 4] =
            core::array::from_fn(|k| (k as u32, 0, cfg(8192 + k as u32, false)));
        require!(v.g4.map_vlpis(its, &mut dev, &vm, &items).is_ok());
        let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
        let Some(mut g) = start_guest() else { return };

        // Never resident: INT leaves the vLPIs in the VPT.
        for e in 0..4 {
            require!(its.int_event(&dev, e).is_ok(), "INT {e}");
        }
        check!(
            (8192..8196).all(|x| vpe.vpt_pending(x)),
            "vLPIs not pending in the VPT of a non-resident vPE"
        );
        check!(
            gic::irqs_during(gic::QUIET) == 0,
            "an IRQ reached EL2 (no doorbell was mapped)"
        );
        require!(schedule(v, &vm, 0, 0));
        let mut total = 0;
        let Some(r) = wait_more(&mut g, &mut total, 4) else {
            return;
        };
        check_no_exits("pending vLPIs delivered at residency", &r);
        check_received(&g, 8192..8196, 1);

        // Pending while resident with the guest stopped (the hyp is handling an exit): the
        // deschedule sees it (PendingLast), the VPT keeps it, the next residency delivers it.
        require!(its.int_event(&dev, 2).is_ok());
        let d = deschedule(v, &vm, 0, false);
        check!(
            d.is_some_and(|d| d.pending_last),
            "PendingLast with a vLPI pending: {d:?}"
        );
        check!(vpe.vpt_pending(8194), "the pending vLPI left the VPT");
        require!(schedule(v, &vm, 0, 0));
        let r = wait_more(&mut g, &mut total, 1);
        check!(r.is_some_and(|r| r.exits.exits() == 0), "exits: {r:?}");
        let d = deschedule(v, &vm, 0, false);
        check!(
            d.is_some_and(|d| !d.pending_last),
            "PendingLast with nothing pending: {d:?}"
        );
        check!(
            g.received(8194) == 2,
            "vINTID 8194 taken {} times",
            g.received(8194)
        );
        check_total(0);
        println!(
            "@@M vlpi_pending_then_resident pending_at_residency=4 pending_last_seen=1 \
             vlpis={total}"
        );

        unmap_vlpis(v, &mut dev, &vm, 4);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_doorbell_wake

/// Wake-ups in `vlpi_doorbell_wake`.
const WAKEUPS: u64 = 8;
/// How long a descheduled vPE is watched for a doorbell nobody caused.
const STALE_WATCH: Duration = Duration::from_millis(5);

/// What the WFI handler of `vlpi_doorbell_wake` counted.
#[derive(Default)]
struct WakeStats {
    wakeups: Cell<u64>,
    /// Doorbells that came before anything was sent (a pending state left from before).
    stale: Cell<u64>,
    /// Descheduled with a vLPI pending: rescheduled at once.
    pending_last: Cell<u64>,
    timeouts: Cell<u64>,
    /// INTs CPU1 issued (their commands are not the driver's).
    ints: Cell<u64>,
}

/// `vlpi_doorbell_wake` (2 CPUs, edu): the guest blocks in WFI, which traps (HCR_EL2.TWI).
/// The hyp arms the vCPU's `Waiter`, makes its vPE non-resident with the doorbell armed,
/// asks CPU1 for an event (alternately INT, and the `edu` device's MSI) and sleeps in WFI.
/// The event's vLPI finds the vPE away: the ITS sets it in the VPT and rings the doorbell at
/// EL2 on CPU0; `Doorbells::handle` (in the IRQ hook) disables it and wakes the waiter; the
/// hyp records it (`doorbell_rang`), makes the vPE resident and resumes the guest, which takes
/// the vLPI. Eight wake-ups: exactly one doorbell each, one EL2 exit each (the WFI).
///
/// Then a second vLPI in one absence, after the doorbell was handled and before the vPE is
/// back: the doorbell is disabled, but the ITS still makes it pending (checked in the pending
/// table). `make_resident` clears it, so the next deschedule with the doorbell armed brings
/// no spurious wake-up.
pub fn vlpi_doorbell_wake(_ctx: &mut Ctx) {
    run_v4(true, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let edu = match Edu::probe() {
            Ok(e) => e,
            Err(e) => {
                check!(false, "edu: {e:?}");
                return;
            }
        };
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x42, 1) else {
            return;
        };
        let Some(mut edu_dev) = map_device(v.gic, edu.bdf.requester_id(), 1) else {
            return;
        };
        require!(
            v.g4.map_vlpi(its, &mut dev, 0, &vm, 0, cfg(8192, true))
                .is_ok()
        );
        require!(
            v.g4.map_vlpi(its, &mut edu_dev, 0, &vm, 0, cfg(8193, true))
                .is_ok()
        );
        edu.enable_msi(crate::gic_hw::get().translater_addr(), 0);
        let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
        let (id, db) = (vpe.id(), vpe.doorbell());
        // The vCPU's waiter: a plain value, attached to its vPE's doorbell once the VM
        // exists.
        let waiter = Waiter::new();
        require!(v.dbs.attach(&waiter, db).is_ok());
        println!(
            "vlpi_doorbell_wake: vPE {} doorbell LPI {}, INT -> vINTID 8192, edu MSI -> 8193",
            id.get(),
            db.get()
        );
        let Some(mut g) = start_guest() else { return };
        require!(schedule(v, &vm, 0, 0));

        let events = Events::new();
        let agent = events.agent(its, &dev, Some(edu));
        let stats = WakeStats::default();
        // The WFI handler: deschedule with the doorbell armed, block until it rings (having
        // first watched for a stale one), reschedule. `kind` 0 alternates INT and edu.
        let on_wfi = |vcpu: &mut crate::vcpu::Vcpu, exit: &Exit, kind: u32| {
            let Exit::Wfx { .. } = exit else { return None };
            vcpu.regs.elr += 4;
            // Armed before the doorbell is enabled, so no ring can come between.
            check!(v.dbs.arm(&waiter).is_ok(), "arm the waiter");
            let d = deschedule(v, &vm, 0, true)?;
            if d.pending_last {
                stats.pending_last.set(stats.pending_last.get() + 1);
            } else {
                if v4::block_on(v.dbs, &waiter, STALE_WATCH) {
                    // Nothing was sent yet: a doorbell left pending from before.
                    stats.stale.set(stats.stale.get() + 1);
                    v.g4.doorbell_rang(&vm, 0);
                } else {
                    let k = stats.wakeups.get();
                    let what = match kind {
                        0 if k % 2 == 0 => FIRE_INT,
                        0 => FIRE_EDU,
                        k => k,
                    };
                    if what == FIRE_INT {
                        stats.ints.set(stats.ints.get() + 1);
                    }
                    events.send(what);
                    if v4::block_on(v.dbs, &waiter, WAKE_TIMEOUT) {
                        stats.wakeups.set(k + 1);
                        v.g4.doorbell_rang(&vm, 0);
                    } else {
                        stats.timeouts.set(stats.timeouts.get() + 1);
                    }
                }
            }
            schedule(v, &vm, 0, 0).then_some(Flow::Continue)
        };

        // Eight wake-ups.
        let q0 = its.queue().stats();
        let db0 = v.dbs.stats();
        let r = cpus::alongside(1, agent, CPU1_TIMEOUT, || {
            let r = g.order(Order::Wfi { total: WAKEUPS }, |vcpu, exit| {
                on_wfi(vcpu, exit, 0)
            });
            events.stop();
            r
        });
        let report = match r {
            Ok(Ok(r)) => r,
            other => {
                check!(false, "the guest stopped: {other:x?}");
                return;
            }
        };
        let q1 = its.queue().stats();
        let db1 = v.dbs.stats();
        let wakeups = stats.wakeups.get();
        let rings = db1.rings - db0.rings;
        check!(
            wakeups == WAKEUPS && report.total == WAKEUPS,
            "{wakeups} wake-ups, {} vLPIs taken, expected {WAKEUPS}",
            report.total
        );
        check!(
            u64::from(events.sent()) == WAKEUPS,
            "CPU1 sent {} events",
            events.sent()
        );
        check!(
            rings == wakeups && db1.late == db0.late && u64::from(v4::rang(id)) == wakeups,
            "doorbells: {rings} handled ({} late, {} for the vPE) for {wakeups} wake-ups",
            db1.late - db0.late,
            v4::rang(id)
        );
        check_taken(0, db, wakeups as u32);
        check!(
            stats.stale.get() == 0 && stats.pending_last.get() == 0 && stats.timeouts.get() == 0,
            "stale doorbells {}, PendingLast at WFI {}, timeouts {}",
            stats.stale.get(),
            stats.pending_last.get(),
            stats.timeouts.get()
        );
        check!(
            report.exits.wfi == WAKEUPS && report.exits.exits() == WAKEUPS,
            "EL2 exits {:?} for {WAKEUPS} wake-ups",
            report.exits
        );
        check!(
            g.received(8192) == 4 && g.received(8193) == 4,
            "the guest took 8192 x{} (INT) and 8193 x{} (edu MSI)",
            g.received(8192),
            g.received(8193)
        );
        // The ITS commands of the wake-ups, without CPU1's INTs (INT + VSYNC, one write
        // each). The driver's include the doorbell CLEAR + SYNC at each residency.
        let QueueStats {
            commands: cmds,
            cwriter_writes: writes,
            ..
        } = queue_delta(q0, q1);
        let ints = stats.ints.get();
        let driver_cmds = cmds - 2 * ints;
        let driver_writes = writes - ints;
        println!(
            "@@M vlpi_doorbell el2_exits_per_wakeup={} wakeups={wakeups} doorbells={rings} \
             driver_its_cmds_per_wakeup={} driver_cwriter_writes_per_wakeup={}",
            Ratio(report.exits.exits(), wakeups),
            Ratio(driver_cmds, wakeups),
            Ratio(driver_writes, wakeups),
        );
        edu.ack(1);

        // A second vLPI in one absence, after the doorbell was handled: CPU0 makes edu raise
        // its MSI while the vPE is still away (the doorbell is disabled then, but the ITS
        // makes it pending all the same), then makes the vPE resident, which clears it; the
        // next absence watches for a doorbell nobody sent.
        let total = report.total;
        let probe = |vcpu: &mut crate::vcpu::Vcpu, exit: &Exit| -> Option<Flow> {
            let Exit::Wfx { .. } = exit else { return None };
            vcpu.regs.elr += 4;
            check!(v.dbs.arm(&waiter).is_ok(), "arm the waiter");
            deschedule(v, &vm, 0, true)?;
            let r = its.int_event(&dev, 0);
            check!(r.is_ok(), "INT: {r:?}");
            check!(v4::block_on(v.dbs, &waiter, WAKE_TIMEOUT), "no doorbell");
            v.g4.doorbell_rang(&vm, 0);
            edu.raise(1);
            check!(
                gic::irqs_during(gic::QUIET) == 0,
                "the disabled doorbell was delivered"
            );
            check!(vpe.vpt_pending(8193), "the second vLPI is not in the VPT");
            check!(
                v.gic.lpi_pending_in_table(0, db) == Some(true),
                "the disabled doorbell is not pending: the probe proves nothing"
            );
            schedule(v, &vm, 0, 0).then_some(Flow::Continue)
        };
        let r = g.order(Order::Wfi { total: total + 2 }, probe);
        check!(
            r.as_ref().is_ok_and(|r| r.total == total + 2),
            "probe: {r:x?}"
        );
        edu.ack(1);
        let before = stats.stale.get();
        let r = cpus::alongside(1, agent, CPU1_TIMEOUT, || {
            let r = g.order(Order::Wfi { total: total + 3 }, |vcpu, exit| {
                on_wfi(vcpu, exit, FIRE_INT)
            });
            events.stop();
            r
        });
        check!(
            matches!(r, Ok(Ok(ref r)) if r.total == total + 3),
            "after the probe: {r:x?}"
        );
        let stale = stats.stale.get() - before;
        check!(
            stale == 0,
            "{stale} stale doorbells although make_resident clears the doorbell"
        );
        println!("@@M vlpi_doorbell_stale spurious_wakeups={stale}");

        edu.shut_down();
        let d = deschedule(v, &vm, 0, false);
        check!(d.is_some(), "deschedule at the end");
        unmap_vlpis(v, &mut dev, &vm, 1);
        unmap_vlpis(v, &mut edu_dev, &vm, 1);
        unmap_device(v.gic, dev);
        unmap_device(v.gic, edu_dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_vmovp_smp

/// `vlpi_vmovp_smp` (2 CPUs): one vPE and the guest vCPU move CPU0 -> CPU1 -> CPU0. Each time
/// the vCPU is loaded on the new CPU, `make_resident` there issues VMOVP (and moves the
/// doorbell's proxy event) before the vPE becomes resident on that CPU's redistributor. vLPIs
/// follow every move: one made pending in transit is delivered on the new CPU, one INT while
/// resident there is taken there (the guest's NEXT exits are handled on CPU1 for the middle
/// leg: it really runs there), and the doorbell of the vPE away rings on the CPU its VTE names.
pub fn vlpi_vmovp_smp(_ctx: &mut Ctx) {
    run_v4(true, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x43, 8) else {
            return;
        };
        let items: [(u32, usize, VlpiConfig); 6] =
            core::array::from_fn(|k| (k as u32, 0, cfg(8192 + k as u32, true)));
        require!(v.g4.map_vlpis(its, &mut dev, &vm, &items).is_ok());
        let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
        let db = vpe.doorbell();
        let Some(mut g) = start_guest() else { return };
        let mut total = 0;

        // Leg 1, CPU0: INT while resident; then INT while away: the doorbell rings on CPU0.
        require!(schedule(v, &vm, 0, 0));
        require!(its.int_event(&dev, 0).is_ok());
        let r = wait_more(&mut g, &mut total, 1);
        check!(
            r.is_some_and(|r| r.cpu == 0 && r.exits.exits() == 0),
            "leg 1: {r:?}"
        );
        require!(deschedule(v, &vm, 0, true).is_some());
        require!(its.int_event(&dev, 1).is_ok());
        check!(vpe.vpt_pending(8193), "vINTID 8193 not pending in the VPT");
        gic::take_irqs(1, LPI_TIMEOUT);
        check_taken(0, db, 1);
        check!(
            v4::rang(vpe.id()) == 1,
            "doorbell handled {} times",
            v4::rang(vpe.id())
        );
        g.put();

        // Leg 2, CPU1: VMOVP on the way in; the pending vLPI and a new INT are taken there.
        let mut leg2 = None;
        let mut vmovp_cost = QueueStats::default();
        let r = cpus::on_cpu(1, CPU1_TIMEOUT, || {
            g.load();
            let q0 = its.queue().stats();
            if !schedule(v, &vm, 0, 1) {
                return;
            }
            vmovp_cost = queue_delta(q0, its.queue().stats());
            let a = wait_more(&mut g, &mut total, 1);
            let int = its.int_event(&dev, 2);
            check!(int.is_ok(), "INT from cpu1: {int:?}");
            let b = wait_more(&mut g, &mut total, 1);
            leg2 = a.zip(b);
            deschedule(v, &vm, 0, true);
            g.put();
        });
        check!(r.is_ok(), "cpu1: {r:?}");
        check!(
            leg2.is_some_and(|(a, b)| a.cpu == 1 && b.cpu == 1),
            "the guest did not run on cpu1: {leg2:?}"
        );
        check!(
            leg2.is_some_and(|(a, b)| a.exits.exits() == 0 && b.exits.exits() == 0),
            "exits on cpu1: {leg2:?}"
        );
        check!(vpe.affinity() == 1, "the VTE targets cpu{}", vpe.affinity());
        // Away from CPU1: the doorbell rings there, not here.
        require!(its.int_event(&dev, 3).is_ok());
        check!(
            gic::irqs_during(gic::QUIET) == 0,
            "cpu0 took the doorbell of a vPE on cpu1"
        );
        let took = smp::run_on(1, cpu1_take_one, CPU1_TIMEOUT);
        check!(took == Ok(1), "cpu1 took {took:?} IRQs");
        check_taken(1, db, 1);
        check_taken(0, db, 1);

        // Leg 3, back on CPU0: VMOVP back, the pending vLPI and a new INT taken here.
        g.load();
        require!(schedule(v, &vm, 0, 0));
        check!(vpe.affinity() == 0, "the VTE targets cpu{}", vpe.affinity());
        let a = wait_more(&mut g, &mut total, 1);
        require!(its.int_event(&dev, 4).is_ok());
        let b = wait_more(&mut g, &mut total, 1);
        check!(
            a.zip(b).is_some_and(|(a, b)| a.cpu == 0
                && b.cpu == 0
                && a.exits.exits() == 0
                && b.exits.exits() == 0),
            "leg 3: {a:?} {b:?}"
        );
        check_received(&g, 8192..8197, 1);
        check!(g.received(8197) == 0, "vINTID 8197 taken");
        check!(
            v4::rang(vpe.id()) == 2,
            "doorbells handled: {}",
            v4::rang(vpe.id())
        );
        println!(
            "@@M vlpi_vmovp_smp moves=2 vlpis={total} schedule_with_vmovp_cmds={} \
             schedule_with_vmovp_cwriter_writes={}",
            vmovp_cost.commands, vmovp_cost.cwriter_writes
        );

        require!(deschedule(v, &vm, 0, false).is_some());
        unmap_vlpis(v, &mut dev, &vm, 8);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_unmap

/// `vlpi_unmap` (1 CPU): an event with a host LPI is forwarded to a vLPI (DISCARD + VMAPTI) and
/// taken by the guest; unmapped with `restore`, the next INT reaches EL2 as the host LPI and
/// the guest gets nothing. A vLPI-only event made pending while its vPE is away is unmapped:
/// DISCARD clears it from the VPT, the driver refuses INT on it (nothing posted), and the
/// guest never takes it when the vPE comes back.
pub fn vlpi_unmap(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x44, 2) else {
            return;
        };
        let lpi = match v.gic.map_new_lpi(&mut dev, 0, 0) {
            Ok(l) => l,
            Err(e) => {
                check!(false, "host LPI: {e}");
                return;
            }
        };
        require!(
            v.g4.map_vlpi(its, &mut dev, 0, &vm, 0, cfg(8192, true))
                .is_ok()
        );
        require!(
            v.g4.map_vlpi(its, &mut dev, 1, &vm, 0, cfg(8193, true))
                .is_ok()
        );
        let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
        let Some(mut g) = start_guest() else { return };
        require!(schedule(v, &vm, 0, 0));
        let mut total = 0;

        // Forwarded: the guest takes it, EL2 sees nothing.
        require!(its.int_event(&dev, 0).is_ok());
        let r = wait_more(&mut g, &mut total, 1);
        check!(r.is_some_and(|r| r.exits.exits() == 0), "{r:?}");
        check_total(0);

        // Unmapped with restore: the host LPI again.
        let q0 = its.queue().stats();
        let r = v.g4.unmap_vlpi(its, &mut dev, 0, &vm, true);
        require!(r.is_ok(), "unmap_vlpi(restore): {r:?}");
        let QueueStats {
            commands: restore_cmds,
            cwriter_writes: restore_writes,
            ..
        } = queue_delta(q0, its.queue().stats());
        check!(
            dev.event(0)
                .is_ok_and(|s| s.virt.is_none() && s.phys.is_some_and(|p| p.lpi == lpi)),
            "event 0 after unmap: {:?}",
            dev.event(0)
        );
        require!(its.int_event(&dev, 0).is_ok());
        gic::take_irqs(1, LPI_TIMEOUT);
        check_taken(0, lpi, 1);
        check_total(1);
        let r = wait_more(&mut g, &mut total, 0);
        check!(
            r.is_some_and(|r| r.total == 1),
            "the guest took an unmapped vLPI: {r:?}"
        );

        // Pending while away, then unmapped: DISCARD clears the VPT bit; INT is refused.
        require!(deschedule(v, &vm, 0, false).is_some());
        require!(its.int_event(&dev, 1).is_ok());
        check!(vpe.vpt_pending(8193), "not pending in the VPT");
        let q0 = its.queue().stats();
        require!(v.g4.unmap_vlpi(its, &mut dev, 1, &vm, false).is_ok());
        let QueueStats {
            commands: unmap_cmds,
            cwriter_writes: unmap_writes,
            ..
        } = queue_delta(q0, its.queue().stats());
        check!(!vpe.vpt_pending(8193), "DISCARD left the vLPI in the VPT");
        let q = its.queue().stats();
        let r = its.int_event(&dev, 1);
        check!(
            matches!(
                r,
                Err(ItsError::EventNotMapped {
                    device: 0x44,
                    event: 1
                })
            ),
            "INT on an unmapped event: {r:?}"
        );
        check!(its.queue().stats() == q, "a refused INT reached the queue");
        require!(schedule(v, &vm, 0, 0));
        let r = order(
            &mut g,
            Order::Wait {
                total,
                quiet: SILENCE,
            },
        );
        check!(
            r.is_some_and(|r| r.total == 1),
            "delivered after unmap: {r:?}"
        );
        check!(
            g.received(8193) == 0,
            "vINTID 8193 taken {} times",
            g.received(8193)
        );
        check!(
            vpe.vlpis() == 0,
            "{} vLPIs still counted on the vPE",
            vpe.vlpis()
        );
        println!(
            "@@M vlpi_unmap unmap_restore_cmds={restore_cmds} \
             unmap_restore_cwriter_writes={restore_writes} unmap_cmds={unmap_cmds} \
             unmap_cwriter_writes={unmap_writes}"
        );
        check_total(1);

        require!(deschedule(v, &vm, 0, false).is_some());
        unmap_device(v.gic, dev);
        check!(
            v.gic
                .lpis()
                .free(LpiRange {
                    base: lpi,
                    count: 1
                })
                .is_ok(),
            "host LPI not freed"
        );
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_prop_inv

/// `vlpi_prop_inv` (1 CPU): `update_vlpi` writes the vLPI's property byte and, with `inv`,
/// sends INV (+ VSYNC). Resident: disabled, an INT is not delivered; enabled again, the
/// pending vLPI is delivered, once. Away with the doorbell armed: disabling also moves the
/// ITE's doorbell to 1023 (VMOVI), so an INT rings nothing; enabled again, the vLPI is
/// delivered once at residency.
pub fn vlpi_prop_inv(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0]) else { return };
        let Some(mut dev) = map_device(v.gic, 0x45, 1) else {
            return;
        };
        require!(
            v.g4.map_vlpi(its, &mut dev, 0, &vm, 0, cfg(8192, true))
                .is_ok()
        );
        let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
        let Some(mut g) = start_guest() else { return };
        require!(schedule(v, &vm, 0, 0));
        let mut total = 0;
        let prop = |enabled| VlpiProp {
            priority: PRIO,
            enabled,
            inv: true,
        };

        // Resident, disabled: INT leaves it undelivered.
        let q0 = its.queue().stats();
        require!(v.g4.update_vlpi(its, &dev, 0, &vm, prop(false)).is_ok());
        let QueueStats {
            commands: upd_cmds,
            cwriter_writes: upd_writes,
            ..
        } = queue_delta(q0, its.queue().stats());
        check!(
            vm.property(8192).is_ok_and(|b| b & 1 == 0),
            "enable bit still set"
        );
        require!(its.int_event(&dev, 0).is_ok());
        let r = wait_more(&mut g, &mut total, 0);
        check!(
            r.is_some_and(|r| r.total == 0),
            "delivered while disabled: {r:?}"
        );
        // Enabled + INV: delivered, once.
        require!(v.g4.update_vlpi(its, &dev, 0, &vm, prop(true)).is_ok());
        let r = wait_more(&mut g, &mut total, 1);
        check!(r.is_some_and(|r| r.exits.exits() == 0), "{r:?}");
        check!(g.received(8192) == 1, "taken {} times", g.received(8192));

        // Away with the doorbell armed, disabled: the INT rings no doorbell.
        require!(deschedule(v, &vm, 0, true).is_some());
        require!(v.g4.update_vlpi(its, &dev, 0, &vm, prop(false)).is_ok());
        require!(its.int_event(&dev, 0).is_ok());
        check!(vpe.vpt_pending(8192), "not pending in the VPT");
        check!(
            gic::irqs_during(gic::QUIET) == 0,
            "a doorbell rang for a disabled vLPI"
        );
        require!(v.g4.update_vlpi(its, &dev, 0, &vm, prop(true)).is_ok());
        check!(
            gic::irqs_during(gic::QUIET) == 0,
            "a doorbell rang on enable"
        );
        require!(schedule(v, &vm, 0, 0));
        let r = wait_more(&mut g, &mut total, 1);
        check!(r.is_some_and(|r| r.exits.exits() == 0), "{r:?}");
        check!(g.received(8192) == 2, "taken {} times", g.received(8192));
        check_total(0);
        check!(v4::rang_total() == 0, "doorbells rang");
        println!(
            "@@M vlpi_prop_inv update_vlpi_cmds={upd_cmds} update_vlpi_cwriter_writes={upd_writes} \
             vlpis={total}"
        );

        require!(deschedule(v, &vm, 0, false).is_some());
        unmap_vlpis(v, &mut dev, &vm, 1);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_edu_passthrough

/// MSIs `vlpi_edu_passthrough` has the guest raise.
const EDU_MSIS: u32 = 4;

/// `vlpi_edu_passthrough` (1 CPU, edu): the `edu` PCI device's MSI (DeviceID = its requester
/// ID) is mapped to a vLPI of the guest's vPE. The guest itself programs the device through
/// its identity-mapped BAR (no stage 2), raises its interrupt four times and takes each MSI as
/// a vLPI, acknowledging the device: no EL2 exit, nothing at EL2.
pub fn vlpi_edu_passthrough(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let edu = match Edu::probe() {
            Ok(e) => e,
            Err(e) => {
                check!(false, "edu: {e:?}");
                return;
            }
        };
        let Some(vm) = create_vm(v, &[0]) else { return };
        let rid = edu.bdf.requester_id();
        let Some(mut dev) = map_device(v.gic, rid, 2) else {
            return;
        };
        require!(
            v.g4.map_vlpi(its, &mut dev, 1, &vm, 0, cfg(8200, true))
                .is_ok()
        );
        edu.enable_msi(crate::gic_hw::get().translater_addr(), 1);
        println!(
            "vlpi_edu_passthrough: edu at BAR0 {:#x}, MSI (DeviceID {rid:#x}, EventID 1) -> \
             vINTID 8200",
            edu.bar0
        );
        let Some(mut g) = start_guest() else { return };
        require!(schedule(v, &vm, 0, 0));
        let r = order(
            &mut g,
            Order::Edu {
                bar0: edu.bar0,
                times: EDU_MSIS,
            },
        );
        let Some(r) = r else { return };
        check!(
            r.total == EDU_MSIS.into(),
            "the guest took {} vLPIs",
            r.total
        );
        check_no_exits("edu MSI -> vLPI", &r);
        check!(
            g.received(8200) == EDU_MSIS,
            "taken {} times",
            g.received(8200)
        );
        check!(
            edu.irq_status() == 0,
            "edu status {:#x}: not acknowledged",
            edu.irq_status()
        );
        check_total(0);
        check!(v4::rang_total() == 0, "a doorbell rang");
        println!(
            "@@M vlpi_edu_passthrough el2_exits_per_vlpi={} vlpis={}",
            Ratio(r.exits.exits(), r.total),
            r.total
        );

        edu.shut_down();
        require!(deschedule(v, &vm, 0, false).is_some());
        unmap_vlpis(v, &mut dev, &vm, 2);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_two_vms

/// Rounds of `vlpi_two_vms`.
const TWO_VMS_ROUNDS: usize = 6;

/// The events (= vINTID - 8192) VM `vm` gets an INT for in round `r`: overlapping sets.
fn two_vms_set(vm: usize, r: usize) -> [u32; 2] {
    match vm {
        0 => [(r % 4) as u32, ((r + 1) % 4) as u32],
        _ => [((r + 1) % 4) as u32, ((r + 3) % 4) as u32],
    }
}

/// `vlpi_two_vms` (1 CPU): VMs A and B, one vPE each on CPU0, each with a device whose events
/// 0-3 are vINTIDs 8192-8195 (the same numbers in both). They take turns on CPU0 (one
/// non-resident, the other resident). Every round both devices get INTs on overlapping
/// events: the resident VM's are taken at once, the other's wait in its own VPT (checked bit
/// by bit) and are taken at its next turn, each exactly once. The guest's counters per vINTID
/// match exactly the pending set of the VM that was resident, at every turn.
pub fn vlpi_two_vms(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm_a) = create_vm(v, &[0]) else {
            return;
        };
        let Some(vm_b) = create_vm(v, &[0]) else {
            return;
        };
        let vms = [&vm_a, &vm_b];
        let Some(mut dev_a) = map_device(v.gic, 0x46, 4) else {
            return;
        };
        let Some(mut dev_b) = map_device(v.gic, 0x47, 4) else {
            return;
        };
        let items: [(u32, usize, VlpiConfig); 4] =
            core::array::from_fn(|k| (k as u32, 0, cfg(8192 + k as u32, false)));
        require!(v.g4.map_vlpis(its, &mut dev_a, &vm_a, &items).is_ok());
        require!(v.g4.map_vlpis(its, &mut dev_b, &vm_b, &items).is_ok());
        let devs = [&dev_a, &dev_b];
        let Some(mut g) = start_guest() else { return };
        let mut total = 0;
        let mut pending = [[false; 4]; 2];
        let mut sent = 0;
        let mut resident: Option<usize> = None;
        let seen =
            |g: &GuestLink| -> [u32; 4] { core::array::from_fn(|k| g.received(8192 + k as u32)) };
        for r in 0..=TWO_VMS_ROUNDS {
            let x = r % 2;
            // Switch: the other VM's vPE out, this one's in; its pending vLPIs are delivered.
            if let Some(o) = resident {
                require!(deschedule(v, vms[o], 0, false).is_some());
            }
            require!(schedule(v, vms[x], 0, 0));
            resident = Some(x);
            let before = seen(&g);
            let n = pending[x].iter().filter(|&&p| p).count() as u64;
            let rep = wait_more(&mut g, &mut total, n);
            check!(
                rep.is_some_and(|r| r.exits.exits() == 0),
                "round {r}: {rep:?}"
            );
            let after = seen(&g);
            for k in 0..4 {
                check!(
                    after[k] - before[k] == u32::from(pending[x][k]),
                    "round {r}: VM {x} resident, vINTID {} taken {} times, pending {}",
                    8192 + k,
                    after[k] - before[k],
                    pending[x][k]
                );
            }
            pending[x] = [false; 4];
            if r == TWO_VMS_ROUNDS {
                break;
            }
            // INTs to both: this VM's are taken now, the other's wait in its VPT.
            let before = seen(&g);
            for (w, dev) in devs.iter().enumerate() {
                for e in two_vms_set(w, r) {
                    require!(its.int_event(dev, e).is_ok());
                    sent += 1;
                    if w != x {
                        pending[w][e as usize] = true;
                    }
                }
            }
            let rep = wait_more(&mut g, &mut total, 2);
            check!(
                rep.is_some_and(|r| r.exits.exits() == 0),
                "round {r}: {rep:?}"
            );
            let after = seen(&g);
            let mine = two_vms_set(x, r);
            for k in 0..4u32 {
                let want = u32::from(mine.contains(&k));
                check!(
                    after[k as usize] - before[k as usize] == want,
                    "round {r}: VM {x} resident, vINTID {} taken {} times, sent {want}",
                    8192 + k,
                    after[k as usize] - before[k as usize]
                );
            }
            let other = vms[1 - x].vpe(0).ok();
            for k in 0..4u32 {
                check!(
                    other.is_some_and(|p| p.vpt_pending(8192 + k) == pending[1 - x][k as usize]),
                    "round {r}: VM {}'s VPT bit for {} is not {}",
                    1 - x,
                    8192 + k,
                    pending[1 - x][k as usize]
                );
            }
        }
        check!(total == sent, "{total} vLPIs taken, {sent} sent");
        check!(pending == [[false; 4]; 2], "left pending: {pending:?}");
        check_total(0);
        println!(
            "@@M vlpi_two_vms rounds={TWO_VMS_ROUNDS} switches={} vlpis={total}",
            TWO_VMS_ROUNDS
        );

        if let Some(o) = resident {
            require!(deschedule(v, vms[o], 0, false).is_some());
        }
        unmap_vlpis(v, &mut dev_a, &vm_a, 4);
        unmap_vlpis(v, &mut dev_b, &vm_b, 4);
        unmap_device(v.gic, dev_a);
        unmap_device(v.gic, dev_b);
        destroy_vm(v, vm_a);
        destroy_vm(v, vm_b);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vlpi_many

/// vLPIs, vPEs and vLPIs per vPE in `vlpi_many`.
const MANY_N: u32 = 1024;
const MANY_VPES: usize = 4;
const MANY_PER_VPE: u32 = MANY_N / MANY_VPES as u32;

/// `vlpi_many` (1 CPU): 1024 events of one device mapped to 1024 vLPIs on 4 vPEs of one VM
/// (vPE k: vINTIDs 8192 + 256k ..), in one `map_vlpis` batch. Round 1: all 1024 INTs (one
/// batch) while every vPE is away: each vPE's VPT holds exactly its 256; made resident in
/// turn, each delivers exactly its 256 to the guest. Round 2: the same with each vPE resident
/// while its INTs arrive. Every vLPI is taken exactly once per round.
pub fn vlpi_many(_ctx: &mut Ctx) {
    run_v4(false, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let Some(vm) = create_vm(v, &[0; MANY_VPES]) else {
            return;
        };
        let Some(mut dev) = map_device(v.gic, 0x48, MANY_N) else {
            return;
        };
        let vpe_of = |e: u32| (e / MANY_PER_VPE) as usize;
        let q0 = its.queue().stats();
        let mut mapped = true;
        // map_vlpis takes a slice: build it in chunks on the stack.
        for chunk in 0..MANY_N / 256 {
            let items: [(u32, usize, VlpiConfig); 256] = core::array::from_fn(|k| {
                let e = chunk * 256 + k as u32;
                (e, vpe_of(e), cfg(8192 + e, false))
            });
            let r = v.g4.map_vlpis(its, &mut dev, &vm, &items);
            mapped &= check!(r.is_ok(), "map_vlpis: {r:?}");
        }
        require!(mapped);
        let QueueStats {
            commands: map_cmds,
            cwriter_writes: map_writes,
            ..
        } = queue_delta(q0, its.queue().stats());
        let syncs: [SyncTarget; MANY_VPES] = core::array::from_fn(|k| {
            SyncTarget::Vpe(vm.vpe(k).map(|p| p.id()).unwrap_or_default())
        });
        let Some(mut g) = start_guest() else { return };
        let mut total = 0;

        // Round 1: everything pending while away, then each vPE resident in turn.
        let q1 = its.queue().stats();
        require!(int_batch(v, &dev, |i| i as u32, MANY_N as usize, &syncs));
        let QueueStats {
            commands: int_cmds,
            cwriter_writes: int_writes,
            ..
        } = queue_delta(q1, its.queue().stats());
        for k in 0..MANY_VPES {
            let vpe = need!(vm.vpe(k).ok(), "vPE {k} of the VM");
            let lo = 8192 + k as u32 * MANY_PER_VPE;
            let exact = (8192..8192 + MANY_N)
                .all(|x| vpe.vpt_pending(x) == (lo..lo + MANY_PER_VPE).contains(&x));
            check!(exact, "vPE {k}'s VPT does not hold exactly its vLPIs");
        }
        for k in 0..MANY_VPES {
            require!(schedule(v, &vm, k, 0));
            let r = wait_more(&mut g, &mut total, MANY_PER_VPE.into());
            check!(r.is_some_and(|r| r.exits.exits() == 0), "vPE {k}: {r:?}");
            let lo = 8192 + k as u32 * MANY_PER_VPE;
            check_received(&g, lo..lo + MANY_PER_VPE, 1);
            require!(deschedule(v, &vm, k, false).is_some_and(|d| !d.pending_last));
        }
        check_received(&g, 8192..8192 + MANY_N, 1);

        // Round 2: each vPE resident while its INTs arrive.
        for k in 0..MANY_VPES {
            require!(schedule(v, &vm, k, 0));
            let base = k as u32 * MANY_PER_VPE;
            require!(int_batch(
                v,
                &dev,
                |i| base + i as u32,
                MANY_PER_VPE as usize,
                &syncs[k..=k]
            ));
            let r = wait_more(&mut g, &mut total, MANY_PER_VPE.into());
            check!(r.is_some_and(|r| r.exits.exits() == 0), "vPE {k}: {r:?}");
            require!(deschedule(v, &vm, k, false).is_some_and(|d| !d.pending_last));
        }
        check_received(&g, 8192..8192 + MANY_N, 2);
        check!(total == 2 * u64::from(MANY_N), "{total} vLPIs taken");
        check_total(0);
        println!(
            "@@M vlpi_many vlpis={MANY_N} vpes={MANY_VPES} delivered={total} \
             map_cmds={map_cmds} map_cwriter_writes={map_writes} map_cmds_per_vlpi={} \
             int_batch_cmds={int_cmds} int_batch_cwriter_writes={int_writes}",
            Ratio(map_cmds, MANY_N.into()),
        );

        unmap_vlpis(v, &mut dev, &vm, MANY_N);
        unmap_device(v.gic, dev);
        destroy_vm(v, vm);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}

// ---------------------------------------------------------------------------------------------
// vpe_many

/// VMs, vPEs per VM, rounds and events per vPE of `vpe_many`.
const MANY_VMS: usize = 4;
const VPES_PER_VM: usize = 16;
const MANY_ROUNDS: usize = 4;
const EVENTS_PER_VPE: u32 = 3;

/// The VMs of `vpe_many`: 64 vPEs' tables are too big for a stack frame.
static MANY: SpinLock<[Option<HwVm>; MANY_VMS]> = SpinLock::new([const { None }; MANY_VMS]);

/// The vINTID of event `k` of vPE `i` of VM `j` (distinct across VMs, so the guest's counters
/// tell every vPE apart).
fn many_vintid(j: usize, i: usize, k: u32) -> u32 {
    8192 + ((j * VPES_PER_VM + i) as u32) * EVENTS_PER_VPE + k
}

/// The CPU vPE `i` runs on in round `r`: half on each, all swapped every round.
fn many_cpu(i: usize, r: usize) -> usize {
    (i + r) % 2
}

/// What `vpe_many` counts across rounds.
#[derive(Default)]
struct ManyStats {
    total: u64,
    moves: u64,
    exits: u64,
}

/// One CPU's share of a `vpe_many` round, with the guest loaded there: each vPE of this CPU
/// made resident (VMOVP if it moved), its two pending vLPIs taken, an INT while resident taken,
/// then made non-resident with its doorbell armed.
fn many_leg(
    v: &V4<'_>,
    vms: &[&HwVm; MANY_VMS],
    devs: &[&HwDevice; MANY_VMS],
    g: &mut GuestLink,
    st: &mut ManyStats,
    r: usize,
) {
    let cpu = common::platform::cpu_index();
    g.load();
    for (j, vm) in vms.iter().enumerate() {
        for i in (0..VPES_PER_VM).filter(|&i| many_cpu(i, r) == cpu) {
            let moved = vm.vpe(i).is_ok_and(|p| p.affinity() != cpu);
            if !schedule(v, vm, i, cpu) {
                return;
            }
            st.moves += u64::from(moved);
            let a = wait_more(g, &mut st.total, 2);
            let int = v
                .gic
                .its()
                .int_event(devs[j], i as u32 * EVENTS_PER_VPE + 2);
            check!(int.is_ok(), "INT: {int:?}");
            let b = wait_more(g, &mut st.total, 1);
            let (Some(a), Some(b)) = (a, b) else { return };
            check!(
                a.cpu == cpu && b.cpu == cpu,
                "the guest ran on cpu{}",
                a.cpu
            );
            st.exits += a.exits.exits() + b.exits.exits();
            let want = r as u32 + 1;
            let ok = (0..EVENTS_PER_VPE).all(|k| g.received(many_vintid(j, i, k)) == want);
            check!(
                ok,
                "round {r}: VM {j} vPE {i}: vLPIs not taken exactly once"
            );
            let d = deschedule(v, vm, i, true);
            check!(d.is_some_and(|d| !d.pending_last), "VM {j} vPE {i}: {d:?}");
        }
    }
    g.put();
}

/// `vpe_many` (2 CPUs): 64 vPEs in 4 VMs of 16, half on each CPU, swapped every round (so from
/// round 2 on every residency starts with a VMOVP); 4 rounds. Each round: two INTs per vPE while
/// every vPE is away (one batch per VM), so from round 2 on each vPE's doorbell rings exactly
/// once, on the CPU its VTE names, and is taken there; then the guest vCPU visits CPU0's
/// vPEs, then CPU1's (it runs on CPU1 for those), taking each vPE's two pending vLPIs at
/// residency and one more INT while resident. No vLPI is lost or taken twice: after round r
/// every one of the 192 vINTIDs was taken exactly r times.
pub fn vpe_many(_ctx: &mut Ctx) {
    run_v4(true, |v| {
        let its = v.gic.its();
        let mark = MemMark::now(v.gic);
        let mut slot = MANY.lock();
        let cpus: [usize; VPES_PER_VM] = core::array::from_fn(|i| many_cpu(i, 0));
        for vm in slot.iter_mut() {
            *vm = create_vm(v, &cpus);
        }
        require!(slot.iter().all(Option::is_some));
        let vms: [&HwVm; MANY_VMS] = core::array::from_fn(|j| slot[j].as_ref().expect("created"));
        let mut dev_slot: [Option<HwDevice>; MANY_VMS] = [const { None }; MANY_VMS];
        for (j, vm) in vms.iter().enumerate() {
            let n = VPES_PER_VM as u32 * EVENTS_PER_VPE;
            let Some(mut dev) = map_device(v.gic, 0x50 + j as u32, n) else {
                return;
            };
            let items: [(u32, usize, VlpiConfig); VPES_PER_VM * EVENTS_PER_VPE as usize] =
                core::array::from_fn(|e| {
                    let (i, k) = (e / EVENTS_PER_VPE as usize, e as u32 % EVENTS_PER_VPE);
                    (e as u32, i, cfg(many_vintid(j, i, k), true))
                });
            let r = v.g4.map_vlpis(its, &mut dev, vm, &items);
            dev_slot[j] = Some(dev);
            require!(r.is_ok(), "map_vlpis: {r:?}");
        }
        let devs: [&HwDevice; MANY_VMS] =
            core::array::from_fn(|j| dev_slot[j].as_ref().expect("mapped"));
        let Some(mut g) = start_guest() else { return };
        g.put();
        let mut st = ManyStats::default();
        let mut rang = [[0u32; 2]; MANY_VMS * VPES_PER_VM];
        for r in 0..MANY_ROUNDS {
            // Two INTs per vPE while all are away.
            let mut expect = [0u64; 2];
            for (j, vm) in vms.iter().enumerate() {
                let syncs: [SyncTarget; VPES_PER_VM] = core::array::from_fn(|i| {
                    SyncTarget::Vpe(vm.vpe(i).map(|p| p.id()).unwrap_or_default())
                });
                let events = |n: usize| (n / 2) as u32 * EVENTS_PER_VPE + (n % 2) as u32;
                require!(int_batch(v, devs[j], events, 2 * VPES_PER_VM, &syncs));
                for (i, p) in vm.vpes().iter().enumerate() {
                    check!(
                        p.vpt_pending(many_vintid(j, i, 0)) && p.vpt_pending(many_vintid(j, i, 1)),
                        "round {r}: VM {j} vPE {i}: not pending in its VPT"
                    );
                    // Armed at the last deschedule (none before round 1).
                    if r > 0 {
                        expect[p.affinity()] += 1;
                    }
                }
            }
            // The doorbells, each taken on the CPU its vPE's VTE names.
            let before = gic::total_taken();
            let on1 = cpus::on_cpu(1, CPU1_TIMEOUT, || {
                gic::take_irqs(before + expect[1], LPI_TIMEOUT);
            });
            check!(on1.is_ok(), "cpu1: {on1:?}");
            let took = gic::take_irqs(before + expect[0] + expect[1], LPI_TIMEOUT) - before;
            check!(
                took == expect[0] + expect[1],
                "round {r}: {took} doorbells taken, expected {} on cpu0 + {} on cpu1",
                expect[0],
                expect[1]
            );
            for (j, vm) in vms.iter().enumerate() {
                for (i, p) in vm.vpes().iter().enumerate() {
                    let gi = j * VPES_PER_VM + i;
                    if r > 0 {
                        rang[gi][p.affinity()] += 1;
                    }
                    let want = rang[gi];
                    let got = [gic::taken(0, p.doorbell()), gic::taken(1, p.doorbell())];
                    check!(
                        v4::rang(p.id()) == want[0] + want[1] && got == want,
                        "round {r}: VM {j} vPE {i}: doorbell handled {} times, taken {got:?} \
                         times on cpu0/cpu1, expected {want:?}",
                        v4::rang(p.id())
                    );
                }
            }
            // The guest visits CPU0's vPEs, then CPU1's.
            many_leg(v, &vms, &devs, &mut g, &mut st, r);
            let on1 = cpus::on_cpu(1, CPU1_TIMEOUT, || {
                many_leg(v, &vms, &devs, &mut g, &mut st, r);
            });
            check!(on1.is_ok(), "cpu1: {on1:?}");
        }
        let n = (MANY_VMS * VPES_PER_VM) as u64 * u64::from(EVENTS_PER_VPE);
        check!(
            st.total == n * MANY_ROUNDS as u64,
            "{} vLPIs taken, expected {}",
            st.total,
            n * MANY_ROUNDS as u64
        );
        check_received(
            &g,
            many_vintid(0, 0, 0)..many_vintid(MANY_VMS, 0, 0),
            MANY_ROUNDS as u32,
        );
        check!(
            st.exits == 0,
            "{} EL2 exits while vLPIs were delivered",
            st.exits
        );
        let expected_moves = ((MANY_ROUNDS - 1) * MANY_VMS * VPES_PER_VM) as u64;
        check!(
            st.moves == expected_moves,
            "{} VMOVPs, expected {expected_moves}",
            st.moves
        );
        println!(
            "@@M vpe_many vms={MANY_VMS} vpes={} rounds={MANY_ROUNDS} vlpis={} vmovps={} \
             doorbells={} exits={}",
            MANY_VMS * VPES_PER_VM,
            st.total,
            st.moves,
            v4::rang_total(),
            st.exits
        );

        g.load();
        for (j, dev) in dev_slot.iter_mut().enumerate() {
            if let Some(mut dev) = dev.take() {
                unmap_vlpis(v, &mut dev, vms[j], VPES_PER_VM as u32 * EVENTS_PER_VPE);
                unmap_device(v.gic, dev);
            }
        }
        for vm in slot.iter_mut() {
            if let Some(vm) = vm.take() {
                destroy_vm(v, vm);
            }
        }
        drop(slot);
        finish_guest(g);
        mark.check_no_leak(v.gic);
    });
}
