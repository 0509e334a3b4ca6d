// SPDX-License-Identifier: MIT OR Apache-2.0
//! Physical LPIs through the ITS, taken at EL2: INT, a CPU store to GITS_TRANSLATER, a real PCI
//! device's MSI, MOVI between CPUs, DISCARD, and the enable bit with INV / INVALL.
//!
//! Each scenario brings the GIC up with the driver crates ([`crate::gic`]), checks the effect
//! it is about (which LPI is taken, on which CPU, how many times), checks that no other IRQ
//! arrived, then unmaps its devices and checks that the DMA memory came back. QEMU does not
//! report bad commands except in its `-d guest_errors` log, so the runner also fails any
//! scenario whose log has a line it did not declare.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use common::{check, println, report, require};
use its_cmdq::{ItsError, LpiRange};
use its_core::ids::Lpi;

use super::Ctx;
use super::support::{
    LPI_TIMEOUT, MemMark, check_taken, check_total, cpu1_take_one, map_device, queue_delta,
    up_default,
};
use crate::gic::{self, Gic, HwDevice};
use crate::gic_hw;
use crate::pci::Edu;
use crate::smp;

/// How long a work item posted to CPU1 may take.
const CPU1_TIMEOUT: Duration = Duration::from_secs(2);

/// Unmaps `dev` (DISCARD of its events, MAPD V=0) and frees `lpis`, recording failures.
fn tear_down(gic: &Gic, mut dev: HwDevice, lpis: &[LpiRange]) {
    if let Err(e) = gic.its().unmap_device(&mut dev) {
        check!(false, "unmap_device: {:?}", e);
        core::mem::forget(dev);
    }
    for &r in lpis {
        check!(gic.lpis().free(r).is_ok(), "LPIs {r:?} not freed");
    }
}

fn map_lpi(gic: &Gic, dev: &mut HwDevice, event: u32, cpu: usize) -> Option<Lpi> {
    match gic.map_new_lpi(dev, event, cpu) {
        Ok(l) => Some(l),
        Err(e) => {
            check!(false, "mapping event {event} on cpu{cpu}: {e}");
            None
        }
    }
}

fn range(lpi: Lpi) -> LpiRange {
    LpiRange {
        base: lpi,
        count: 1,
    }
}

/// MAPD, MAPC (at bring-up), MAPTI, INT: the LPI is taken at EL2 with the right INTID, exactly
/// once. Two INTs while IRQs are masked leave one pending LPI, taken once.
pub fn lpi_int(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    let mark = MemMark::now(&gic);
    let Some(mut dev) = map_device(&gic, 0x10, 4) else {
        return;
    };
    let Some(lpi) = map_lpi(&gic, &mut dev, 1, 0) else {
        return;
    };
    println!(
        "lpi_int: DeviceID 0x10 event 1 -> LPI {} on cpu0",
        lpi.get()
    );

    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(false),
        "pending before INT"
    );
    check!(
        gic_hw::hppir() == gic_hw::SPURIOUS,
        "HPPIR1 {} before INT",
        gic_hw::hppir()
    );
    let stats = gic.its().queue().stats();
    require!(gic.its().int_event(&dev, 1).is_ok(), "INT refused");
    let d = queue_delta(stats, gic.its().queue().stats());
    check!(
        d.commands == 2 && d.cwriter_writes == 1,
        "INT posted {} commands in {} CWRITER writes (expected INT + SYNC in one)",
        d.commands,
        d.cwriter_writes
    );
    // IRQs are masked: the LPI waits, pending, in the table and at the CPU interface.
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(true),
        "not pending after INT"
    );
    check!(
        gic_hw::hppir() == lpi.get(),
        "HPPIR1 {} after INT, expected {}",
        gic_hw::hppir(),
        lpi.get()
    );

    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, lpi, 1);
    check_total(1);
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(false),
        "still pending after ack"
    );
    check!(exit_free(), "EL2 exits counted without a guest");

    // Two INTs while masked: one pending LPI, one delivery (LPIs are edge, pending is a bit).
    require!(gic.its().int_event(&dev, 1).is_ok());
    require!(gic.its().int_event(&dev, 1).is_ok());
    gic::take_irqs(2, LPI_TIMEOUT);
    check_taken(0, lpi, 2);
    check_total(2);

    tear_down(&gic, dev, &[range(lpi)]);
    mark.check_no_leak(&gic);
}

/// No guest runs here: LPIs must arrive as EL2 IRQs, never as exits.
fn exit_free() -> bool {
    crate::exits::snapshot().exits() == 0
}

/// The EventID a work item on CPU1 stores to GITS_TRANSLATER.
static CPU1_EVENT: AtomicU32 = AtomicU32::new(0);

fn cpu1_translater_write(_cpu: usize) -> u64 {
    gic::translater_write(CPU1_EVENT.load(Ordering::Acquire));
    0
}

/// A CPU store to GITS_TRANSLATER (0x0809_0040): the ITS translates it with the store's
/// requester ID as DeviceID and the stored value as EventID.
///
/// Observed on QEMU 7.2: a store from either CPU carries DeviceID 0 (CPU accesses have
/// requester ID 0 in QEMU's memory transactions; it is not the CPU index). DeviceIDs 0 and 1
/// are both mapped, to different LPIs, so a store that carried 1 would show as the other LPI
/// rather than as a guest error.
pub fn lpi_translater(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    require!(gic.cpus >= 2, "needs 2 CPUs, have {}", gic.cpus);
    require!(
        smp::start(1, Duration::from_secs(1)).is_ok(),
        "cpu1 did not start"
    );
    let mark = MemMark::now(&gic);
    let Some(mut dev0) = map_device(&gic, 0, 2) else {
        return;
    };
    let Some(mut dev1) = map_device(&gic, 1, 2) else {
        return;
    };
    let Some(l0) = map_lpi(&gic, &mut dev0, 0, 0) else {
        return;
    };
    let Some(l0e1) = map_lpi(&gic, &mut dev0, 1, 0) else {
        return;
    };
    let Some(l1) = map_lpi(&gic, &mut dev1, 0, 0) else {
        return;
    };
    let which = |expect_event: u32| -> Option<u32> {
        // The DeviceID whose LPI (for EventID `expect_event`) fired.
        let (a, b) = match expect_event {
            0 => (gic::taken(0, l0), gic::taken(0, l1)),
            _ => (gic::taken(0, l0e1), 0),
        };
        match (a, b) {
            (1, 0) => Some(0),
            (0, 1) => Some(1),
            _ => None,
        }
    };

    // From CPU0: EventID 1, then EventID 0.
    gic::translater_write(1);
    gic::take_irqs(1, LPI_TIMEOUT);
    let cpu0_e1 = which(1);
    check!(
        cpu0_e1 == Some(0),
        "CPU0 store of EventID 1: DeviceID {cpu0_e1:?}"
    );
    gic::reset_counts();
    gic::translater_write(0);
    gic::take_irqs(1, LPI_TIMEOUT);
    let cpu0 = which(0);
    check!(
        cpu0 == Some(0),
        "CPU0 store of EventID 0: DeviceID {cpu0:?}"
    );
    check_total(1);

    // From CPU1 (the LPIs still target CPU0's collection, so CPU0 takes them).
    gic::reset_counts();
    CPU1_EVENT.store(0, Ordering::Release);
    let r = smp::run_on(1, cpu1_translater_write, CPU1_TIMEOUT);
    check!(r.is_ok(), "cpu1 work: {r:?}");
    gic::take_irqs(1, LPI_TIMEOUT);
    let cpu1 = which(0);
    check!(
        cpu1 == Some(0),
        "CPU1 store of EventID 0: DeviceID {cpu1:?}"
    );
    check_total(1);
    println!(
        "lpi_translater: a CPU store to GITS_TRANSLATER carries DeviceID {} (cpu0) / {} (cpu1)",
        cpu0.map_or(-1, i64::from),
        cpu1.map_or(-1, i64::from)
    );
    report::metrics(&[
        ("translater_devid_cpu0", cpu0.map_or(u64::MAX, u64::from)),
        ("translater_devid_cpu1", cpu1.map_or(u64::MAX, u64::from)),
    ]);

    tear_down(&gic, dev0, &[range(l0), range(l0e1)]);
    tear_down(&gic, dev1, &[range(l1)]);
    mark.check_no_leak(&gic);
}

/// QEMU's `edu` PCI device raises MSIs at GITS_TRANSLATER: found in ECAM, BAR0 assigned, MSI
/// programmed with the EventID as data, mapped with DeviceID = its requester ID. Each raise is
/// one LPI at EL2; changing the MSI data changes the event, hence the LPI.
pub fn lpi_edu_msi(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    let mark = MemMark::now(&gic);
    let edu = match Edu::probe() {
        Ok(e) => e,
        Err(e) => {
            check!(false, "edu: {e:?}");
            return;
        }
    };
    let rid = edu.bdf.requester_id();
    println!(
        "lpi_edu_msi: edu at {:02x}:{:02x}.{} (requester ID {rid:#x}), id {:#010x}, BAR0 {:#x} \
         ({} KiB)",
        edu.bdf.bus,
        edu.bdf.dev,
        edu.bdf.func,
        edu.id(),
        edu.bar0,
        edu.bar0_size >> 10
    );
    report::metrics(&[
        ("edu_requester_id", rid.into()),
        ("edu_dev", edu.bdf.dev.into()),
    ]);
    // QEMU virt puts the first -device at 00:01.0.
    check!(
        rid == 0x8,
        "edu requester ID {rid:#x}, expected 0x8 (00:01.0)"
    );

    let Some(mut dev) = map_device(&gic, rid, 4) else {
        return;
    };
    let Some(l2) = map_lpi(&gic, &mut dev, 2, 0) else {
        return;
    };
    let Some(l3) = map_lpi(&gic, &mut dev, 3, 0) else {
        return;
    };

    edu.enable_msi(crate::gic_hw::get().translater_addr(), 2);
    let msi = edu.msi();
    check!(
        msi == (crate::gic_hw::get().translater_addr(), 2, true),
        "MSI capability reads {msi:x?}"
    );

    // Raise with status 0x1: one MSI, EventID 2.
    edu.raise(0x1);
    check!(
        edu.irq_status() == 0x1,
        "edu status {:#x}",
        edu.irq_status()
    );
    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, l2, 1);
    check_total(1);
    edu.ack(0x1);
    check!(
        edu.irq_status() == 0,
        "edu status {:#x} after ack",
        edu.irq_status()
    );

    // Again with another status: another MSI (edge), the same LPI.
    edu.raise(0x100);
    gic::take_irqs(2, LPI_TIMEOUT);
    check_taken(0, l2, 2);
    edu.ack(0x100);

    // MSI data 3: EventID 3, the other LPI.
    edu.enable_msi(crate::gic_hw::get().translater_addr(), 3);
    edu.raise(0x4);
    gic::take_irqs(3, LPI_TIMEOUT);
    check_taken(0, l3, 1);
    check_taken(0, l2, 2);
    check_total(3);
    edu.ack(0x4);
    check!(
        edu.irq_status() == 0,
        "edu status {:#x} at the end",
        edu.irq_status()
    );

    edu.shut_down();
    tear_down(&gic, dev, &[range(l2), range(l3)]);
    mark.check_no_leak(&gic);
}

fn cpu1_quiet(_cpu: usize) -> u64 {
    gic::irqs_during(gic::QUIET)
}

/// MOVI to CPU1's collection: the next INT is taken on CPU1, not CPU0. MOVI of a pending LPI
/// moves its pending state to the new redistributor.
pub fn lpi_movi_smp(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    require!(gic.cpus >= 2, "needs 2 CPUs, have {}", gic.cpus);
    require!(
        smp::start(1, Duration::from_secs(1)).is_ok(),
        "cpu1 did not start"
    );
    let mark = MemMark::now(&gic);
    let Some(mut dev) = map_device(&gic, 0x20, 2) else {
        return;
    };
    let Some(lpi) = map_lpi(&gic, &mut dev, 0, 0) else {
        return;
    };
    let its = gic.its();

    // On CPU0 first.
    require!(its.int_event(&dev, 0).is_ok());
    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, lpi, 1);

    // MOVI to CPU1, INT: CPU0 sees nothing, CPU1 takes it.
    require!(
        its.move_event(&mut dev, 0, 1).is_ok(),
        "MOVI to cpu1 refused"
    );
    check!(dev.event(0).ok().and_then(|s| s.phys).map(|p| p.cpu) == Some(1));
    require!(its.int_event(&dev, 0).is_ok());
    check!(
        gic.lpi_pending_in_table(1, lpi) == Some(true),
        "not pending at cpu1"
    );
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(false),
        "pending at cpu0"
    );
    check!(
        gic::irqs_during(gic::QUIET) == 0,
        "cpu0 took an IRQ meant for cpu1"
    );
    let r = smp::run_on(1, cpu1_take_one, CPU1_TIMEOUT);
    check!(r == Ok(1), "cpu1 took {r:?} IRQs, expected 1");
    check_taken(1, lpi, 1);
    check_taken(0, lpi, 1);

    // INT while on CPU1 (CPU1 idles with IRQs masked: it stays pending there), then MOVI back
    // to CPU0: the pending state moves with it.
    require!(its.int_event(&dev, 0).is_ok());
    check!(
        gic.lpi_pending_in_table(1, lpi) == Some(true),
        "not pending at cpu1"
    );
    require!(
        its.move_event(&mut dev, 0, 0).is_ok(),
        "MOVI to cpu0 refused"
    );
    check!(
        gic.lpi_pending_in_table(1, lpi) == Some(false),
        "pending left at cpu1"
    );
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(true),
        "pending not moved to cpu0"
    );
    let r = smp::run_on(1, cpu1_quiet, CPU1_TIMEOUT);
    check!(r == Ok(0), "cpu1 took {r:?} IRQs after MOVI away");
    gic::take_irqs(3, LPI_TIMEOUT);
    check_taken(0, lpi, 2);
    check_taken(1, lpi, 1);
    check_total(3);

    tear_down(&gic, dev, &[range(lpi)]);
    mark.check_no_leak(&gic);
}

/// DISCARD clears a pending LPI and removes the mapping: nothing is delivered afterwards, the
/// driver refuses INT on the discarded event (EventNotMapped) without posting anything, and
/// a fresh mapping of the same event delivers exactly once (the old pending state is gone).
pub fn lpi_discard(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    let mark = MemMark::now(&gic);
    let Some(mut dev) = map_device(&gic, 0x21, 2) else {
        return;
    };
    let Some(lpi) = map_lpi(&gic, &mut dev, 0, 0) else {
        return;
    };
    let its = gic.its();

    require!(its.int_event(&dev, 0).is_ok());
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(true),
        "not pending after INT"
    );
    check!(
        gic_hw::hppir() == lpi.get(),
        "HPPIR1 {} after INT",
        gic_hw::hppir()
    );
    require!(its.unmap_event(&mut dev, 0).is_ok(), "DISCARD refused");
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(false),
        "DISCARD left it pending"
    );
    check!(
        gic_hw::hppir() == gic_hw::SPURIOUS,
        "HPPIR1 {} after DISCARD",
        gic_hw::hppir()
    );

    let stats = its.queue().stats();
    let r = its.int_event(&dev, 0);
    check!(
        matches!(
            r,
            Err(ItsError::EventNotMapped {
                device: 0x21,
                event: 0
            })
        ),
        "INT on a discarded event: {r:?}"
    );
    check!(
        its.queue().stats() == stats,
        "a refused INT reached the queue"
    );
    check!(
        gic::irqs_during(gic::QUIET) == 0,
        "an IRQ arrived after DISCARD"
    );
    check_total(0);

    // Map it again: one INT, one delivery.
    require!(its.map_event(&mut dev, 0, lpi, 0).is_ok(), "remap refused");
    require!(its.int_event(&dev, 0).is_ok());
    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, lpi, 1);
    check_total(1);

    tear_down(&gic, dev, &[range(lpi)]);
    mark.check_no_leak(&gic);
}

/// The enable bit in the property table, made visible with INV (and INVALL): disabled, an INT
/// leaves the LPI pending but undelivered; enabled again, the pending LPI is delivered once.
pub fn lpi_disable_inv(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    let mark = MemMark::now(&gic);
    let Some(mut dev) = map_device(&gic, 0x22, 2) else {
        return;
    };
    let Some(lpi) = map_lpi(&gic, &mut dev, 0, 0) else {
        return;
    };
    let (its, lpis) = (gic.its(), gic.lpis());
    let prio = its_cmdq::lpi::DEFAULT_PRIORITY;

    // Disabled + INV: INT makes it pending, nothing is delivered.
    require!(lpis.configure(lpi, prio, false).is_ok());
    check!(
        lpis.property(lpi).is_ok_and(|b| b & 1 == 0),
        "enable bit still set"
    );
    require!(its.inv_event(&dev, 0).is_ok(), "INV refused");
    require!(its.int_event(&dev, 0).is_ok());
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(true),
        "not pending while disabled"
    );
    check!(
        gic_hw::hppir() == gic_hw::SPURIOUS,
        "HPPIR1 {} while disabled",
        gic_hw::hppir()
    );
    check!(
        gic::irqs_during(gic::QUIET) == 0,
        "delivered while disabled"
    );

    // Enabled + INV: the pending LPI is delivered, once.
    require!(lpis.configure(lpi, prio, true).is_ok());
    require!(its.inv_event(&dev, 0).is_ok(), "INV refused");
    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, lpi, 1);
    check_total(1);
    check!(
        gic.lpi_pending_in_table(0, lpi) == Some(false),
        "still pending"
    );

    // The same with INVALL on CPU0's collection.
    require!(lpis.configure(lpi, prio, false).is_ok());
    require!(its.invall(0).is_ok(), "INVALL refused");
    require!(its.int_event(&dev, 0).is_ok());
    check!(
        gic::irqs_during(gic::QUIET) == 0,
        "delivered while disabled (INVALL)"
    );
    require!(lpis.configure(lpi, prio, true).is_ok());
    require!(its.invall(0).is_ok(), "INVALL refused");
    gic::take_irqs(2, LPI_TIMEOUT);
    check_taken(0, lpi, 2);
    check_total(2);

    tear_down(&gic, dev, &[range(lpi)]);
    mark.check_no_leak(&gic);
}
