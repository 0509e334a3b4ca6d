// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS command queue and ITS bring-up (Arm IHI 0069, "The ITS command interface").
//!
//! Linux posts one command at a time and waits a second for each; this queue batches, knows
//! which command failed, and never hangs. Everything here is tested on the host against the
//! model of `its-model` before it meets QEMU.
//!
//! # Where to start
//!
//! **What you implement**: `its_core::platform`'s traits (DMA memory, cache maintenance, a
//! clock: [`Platform`](its_core::platform::Platform)), and the switch of the distributor and
//! each CPU's redistributor and CPU interface to affinity routing and Group 1 (GICD_CTLR,
//! GICR_WAKER), which belongs to your GIC code. **What you map**: the distributor, each
//! redistributor and each ITS control frame, as `safe_mmio::UniqueMmioPointer`s to
//! its-core's register blocks (their addresses come from the device tree:
//! `its_core::discover`).
//!
//! **The first calls**, once, on the boot CPU:
//! 1. [`DistCaps::from_typer`](its_core::caps::DistCaps::from_typer) with GICD_TYPER, read
//!    from the distributor's [`GicdRegs`](its_core::mmio::GicdRegs);
//! 2. [`Lpis::new`]: the LPI property table, shared by every redistributor;
//! 3. per CPU, [`Lpis::init_redistributor`]: PROPBASER, a pending table, EnableLPIs;
//! 4. per ITS, [`Its::new`] with every redistributor's [`RedistInfo`]: the ITS's tables, its
//!    command queue, one collection per CPU;
//! 5. then devices: [`Its::map_device`], an LPI from [`Lpis::alloc`] configured with
//!    [`Lpis::configure`], [`Its::map_event`].
//!
//! ```no_run
//! use core::ptr::NonNull;
//! use core::time::Duration;
//! use its_cmdq::{Its, ItsConfig, ItsError, Lpis, RedistInfo};
//! use its_core::addr::PhysAddr;
//! use its_core::caps::DistCaps;
//! use its_core::ids::DeviceId;
//! use its_core::mmio::{GicdRegs, GicrRegs, GitsRegs, RedistRegisters};
//! use its_core::platform::Platform;
//! use safe_mmio::{UniqueMmioPointer, field_shared};
//!
//! // QEMU `virt` with `gic-version=4` and one CPU (from the device tree in general).
//! const GICD: u64 = 0x0800_0000;
//! const GITS: u64 = 0x0808_0000;
//! const GICR0: u64 = 0x080a_0000; // CPU 0's redistributor: RD, SGI and VLPI frames
//!
//! fn frame<T>(pa: u64) -> NonNull<T> {
//!     NonNull::new(pa as *mut T).expect("not at address 0")
//! }
//!
//! fn bring_up<P: Platform + Clone>(platform: P) -> Result<(), ItsError> {
//!     // SAFETY: each frame is the GIC's, mapped as Device memory at its physical address,
//!     // and nothing else accesses it while the pointer lives.
//!     let gicd = unsafe { UniqueMmioPointer::new(frame::<GicdRegs>(GICD)) };
//!     // SAFETY: as above.
//!     let mut rd = unsafe { UniqueMmioPointer::new(frame::<GicrRegs>(GICR0)) };
//!     // SAFETY: as above.
//!     let gits = unsafe { UniqueMmioPointer::new(frame::<GitsRegs>(GITS)) };
//!
//!     let dist = DistCaps::from_typer(field_shared!(*gicd, typer).read(), None);
//!     let lpis = Lpis::new(&dist, platform.clone())?;
//!     let _pending = lpis.init_redistributor(&mut rd, Duration::from_secs(1))?;
//!     let redists = [RedistInfo { rd_base: PhysAddr::new(GICR0), typer: rd.typer() }];
//!     let its = Its::new(gits, platform, &redists, ItsConfig::new(dist))?;
//!
//!     // Device 8, 4 events: event 0 raises an LPI on CPU 0 (collection 0).
//!     let lpi = lpis.alloc(1)?.base;
//!     lpis.configure(lpi, 0xa0, true)?;
//!     let mut dev = its.map_device(DeviceId::new(8), 4)?;
//!     its.map_event(&mut dev, 0, lpi, 0)?;
//!     // The device's MSI writes EventID 0 to GITS_TRANSLATER; INT does the same by command.
//!     its.int_event(&dev, 0)?;
//!     Ok(())
//! }
//! ```
//!
//! The same calls run on the host against `its-model` (a dev-dependency), the model of the
//! ITS and redistributors this crate is tested against: the LPI arrives at CPU 0's
//! redistributor.
//!
//! ```
//! use core::time::Duration;
//! use its_cmdq::{Its, ItsConfig, Lpis, RedistInfo};
//! use its_core::addr::PhysAddr;
//! use its_core::caps::DistCaps;
//! use its_core::ids::DeviceId;
//! use its_core::mmio::RedistRegisters;
//! use its_core::regs::GicdTyper;
//! use its_model::{FakePlatform, GicModel, ModelConfig};
//!
//! let plat = FakePlatform::new();
//! let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
//! // The model has no distributor: GICD_TYPER as its configuration describes it.
//! let cfg = model.config();
//! let gicd_typer = GicdTyper::new()
//!     .with_lpis(true)
//!     .with_dvis(true)
//!     .with_id_bits(cfg.dist_id_bits - 1);
//! let dist = DistCaps::from_typer(gicd_typer, None);
//!
//! let lpis = Lpis::new(&dist, plat.clone())?;
//! let _pending = lpis.init_redistributor(&mut model.redist(0), Duration::from_secs(1))?;
//! let redists = [RedistInfo {
//!     rd_base: PhysAddr::new(cfg.rd_base(0)),
//!     typer: model.redist(0).typer(),
//! }];
//! let its = Its::new(model.its(0), plat.clone(), &redists, ItsConfig::new(dist))?;
//!
//! let lpi = lpis.alloc(1)?.base;
//! lpis.configure(lpi, 0xa0, true)?;
//! let mut dev = its.map_device(DeviceId::new(8), 4)?;
//! its.map_event(&mut dev, 0, lpi, 0)?;
//! its.int_event(&dev, 0)?;
//! assert_eq!(model.take_lpi(0), Some(lpi.get()));
//! model.assert_no_errors();
//! # Ok::<(), its_cmdq::ItsError>(())
//! ```
//!
//! The GICv4 layer goes on from here: [`vpe-sched`](https://docs.rs/vpe-sched), whose
//! `guide` module has the [embedding guide] (bring-up order, the vCPU run loop, teardown).
//! Concurrency: an [`Its`] is shared by CPUs (`&self`); its queue is a spinlock, so mask
//! IRQs around its calls if your interrupt handlers issue ITS commands too.
//!
//! # Modules
//! - [`ring`]: pure ring arithmetic with absolute completion tickets;
//! - [`queue`]: [`CmdQueue`], the command queue: batches written contiguously with one
//!   GITS_CWRITER write, the SYNC/VSYNC each batch needs, bounded waits, GITS_CREADR.Stalled
//!   reported with the offending command and recovered by retry or skip, a trace of the last
//!   commands in every timeout error, and safe use from several CPUs;
//! - [`tables`]: GITS_BASER tables, flat or two-level, with page-size probing;
//! - [`lpi`]: the LPI property table, the INTID allocator and redistributor bring-up;
//! - [`its`] and [`device`]: [`Its`], the ITS brought up with one collection per CPU, and
//!   devices and events mapped to physical LPIs.
//!
//! [embedding guide]: https://docs.rs/vpe-sched/latest/vpe_sched/guide/embedding/index.html
#![no_std]
#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "timeout errors carry the last commands posted by value: no allocation"
)]

#[cfg(any(test, loom))]
extern crate std;

pub mod device;
pub mod error;
pub mod its;
pub mod lpi;
pub mod queue;
pub mod ring;
mod sync;
pub mod tables;

pub use device::{Device, EventState, PhysMapping, VirtMapping};
pub use error::{ItsError, Trace, TraceEntry};
pub use its::{
    CpuTarget, Its, ItsConfig, MAX_CPUS, MAX_DEVICES, Outcome, RedistInfo, UnmapError,
    its_numbers_in_use,
};
pub use lpi::{LpiAllocator, LpiRange, Lpis, PendingTable};
pub use queue::{CmdQueue, Posted, QueueConfig, QueueStats, Recovery, SkippedCmd, SyncTarget};
pub use ring::Ticket;
pub use tables::ItsTable;
