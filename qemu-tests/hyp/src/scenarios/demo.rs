// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask demo`: narrates the platform coming up, then the physical-LPI story on the
//! driver crates (ITS probed, tables, collections, the `edu` PCI device mapped, its MSI taken
//! as an LPI at EL2), then GICv4 direct injection on `vpe-sched` and `doorbell`: a VM created,
//! vLPIs mapped, the vPE resident, an INT taken by the guest as a vLPI with no EL2 exit, and
//! the doorbell story (guest WFI, vPE descheduled with its doorbell, edu's MSI, doorbell at
//! EL2, vCPU scheduled, vLPI taken).

use core::time::Duration;

use common::hvc_abi::{HVC_PRINT_NUM, program};
use common::{check, mmu, narrate, read_sysreg, require, sysreg};
use doorbell::Waiter;

use super::Ctx;
use super::support::v4::{
    CPU1_TIMEOUT, Events, FIRE_EDU, FIRE_INT, WAKE_TIMEOUT, cfg, create_vm, deschedule, destroy_vm,
    finish_guest, order, schedule, start_guest, unmap_device, unmap_vlpis,
};
use super::support::{MemMark, map_device, need, queue_delta};
use crate::exits;
use crate::gic::{self, Gic, GicHandle};
use crate::pci::Edu;
use crate::smp;
use crate::v4::guest::Order;
use crate::v4::{self, V4, cpus};
use crate::vcpu::{Exit, Flow, Vcpu};

/// The narrated boot: EL2, MMU, CPU1, guest entry, guest hypercall.
pub fn demo(_ctx: &mut Ctx) {
    narrate!(
        "hyp running at EL{} on cpu0 (QEMU virt, GICv4 model)",
        sysreg::current_el()
    );
    check!(sysreg::current_el() == 2);

    let sctlr = read_sysreg!(sctlr_el2);
    narrate!("stage 1 identity map on at EL2: SCTLR_EL2={sctlr:#x} (MMU, D-cache, I-cache)");
    check!(mmu::el2_mmu_and_caches_on());

    match smp::start(1, Duration::from_secs(1)) {
        Ok(()) => {
            let (mpidr, _) = smp::checkin_regs(1);
            narrate!("cpu1 started with PSCI CPU_ON (SMC conduit); MPIDR={mpidr:#x}");
        }
        Err(e) => {
            check!(false, "cpu1 did not start: {e:?}");
        }
    }

    let Some(gic) = physical_lpis() else { return };

    narrate!(
        "entering the EL1 guest at 0x{:x} (program: smoke)",
        common::platform::GUEST_BASE
    );
    let before = exits::snapshot();
    let mut vcpu = Vcpu::new(program::SMOKE);
    let result = vcpu.run_until_done(|_, exit| {
        match exit {
            Exit::Hvc {
                nr: HVC_PRINT_NUM,
                args,
            } => {
                narrate!(
                    "guest hypercall PRINT_NUM({}) -> EL2 exit, answered {}",
                    args[0],
                    args[0] + 1
                );
            }
            Exit::Wfx { .. } => narrate!("guest WFI trapped to EL2 (HCR_EL2.TWI), skipped"),
            _ => {}
        }
        None
    });
    let counts = exits::snapshot().since(&before);
    require!(result == Ok(0), "guest ended with {result:?}");
    narrate!(
        "guest reported done; EL2 exits: {} (hvc {}, wfi {}, irq {})",
        counts.exits(),
        counts.hvc,
        counts.wfi,
        counts.irq
    );
    counts.report();

    if let Err(e) = v4::with_v4(&gic, direct_injection) {
        check!(false, "{e}");
    }
}

/// The physical-LPI story: bring-up on the driver crates, then an MSI from `edu` taken at EL2.
/// Returns the GIC, still up, for the rest of the demo.
fn physical_lpis() -> Option<GicHandle> {
    let gic = match Gic::bring_up() {
        Ok(g) => g,
        Err(e) => {
            check!(false, "GIC bring-up: {e}");
            return None;
        }
    };
    let its = gic.its();
    let c = its.caps();
    let version = match c.version {
        its_core::cmd::ItsVersion::V3 => "GICv3 (no virtual LPIs)",
        its_core::cmd::ItsVersion::V4_0 => "GICv4.0",
        _ => "GICv4.1",
    };
    narrate!(
        "ITS probed: {version}, {}-bit DeviceIDs and EventIDs, {}-byte ITT entries, RDbase = \
         {} (PTA={}), single VMOVP: {}",
        c.device_id_bits,
        c.itt_entry_bytes,
        if c.pta { "address" } else { "processor number" },
        u8::from(c.pta),
        if c.single_vmovp { "yes" } else { "no" }
    );
    let table = |t: Option<&its_cmdq::ItsTable<_>>| {
        t.map_or((0, false), |t| {
            (t.page_size().bytes() >> 10, t.is_indirect())
        })
    };
    let (dev, coll, vpe) = (
        table(Some(its.device_table())),
        table(its.collection_table()),
        table(its.vpe_table()),
    );
    narrate!(
        "ITS tables: device {} KiB pages{}, collection {} KiB{}, vPE {} KiB{}; 64 KiB command \
         queue; LPI property table ({} INTID bits) shared, a pending table per CPU",
        dev.0,
        if dev.1 { " two-level" } else { "" },
        coll.0,
        if coll.1 { " two-level" } else { " flat" },
        vpe.0,
        if vpe.1 { " two-level" } else { "" },
        gic.lpis().id_bits()
    );
    let s = its.queue().stats();
    narrate!(
        "collections: MAPC + INVALL for each of {} CPUs (ICID = CPU), then SYNC: {} commands, {} \
         CWRITER write",
        gic.cpus,
        s.commands,
        s.cwriter_writes
    );

    let edu = match Edu::probe() {
        Ok(e) => e,
        Err(e) => {
            check!(false, "edu: {e:?}");
            return Some(gic);
        }
    };
    let rid = edu.bdf.requester_id();
    let mut dev = match its.map_device(its_core::ids::DeviceId::new(rid), 1) {
        Ok(d) => d,
        Err(e) => {
            check!(false, "MAPD: {e}");
            return Some(gic);
        }
    };
    let lpi = match gic.map_new_lpi(&mut dev, 0, 0) {
        Ok(l) => l,
        Err(e) => {
            check!(false, "MAPTI: {e}");
            return Some(gic);
        }
    };
    edu.enable_msi(crate::gic_hw::get().translater_addr(), 0);
    narrate!(
        "edu PCI device at {:02x}:{:02x}.{}: MAPD DeviceID {rid:#x}, MAPTI event 0 -> LPI {} on \
         cpu0; its MSI points at GITS_TRANSLATER",
        edu.bdf.bus,
        edu.bdf.dev,
        edu.bdf.func,
        lpi.get()
    );
    let before = exits::snapshot();
    edu.raise(1);
    gic::take_irqs(1, Duration::from_millis(500));
    edu.ack(1);
    let counts = exits::snapshot().since(&before);
    let taken = gic::taken(0, lpi);
    narrate!(
        "edu raised an MSI: the ITS translated (DeviceID {rid:#x}, EventID 0) to LPI {}, taken \
         {taken}x at EL2 on cpu0 ({} EL2 IRQ, {} exits)",
        lpi.get(),
        counts.el2_irqs,
        counts.exits()
    );
    check!(
        taken == 1 && gic::total_taken() == 1,
        "LPI taken {taken} times"
    );
    edu.shut_down();
    if let Err(e) = its.unmap_device(&mut dev) {
        check!(false, "unmap: {:?}", e);
        core::mem::forget(dev);
    }
    Some(gic)
}

/// The direct-injection story, with the GICv4 layer up.
fn direct_injection(v: &V4<'_>) {
    let its = v.gic.its();
    let dbs = v.dbs.range();
    narrate!(
        "GICv4 layer up: {} doorbell LPIs from {} (invalidated through proxy device {:#x}: no \
         DirectLPI); GICR_VPROPBASER.IDbits set on {} redistributors",
        dbs.count,
        dbs.base.get(),
        v4::PROXY_DEVICE,
        v.gic.cpus
    );
    let mark = MemMark::now(v.gic);
    let q = its.queue().stats();
    let Some(vm) = create_vm(v, &[0]) else { return };
    let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
    let (id, db) = (vpe.id(), vpe.doorbell());
    let d = queue_delta(q, its.queue().stats());
    narrate!(
        "VM created: vPE {} for cpu0, its pending table at {:#x}, doorbell LPI {}; VMAPP + \
         VINVALL + VSYNC, proxy MAPTI + SYNC: {} commands, {} CWRITER writes",
        id.get(),
        vpe.vpt().get(),
        db.get(),
        d.commands,
        d.cwriter_writes
    );
    let edu = match Edu::probe() {
        Ok(e) => e,
        Err(e) => {
            check!(false, "edu: {e:?}");
            return;
        }
    };
    let rid = edu.bdf.requester_id();
    let Some(mut dev) = map_device(v.gic, 0x60, 1) else {
        return;
    };
    let Some(mut edu_dev) = map_device(v.gic, rid, 1) else {
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
    narrate!(
        "vLPIs mapped (VMAPTI + VSYNC): DeviceID 0x60 event 0 -> vINTID 8192, edu's MSI \
         (DeviceID {rid:#x}) -> vINTID 8193, both with doorbell {}",
        db.get()
    );

    let Some(mut g) = start_guest() else { return };
    require!(schedule(v, &vm, 0, 0));
    let vpendbaser = v
        .gic
        .with_redist(0, |rd| its_core::mmio::RedistRegisters::vpendbaser(rd))
        .unwrap_or(0);
    narrate!("vPE resident on cpu0: GICR_VPENDBASER={vpendbaser:#x} (Valid); guest entered");

    let events = Events::new();
    let agent = events.agent(its, &dev, Some(edu));
    // The vCPU's waiter: a plain value, attached to its vPE's doorbell once the VM exists.
    let waiter = Waiter::new();
    require!(v.dbs.attach(&waiter, db).is_ok());
    let lpis_before = gic::total_taken();
    let r = cpus::alongside(1, agent, CPU1_TIMEOUT, || {
        events.send(FIRE_INT);
        let direct = order(
            &mut g,
            Order::Wait {
                total: 1,
                quiet: Duration::from_millis(2),
            },
        );
        if let Some(r) = direct {
            narrate!(
                "cpu1 issued INT (DeviceID 0x60, event 0) while the guest ran: the guest took \
                 vINTID 8192 at EL1 from ICV_IAR1_EL1 ({} EL2 exits, {} IRQs at EL2)",
                r.exits.exits(),
                gic::total_taken() - lpis_before
            );
            check!(r.exits.exits() == 0 && r.total == 1, "{r:?}");
        }
        let q = its.queue().stats();
        let r = g.order(Order::Wfi { total: 2 }, |vcpu, exit| {
            let Exit::Wfx { .. } = exit else { return None };
            vcpu.regs.elr += 4;
            check!(v.dbs.arm(&waiter).is_ok(), "arm the waiter");
            let d = deschedule(v, &vm, 0, true)?;
            narrate!(
                "guest WFI trapped to EL2 (TWI): vPE made non-resident with its doorbell armed \
                 (PendingLast={}); the hyp sleeps in WFI",
                u8::from(d.pending_last)
            );
            events.send(FIRE_EDU);
            let woken = v4::block_on(v.dbs, &waiter, WAKE_TIMEOUT);
            if woken {
                narrate!(
                    "edu raised its MSI (from cpu1): the vPE was away, so the ITS set vINTID \
                     8193 in its VPT and rang doorbell LPI {} -> taken at EL2 on cpu0, \
                     Doorbells::handle woke vPE {}'s waiter",
                    db.get(),
                    id.get()
                );
            } else {
                check!(false, "no doorbell within {WAKE_TIMEOUT:?}");
            }
            v.g4.doorbell_rang(&vm, 0);
            let ok = schedule(v, &vm, 0, 0);
            narrate!("vPE resident again (GICR_VPENDBASER.Valid=1), guest resumed after its WFI");
            ok.then_some(Flow::Continue)
        });
        events.stop();
        (r, q)
    });
    match r {
        Ok((Ok(r), q)) => {
            let d = queue_delta(q, its.queue().stats());
            narrate!(
                "guest took vINTID 8193 (edu's MSI) right after its WFI: the wake-up cost {} EL2 \
                 exit (the WFI), {} doorbell, {} ITS commands in {} CWRITER writes",
                r.exits.exits(),
                v.dbs.stats().rings,
                d.commands,
                d.cwriter_writes
            );
            check!(
                r.total == 2 && r.exits.exits() == 1 && v4::rang(id) == 1,
                "{r:?}, {} doorbells",
                v4::rang(id)
            );
        }
        other => {
            check!(false, "the guest stopped: {other:x?}");
            return;
        }
    }

    edu.ack(1);
    edu.shut_down();
    require!(deschedule(v, &vm, 0, false).is_some());
    unmap_vlpis(v, &mut dev, &vm, 1);
    unmap_vlpis(v, &mut edu_dev, &vm, 1);
    unmap_device(v.gic, dev);
    unmap_device(v.gic, edu_dev);
    destroy_vm(v, vm);
    finish_guest(g);
    mark.check_no_leak(v.gic);
    narrate!(
        "teardown: vPE non-resident, vLPIs unmapped (DISCARD), devices unmapped (MAPD V=0), VM \
         destroyed (VMAPP V=0); DMA memory back to its baseline"
    );
}
