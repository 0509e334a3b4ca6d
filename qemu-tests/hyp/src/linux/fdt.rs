// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's device tree, derived from the one QEMU gave the hypervisor.
//!
//! QEMU describes its machine in the device tree it puts at the start of RAM. The guest's
//! machine is that one, less what the hypervisor keeps: `guest-fdt` copies it and changes
//! only what differs ([`guest_dtb`]):
//!
//! - memory: QEMU's RAM minus the hypervisor's ([`HYP_RESERVED`]), see [`guest_memory`];
//! - CPUs: one per vCPU;
//! - `/chosen`: the kernel command line and the initramfs from the boot parameters;
//! - GIC: one redistributor region sized for the vCPUs (the virtual GICv3 has two frames per
//!   redistributor), no maintenance interrupt (the guest is not a hypervisor); the ITS and
//!   PCIe's `msi-map` kept when the guest has an ITS (`linux::its`), removed otherwise (PCIe
//!   falls back to INTx, forwarded SPIs);
//! - PSCI: kept, conduit SMC (trapped by HCR_EL2.TSC);
//! - removed: what stage 2 does not map: the platform bus, fw-cfg, flash, the virtio-mmio
//!   transports (`guest-fdt`'s defaults), the PL031 RTC and the PL061 GPIO with its power
//!   button ([`REMOVED`]); and the PMU when the hypervisor keeps it to count instructions
//!   (`Options::pmu`, [`REMOVED_WITH_PMU`]): Linux's PMU driver resets and disables the
//!   counters when it probes, and on QEMU that stops the ones reserved for EL2 too.
//!
//! The same tree tells where QEMU's GIC is (`its_core::discover`): the virtual GIC's frames go
//! at the same guest physical addresses.

use alloc::vec::Vec;

use common::platform::RAM_BASE;
use guest_fdt::{GuestPolicy, MemRegion, NodeMatch};
use its_core::discover::GicDescription;

use super::LinuxError;
use super::layout::GUEST_RAM_BASE;
use super::params::BootParams;

/// The RAM the hypervisor keeps for itself (its image, stacks, allocator, and the boot
/// parameter block): from the start of RAM to guest RAM.
pub const HYP_RESERVED: MemRegion =
    MemRegion::new(RAM_BASE as u64, GUEST_RAM_BASE - RAM_BASE as u64);

/// QEMU `virt` devices the guest must not see beyond `guest-fdt`'s defaults: stage 2 maps
/// neither the RTC nor the GPIO controller, and the power button is wired to that GPIO.
pub const REMOVED: [NodeMatch<'static>; 3] = [
    NodeMatch::Compatible("arm,pl031"),
    NodeMatch::Compatible("arm,pl061"),
    NodeMatch::Compatible("gpio-keys"),
];

/// [`REMOVED`] and the PMU: the guest's tree when the hypervisor counts instructions.
pub const REMOVED_WITH_PMU: [NodeMatch<'static>; 4] = [
    REMOVED[0],
    REMOVED[1],
    REMOVED[2],
    NodeMatch::Compatible("arm,armv8-pmuv3"),
];

/// QEMU's device tree.
pub fn host_dtb() -> Result<&'static [u8], LinuxError> {
    crate::rawmem::qemu_dtb().ok_or(LinuxError::NoHostDtb)
}

/// Where QEMU's GIC distributor and first redistributor region are.
pub fn gic_frames(host: &[u8]) -> Result<(u64, u64), LinuxError> {
    let gic = GicDescription::from_fdt(host).map_err(LinuxError::Discover)?;
    let gicr = gic
        .redistributor_regions()
        .first()
        .ok_or(LinuxError::NoHostDtb)?;
    Ok((gic.distributor().base().get(), gicr.base().get()))
}

/// The guest's RAM: QEMU's minus [`HYP_RESERVED`].
pub fn guest_memory(host: &[u8]) -> Result<Vec<MemRegion>, LinuxError> {
    guest_fdt::guest_memory(host, &[HYP_RESERVED]).map_err(LinuxError::Fdt)
}

/// The guest's device tree for `vcpus` vCPUs and the boot parameters `params`, with the ITS
/// or without, with the PMU or without (see the module documentation).
pub fn guest_dtb(
    host: &[u8],
    memory: &[MemRegion],
    vcpus: usize,
    params: &BootParams,
    its: bool,
    pmu: bool,
) -> Result<Vec<u8>, LinuxError> {
    let remove: &[NodeMatch<'static>] = if pmu { &REMOVED } else { &REMOVED_WITH_PMU };
    let mut policy = GuestPolicy::new(memory, vcpus)
        .with_bootargs(params.bootargs())
        .with_its(its)
        .with_remove(remove);
    if let Some(initrd) = params.initrd {
        policy = policy.with_initrd(MemRegion::new(initrd.addr, initrd.size));
    }
    guest_fdt::derive(host, &policy).map_err(LinuxError::Fdt)
}
