// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarded physical interrupts via GICv3 list registers: HW bit, level, timer.
//!
//! Not every interrupt a guest needs is an LPI the ITS can inject directly. The architected
//! timer and wired PPIs/SPIs reach a guest through the list registers of the GIC's virtual
//! CPU interface. With the HW bit set, the guest's deactivation of the virtual interrupt
//! deactivates the physical one, so the hypervisor is not involved at EOI. This crate holds
//! the host-side pieces an EL2 hypervisor needs for that, none of which allocates:
//!
//! - [`regs`]: value types of `ICH_LR<n>_EL2`, ICH_HCR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2,
//!   ICH_ELRSR_EL2, ICH_EISR_EL2, ICH_MISR_EL2, `ICH_AP{0,1}R<n>_EL2`, ICC_CTLR_EL1 and the
//!   timer control registers;
//! - [`hw`]: the narrow traits the algorithms run against ([`hw::IchRegs`],
//!   [`hw::PhysIrqState`], [`hw::HostCpuIf`], [`hw::VtimerRegs`], [`hw::HostTimer`]), with
//!   aarch64 system-register implementations in [`arch`] and a GIC MMIO one in [`mmio`];
//! - [`vgic`]: [`VgicCpu`], the per-vCPU interrupt table (vINTID <-> pINTID, edge or level,
//!   HW or EOI-maintenance forwarding) and the list-register algorithms: populate before
//!   entry, fold after exit, overflow through maintenance interrupts;
//! - [`timer`]: [`VtimerFwd`], the virtual timer forwarded with EOImode = 1 and saved only on
//!   vCPU put/load, with a host timer for vCPUs blocked in WFI;
//! - [`host_irq`]: the physical-IRQ path (acknowledge, priority drop, forward);
//! - `fake` (feature `fakes`): host fakes of all traits; the ICH fake plays the guest.
//!
//! # Where to start
//!
//! **What you implement**: nothing for the GIC. The [`hw`] traits are implemented for the
//! system registers at EL2 (`arch::aarch64`: `IchSysRegs`, `IccSysRegs`, `VtimerSysRegs`,
//! `HypTimer`, built for aarch64 targets only; docs.rs documents this crate for
//! `aarch64-unknown-none`) and for the distributor and redistributor frames
//! ([`mmio::GicIrqState`]). Your part is the EL2 set-up (HCR_EL2.IMO/FMO, TWI, the PPIs
//! enabled) and one call at each point of your vCPU loop: the table under "How an EL2
//! hypervisor calls it", then the example on the system registers. For host tests, the
//! feature `fakes` (it needs `std`, so it is not on docs.rs) gives a fake of every trait,
//! the ICH fake playing the guest: the front page of the crate `vgic` runs one. The
//! project's QEMU test hypervisor drives this crate in six scenarios, described with their
//! measurements in its `docs/fwd-irq-qemu.md`.
//!
//! References: Arm Generic Interrupt Controller Architecture Specification, GIC architecture
//! version 3 and version 4 (Arm IHI 0069): "Virtual interrupt handling and prioritization",
//! "Maintenance interrupts", "GIC System register descriptions" (ICH_* and ICC_CTLR_EL1);
//! Arm Architecture Reference Manual, "The Generic Timer in AArch64 state".
//!
//! # How an EL2 hypervisor calls it
//! ```text
//! boot, per PE:     enable_split_eoi(icc)                 ICC_CTLR_EL1.EOImode = 1
//!                   enable PPIs 25 (maintenance), 26 (host timer), 27 (vtimer) at the GICR
//!                   HCR_EL2.IMO = FMO = 1, TWI = 1 (trap WFI)
//! vCPU create:      VgicCpu::from_vtr(ich.vtr()), VtimerFwd::new(&mut vgic, ..),
//!                   vgic.map(vintid, cfg, Forward { pintid, mode: FwdMode::Hw }) per device
//! vCPU load:        vgic.restore_cpuif(ich); vtimer.vcpu_load(timer, phys, vgic)
//! every entry:      vgic.populate_lrs(ich)
//! every exit:       vgic.fold_lrs(ich, phys)              first, before anything else
//! IRQ exit:         handle_host_irq(icc, vgic, Some(vtimer), host_timer, HostPpis::BSA)
//!                   (maintenance IRQ: nothing more, fold did it; Other(i): handle, icc.deactivate(i))
//!                   or handle_acked_irq(.., intid) if the exception vector already
//!                   acknowledged and priority-dropped it
//! WFI exit:         if vgic.has_pending() { re-enter } else match vtimer.vcpu_block(..) {
//!                     Expired => vtimer.vcpu_unblock(..), re-enter
//!                     Armed/NoDeadline => wait for an IRQ; on HostIrq::HostTimer { woke: true }
//!                                         or any other wake-up: vtimer.vcpu_unblock(..) }
//! vCPU put:         vgic.save_cpuif(ich); vtimer.vcpu_put(timer, phys)
//! ```
//!
//! # Example
//! ```no_run
//! # #[cfg(target_arch = "aarch64")]
//! # fn main() -> Result<(), fwd_irq::FwdError> {
//! use fwd_irq::arch::aarch64::{HypTimer, IccSysRegs, IchSysRegs, VtimerSysRegs};
//! use fwd_irq::hw::IchRegs;
//! use fwd_irq::mmio::{GicIrqState, IrqStateRegs};
//! use fwd_irq::{FwdMode, HostPpis, VgicCpu, VtimerConfig, VtimerFwd};
//! use core::ptr::NonNull;
//! use safe_mmio::UniqueMmioPointer;
//!
//! // SAFETY: this code runs at EL2 with ICC_SRE_EL2.SRE = 1 and HCR_EL2.E2H = 0, and owns
//! // this PE's virtual CPU interface, CPU interface, virtual timer and EL2 timer.
//! let (mut ich, mut icc, mut timer, mut host_timer) = unsafe {
//!     (IchSysRegs::new(), IccSysRegs::new(), VtimerSysRegs::new(), HypTimer::new())
//! };
//! // SAFETY: QEMU virt maps GICD at 0x0800_0000 and the first redistributor at 0x080A_0000
//! // (its SGI_base frame 64 KiB above), identity-mapped as Device memory, used only here.
//! let mut phys = unsafe {
//!     GicIrqState::new(
//!         UniqueMmioPointer::<IrqStateRegs>::new(NonNull::new(0x0800_0000 as *mut _).unwrap()),
//!         UniqueMmioPointer::<IrqStateRegs>::new(NonNull::new(0x080B_0000 as *mut _).unwrap()),
//!     )
//! };
//! fwd_irq::host_irq::enable_split_eoi(&mut icc);
//!
//! let mut vgic = VgicCpu::<32>::from_vtr(ich.vtr())?;
//! let mut vtimer = VtimerFwd::new(&mut vgic, VtimerConfig::bsa(FwdMode::Hw))?;
//! vgic.restore_cpuif(&mut ich);
//! vtimer.vcpu_load(&mut timer, &mut phys, &mut vgic);
//! loop {
//!     vgic.populate_lrs(&mut ich);
//!     // ... enter the guest; it exits with an IRQ ...
//!     vgic.fold_lrs(&mut ich, &mut phys);
//!     fwd_irq::host_irq::handle_host_irq(
//!         &mut icc, &mut vgic, Some(&mut vtimer), &mut host_timer, HostPpis::BSA,
//!     );
//! }
//! # }
//! # #[cfg(not(target_arch = "aarch64"))]
//! # fn main() {}
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "fakes"))]
extern crate std;

pub mod arch;
pub mod error;
pub mod host_irq;
pub mod hw;
pub mod ids;
pub mod mmio;
pub mod regs;
pub mod timer;
pub mod vgic;

#[cfg(any(test, feature = "fakes"))]
#[cfg_attr(docsrs, doc(cfg(feature = "fakes")))]
pub mod fake;

#[cfg(test)]
mod tests;

pub use error::FwdError;
pub use host_irq::{HostIrq, HostPpis, handle_acked_irq, handle_host_irq};
pub use ids::{LrIndex, PIntId, VIntId};
pub use regs::{IchLr, LrState};
pub use timer::{BlockOutcome, VtimerConfig, VtimerFwd};
pub use vgic::{Forward, FwdMode, Trigger, VgicCpu, VirqConfig};
