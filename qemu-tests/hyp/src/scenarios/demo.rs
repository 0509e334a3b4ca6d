// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask demo`: narrates the platform coming up, then the physical-LPI story on the
//! driver crates (ITS probed, tables, collections, the `edu` PCI device mapped, its MSI taken
//! as an LPI at EL2). Later work extends it with the vLPI story (vPE resident, direct
//! injection without an exit, doorbell): the GIC stays up ([`GicHandle`]) for it.

use core::time::Duration;

use common::hvc_abi::{HVC_PRINT_NUM, program};
use common::{check, mmu, narrate, read_sysreg, require, sysreg};

use super::Ctx;
use crate::exits;
use crate::gic::{self, Gic, GicHandle};
use crate::pci::Edu;
use crate::smp;
use crate::vcpu::{Exit, Vcpu};

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

    let Some(_gic) = physical_lpis() else { return };

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
    edu.enable_msi(common::platform::GITS_TRANSLATER as u64, 0);
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
    if let Err(e) = its.unmap_device(dev) {
        check!(false, "unmap: {:?}", e.error);
        core::mem::forget(e.device);
    }
    Some(gic)
}
