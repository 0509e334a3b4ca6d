// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest-facing GICv3 distributor and redistributors, as pure state machines.
//!
//! An EL2 hypervisor leaves its guest's GICD and GICR frames unmapped at stage 2, so every
//! access traps as a data abort; it decodes the abort ([`trap::DataAbort`]) and hands the
//! access to a [`Vgic`]. The guest's ICC_* system registers reach the virtual CPU interface in
//! hardware, except the SGI generation registers, which trap and go to [`Vgic::sgi`].
//! Interrupts reach the guest through the list registers, driven by each vCPU's
//! [`fwd_irq::VgicCpu`]: the `Vgic` keeps what the guest programmed and feeds every change
//! into the `VgicCpu` of the vCPU that holds the interrupt. The crate touches no hardware
//! and no other CPU: what the hypervisor must do (kick a vCPU, enable, route or activate a
//! physical interrupt) comes back as [`Effects`].
//!
//! # Where to start
//!
//! **What you implement**: the traps and what the effects ask. Leave the guest's GICD and
//! GICR frames unmapped at stage 2 and give each trapped access, decoded with
//! [`trap::DataAbort::decode`], to [`Vgic::emulate`]; give trapped ICC_SGI*R_EL1 writes to
//! [`Vgic::sgi`]; hold the VM's `Vgic` under one lock; apply the [`Effects`] each call
//! returns (kick a vCPU with your IPI, write the physical distributor for forwarded SPIs).
//! Each vCPU has a [`fwd_irq::VgicCpu`] for its list registers.
//!
//! **The first calls**: [`Vgic::new`] with a [`VgicConfig`] at VM creation and
//! [`Vgic::forward_spi`] per device interrupt; [`Vgic::attach`] per vCPU on its PE; then
//! [`Vgic::sync`] before each entry. The sections below say where each call goes ("How a
//! hypervisor calls it"), how to lock ("Locking"), how to apply effects, and what is not
//! emulated; the example at the end runs on the host with `fwd-irq`'s fakes. The project's
//! hypervisor for Linux guests (`qemu-tests/hyp/src/linux` in its repository) is the worked
//! example.
//!
//! - [`Vgic`]: the distributor (SPIs, GICD_CTLR, routing) and one redistributor per vCPU
//!   (SGIs, PPIs, GICR_WAKER, the LPI registers), [`Vgic::sync`] and where state lives;
//! - [`trap`]: decoders of trapped data aborts and MSR/MRS, not tied to the GIC;
//! - [`sgi`]: ICC_SGI0R_EL1 / ICC_SGI1R_EL1 / ICC_ASGI1R_EL1 decoded;
//! - [`access`]: access sizes and how each access was handled (register, RAZ/WI and why);
//! - [`effects`]: what a call asks of the hypervisor;
//! - [`regs`]: register offsets and field values.
//!
//! References: Arm Generic Interrupt Controller Architecture Specification, GIC architecture
//! version 3 and version 4 (Arm IHI 0069): "Affinity routing", "The GIC Distributor register
//! map", "The GIC Redistributor register map", "GIC memory-mapped register access",
//! "Forwarding an SGI to a target PE", "Power management" (GICR_WAKER), "LPIs"
//! (GICR_PROPBASER, GICR_PENDBASER); Arm Architecture Reference Manual for A-profile (ESR_EL2,
//! HPFAR_EL2).
//!
//! # What the guest sees
//! A GICv3 (PIDR2.ArchRev = 3) with one Security state and affinity routing always on:
//! GICD_CTLR.DS and .ARE read as one and ignore writes, so the SGI/PPI banks of the
//! distributor, `GICD_ITARGETSR<n>`, GICD_SGIR, `GICD_IGRPMODR<n>` and `GICD_NSACR<n>` are
//! RAZ/WI. GICD_TYPER: ITLinesNumber = SPIS / 32, CPUNumber = vCPUs - 1 (at most 7), IDbits = 9
//! (or the configured LPI ID bits - 1, with LPIS = 1), MBIS = 0, No1N = 1 (no 1 of N
//! distribution, so GICD_IROUTER.Interrupt_Routing_Mode is RAZ/WI), A3V = 1 (Aff3 is
//! matched), RSS = 1 (ICC_SGI1R_EL1.RS is honoured), ESPI = NMI = DVIS = 0. Redistributors are
//! two 64 KiB frames each (stride 0x20000; GICR_TYPER.VLPIS = DirectLPI = 0, PLPIS as
//! configured, Last on the last vCPU, Processor_Number = vCPU index). Every register write
//! takes effect at once, so GICD_CTLR.RWP and GICR_CTLR.RWP/UWP read 0. Reserved and
//! unimplemented offsets are RAZ/WI and reported ([`Outcome::RazWi`]).
//!
//! # How a hypervisor calls it
//! ```text
//! VM creation:    vgic = Vgic::<MAX_VCPUS, SPIS>::new(VgicConfig::new(gicd, gicr, n)
//!                     .with_affinity(i, aff)... .with_lpis(16))?
//!                 vgic.forward_spi(33, Forward { pintid: 33, mode: Hw }, Level, &mut fx)?
//!                 (UART, PCI INTx: every forwarded SPI, before attaching vCPU 0) + apply fx
//!                 (configure those physical SPIs at the host, Group 1, trigger, priority,
//!                 and let the effects enable and route them)
//! vCPU creation:  cpu = VgicCpu::from_vtr(ich.vtr())?; VtimerFwd::new(&mut cpu, ..)?
//! (on its PE)     lock; vgic.attach(me, &mut cpu, &mut fx)?; unlock; apply fx
//! every exit:     cpu.fold_lrs(ich, phys)                                    (no lock)
//! data abort:     a = DataAbort::decode(esr, far, hpfar)?   (ISV = 0: refuse or decode)
//!                 if vgic.contains(a.ipa()):
//!                   lock; vgic.emulate(me, &mut cpu, &a, &mut x, &mut fx)?; unlock
//!                   apply fx; ELR_EL2 += a.insn_len()
//! MSR trap (0x18): if let Some(reg) = SgiRegister::from_trap(&SysRegAccess::decode(esr)?):
//!                   lock; vgic.sgi(me, &mut cpu, reg, x[rt], &mut fx)?; unlock; apply fx
//! IRQ exit:       handle_host_irq(..) as fwd-irq says; if it returns Other(intid) and intid
//!                 is a pINTID the Vgic forwards (the SPI is moving, or routed elsewhere):
//!                   lock; vgic.phys_irq(pintid, &mut fx)?; unlock; apply fx
//!                   (do not deactivate it: it stays active for the guest)
//! before entry:   kicked[me] = false; lock
//!                 while vgic.needs_sync(me) && !vgic.sync(me, &mut cpu, &mut fx)? { apply fx }
//!                 unlock; apply fx; cpu.populate_lrs(ich); enter
//!                 (the lock may be skipped when not kicked and needs_sync was false after
//!                 this vCPU's last call)
//! device model:   lock; vgic.set_level(IrqRef::Spi(v), high, &mut fx)? or pulse(..); unlock
//! ```
//!
//! # Locking
//! vCPU structs live on different physical CPUs. Two kinds of state:
//! - each vCPU's `VgicCpu` (and its list registers) belongs to that vCPU's PE and is only
//!   used there, between fold and populate: no lock;
//! - the `Vgic` is shared by the whole VM: put it behind one lock (a spin lock; every call is
//!   short and bounded by the number of interrupts) and hold it for each call above.
//!
//! No call touches another vCPU's `VgicCpu`: changes for it become mail in the `Vgic`, and a
//! kick makes it call [`Vgic::sync`] on its own PE. Keep a per-vCPU "kicked" flag that the
//! kicker sets (then sends the physical SGI or wakes the vCPU) and the owner clears *before*
//! its sync, so that no kick is lost; [`Vgic::needs_sync`] under the lock is the reference.
//!
//! # Applying effects
//! [`Vgic::read`], [`Vgic::write`], [`Vgic::emulate`], [`Vgic::sgi`], [`Vgic::attach`] and
//! [`Vgic::forward_spi`] take an [`Effects`] buffer that must be empty (an error otherwise);
//! [`Vgic::sync`], [`Vgic::phys_irq`], [`Vgic::pulse`] and [`Vgic::set_level`] add to it.
//! Apply its entries in order, then [`Effects::clear`] it:
//! - [`Effects::kicks`]: kick each vCPU (see above); kicking one that is not running or
//!   not yet started is harmless;
//! - [`Effect::SetPhysEnabled`], [`Effect::RoutePhys`]: physical distributor writes for
//!   forwarded SPIs (route to the PE that runs the named vCPU);
//! - [`Effect::SetPhysActive`]: only from [`Vgic::sync`] (or calls that end with one, on the
//!   calling vCPU): apply on this PE before entering the guest (a PPI's state is per PE);
//! - [`Effect::LpisEnabled`]: for the virtual ITS.
//!
//! # Not emulated
//! - Two Security states, Group 0 as FIQ to EL3, GICD_CTLR.ARE = 0 (legacy GICv2 mode) and
//!   the GICv2 CPU interface frames;
//! - 1 of N SPI distribution (No1N = 1), message-based SPIs (MBIS = 0), extended SPI and
//!   PPI ranges (GICv3.1), NMIs (GICv3.3), MPAM, GICD_TYPER2, status registers;
//! - LPIs themselves: the redistributor keeps GICR_CTLR.EnableLPIs, GICR_PROPBASER and
//!   GICR_PENDBASER for a virtual ITS (see [`Vgic::lpi_regs`]), but nothing reads the tables;
//!   direct LPI registers (GICR_SETLPIR, GICR_INVLPIR, GICR_SYNCR...) are RAZ/WI;
//! - GICv4 for the guest (GICR_TYPER.VLPIS = 0, no VLPI frames, GICD_TYPER.DVIS = 0);
//! - a forwarded interrupt's pending state at the physical GIC before the host took it is
//!   not shown in ISPENDR (the host takes it as soon as it fires); a forwarded interrupt's
//!   trigger is read-only; the guest's enable of a forwarded PPI is not mirrored physically;
//! - wake-up requests: an interrupt for a vCPU whose GICR_WAKER.ProcessorSleep = 1 stays
//!   pending and wakes nothing (there is no power controller);
//! - exact cross-vCPU reads: a vCPU reading another vCPU's pending or active state sees it
//!   as of that vCPU's last sync (plus the changes posted since), and kicks it so that the
//!   next read is fresh;
//! - big-endian guests (the data-abort decoder returns little-endian data).
//!
//! # Example
//! A host run with fwd-irq's fakes playing the list registers: vCPU 0 enables Group 1 at
//! the distributor through a trapped store and sends SGI 3 to vCPU 1 through a trapped
//! ICC_SGI1R_EL1 write; vCPU 1 syncs and its guest takes the SGI.
//! ```
//! use fwd_irq::fake::{FakeIch, FakePhysGic};
//! use fwd_irq::hw::IchRegs;
//! use fwd_irq::regs::IchVmcr;
//! use fwd_irq::VgicCpu;
//! use vgic::trap::{DataAbort, SysRegAccess};
//! use vgic::{AccessSize, Effects, SgiRegister, VcpuId, Vgic, VgicConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const GICD: u64 = 0x0800_0000;
//! const GICR: u64 = 0x080A_0000;
//! let mut vgic = Vgic::<2, 64>::new(VgicConfig::new(GICD, GICR, 2))?;
//! let mut fx = Effects::new();
//! let (v0, v1) = (VcpuId::new(0), VcpuId::new(1));
//! // One VgicCpu per vCPU: the 32 SGIs/PPIs plus every SPI must fit.
//! let mut ich1 = FakeIch::new(4);
//! ich1.guest_set_vmcr(IchVmcr::group1_all());
//! let mut cpu0 = VgicCpu::<96>::new(4)?;
//! let mut cpu1 = VgicCpu::<96>::from_vtr(ich1.vtr())?;
//! vgic.attach(v0, &mut cpu0, &mut fx)?;
//! vgic.attach(v1, &mut cpu1, &mut fx)?;
//!
//! // vCPU 0: `str w1, [x0]` to GICD_CTLR with w1 = EnableGrp1, a stage-2 translation fault.
//! let abort = DataAbort::decode(0x9381_0047, 0xFFFF_8000_1000_0000, GICD >> 8)?;
//! let mut x = [0u64; 31];
//! x[1] = 0b10;
//! let access = vgic.emulate(v0, &mut cpu0, &abort, &mut x, &mut fx)?;
//! assert_eq!(access.outcome, vgic::Outcome::Register);
//! assert!(fx.kicks().contains(v1)); // vCPU 1 must push its configuration again
//! fx.clear();
//!
//! // vCPU 1 wakes its redistributor and enables SGI 3 in Group 1 (its own SGI_base frame).
//! let sgi_base = GICR + 0x2_0000 + 0x1_0000;
//! vgic.write(v1, &mut cpu1, GICR + 0x2_0014, AccessSize::Word, 0, &mut fx)?; // GICR_WAKER
//! vgic.write(v1, &mut cpu1, sgi_base + 0x080, AccessSize::Word, 1 << 3, &mut fx)?;
//! vgic.write(v1, &mut cpu1, sgi_base + 0x100, AccessSize::Word, 1 << 3, &mut fx)?;
//!
//! // vCPU 0: `msr ICC_SGI1R_EL1, x2`, INTID 3, TargetList = {Aff0 1}.
//! let trap = SysRegAccess::decode(0x623A_3056).ok_or("not an MSR")?;
//! let reg = SgiRegister::from_trap(&trap).ok_or("not an SGI register")?;
//! x[2] = (3 << 24) | (1 << 1);
//! let value = trap.rt.index().map_or(0, |i| x[i]);
//! let delivered = vgic.sgi(v0, &mut cpu0, reg, value, &mut fx)?;
//! assert!(delivered.contains(v1) && fx.kicks().contains(v1));
//! fx.clear();
//!
//! // vCPU 1 was kicked: it syncs before its next entry, and its guest takes SGI 3.
//! while !vgic.sync(v1, &mut cpu1, &mut fx)? {
//!     fx.clear(); // (apply, then clear)
//! }
//! cpu1.populate_lrs(&mut ich1);
//! ich1.guest_run(&mut FakePhysGic::new(), 8, |_, _| {});
//! assert_eq!(ich1.delivered(), [3]);
//! # Ok(())
//! # }
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

pub mod access;
pub mod config;
pub mod effects;
pub mod error;
pub mod ids;
mod mmio;
pub mod regs;
pub mod sgi;
mod state;
pub mod trap;
mod vgic;

pub use access::{Access, AccessSize, Frame, Outcome, RazWi};
pub use config::{LpiConfig, VgicConfig};
pub use effects::{Effect, Effects};
pub use error::VgicError;
pub use ids::{Affinity, VcpuId, VcpuSet};
pub use sgi::{SgiRegister, SgiRequest, SgiTargets};
pub use vgic::{IrqRef, LpiRegs, Vgic, VgicStats};
