// SPDX-License-Identifier: MIT OR Apache-2.0
//! One run of the hypervisor on the host model: boot, one guest's life, shutdown. Not glue:
//! this side plays the machine (the device's MSIs, the CPUs taking interrupts) and reads the
//! model to report what happened.

use its_cmdq::ItsError;
use its_core::cmd::Command;
use its_core::ids::{DeviceId, VpeId};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_model::{GicModel, ModelConfig, TrackedDma};

use crate::hyp::{self, CPUS, Error};
use crate::platform::ArenaDma;

/// The assigned device.
pub const DEVICE: u32 = 0x10;
/// The vINTID its event 0 becomes on vCPU 1.
pub const VINTID: u32 = 8192;

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The vLPI vCPU 1 took while resident, straight from the device's MSI.
    pub direct: Option<u32>,
    /// The physical LPI CPU 1 took while vCPU 1 was blocked, and whose vPE the IRQ hook
    /// found it to be the doorbell of.
    pub doorbell: Option<(u32, Option<VpeId>)>,
    /// Whether vCPU 1's waiter was woken.
    pub woken: bool,
    /// The vLPI vCPU 1 took once resident again.
    pub after_wake: Option<u32>,
    /// The vPE IDs of the guest.
    pub vpes: Vec<u16>,
    /// Arena pages in use: after bring-up, with the guest, after its teardown, after
    /// shutdown, and at most.
    pub pages: [usize; 5],
    /// Arena regions still allocated after shutdown.
    pub regions_left: usize,
    /// The ITS commands of the teardown and the shutdown, in order.
    pub teardown: Vec<Command>,
    /// Whether the guest's VM, device and vPEs are gone from the GIC's tables (read before
    /// the tables are freed).
    pub tables_clean: bool,
    /// After shutdown: the ITS disabled and quiescent, its queue and tables freed, LPIs off
    /// on every redistributor.
    pub its_off: bool,
    /// After shutdown.
    pub queue_and_tables_freed: bool,
    /// After shutdown, per CPU.
    pub lpis_on: [bool; CPUS],
    /// What a call on the ITS returns after shutdown.
    pub after_shutdown: Option<ItsError>,
    /// The errors the model recorded (what QEMU would log with `-d guest_errors`).
    pub model_errors: Vec<String>,
}

/// Runs it once (the drivers live in statics: once per process).
///
/// # Errors
/// The first hypervisor error.
pub fn run() -> Result<Report, Error> {
    let mut r = Report::default();
    let platform = TrackedDma::new(ArenaDma);
    let board = GicModel::with_memory(ModelConfig::qemu(CPUS), platform.clone());
    hyp::bring_up(platform, board)?;
    let gic = hyp::gic()?;
    let its = hyp::its()?;
    r.pages[0] = ArenaDma::pages_in_use();

    let mut guest = hyp::create_guest(DeviceId::new(DEVICE), VINTID)?;
    r.vpes = guest.vm.vpes().iter().map(|v| v.id().get()).collect();
    // vCPU 1 runs on CPU 1; the device's MSI (an INT here) goes straight to it.
    hyp::vcpu_load(&mut guest, 1)?;
    its.int_event(&guest.dev, 0)?;
    r.direct = gic.take_vlpi(1);
    // vCPU 1 blocks in WFI; the next MSI rings its doorbell, a physical LPI on CPU 1.
    hyp::vcpu_block(&mut guest, 1)?;
    its.int_event(&guest.dev, 0)?;
    r.doorbell = gic.take_lpi(1).map(|intid| (intid, hyp::irq(intid)));
    r.woken = hyp::vcpu_woken(&guest, 1);
    hyp::vcpu_wake(&mut guest, 1)?;
    r.after_wake = gic.take_vlpi(1);
    r.pages[1] = ArenaDma::pages_in_use();

    gic.clear_commands(0);
    hyp::destroy_guest(&mut guest)?;
    r.pages[2] = ArenaDma::pages_in_use();
    r.tables_clean = guest.vm.is_destroyed()
        && !guest.dev.is_mapped()
        && gic.dte(0, DEVICE).is_none_or(|d| !d.valid)
        && r.vpes
            .iter()
            .all(|&v| gic.vte(0, v).is_none_or(|e| !e.valid));

    hyp::shutdown()?;
    r.pages[3] = ArenaDma::pages_in_use();
    r.pages[4] = ArenaDma::peak_pages();
    r.regions_left = ArenaDma::live_regions();
    r.teardown = gic.commands(0).into_iter().map(|(_, c)| c).collect();
    let ctlr = gic.its(0).ctlr();
    r.its_off = !ctlr.enabled() && ctlr.quiescent() && its.is_shut_down();
    r.queue_and_tables_freed = its.queue().is_released() && its.device_table().is_released();
    r.lpis_on = core::array::from_fn(|cpu| gic.redist(cpu).ctlr().enable_lpis());
    r.after_shutdown = its.map_device(DeviceId::new(DEVICE), 2).err();
    r.model_errors = gic.errors().iter().map(ToString::to_string).collect();
    gic.clear_errors();
    Ok(r)
}
