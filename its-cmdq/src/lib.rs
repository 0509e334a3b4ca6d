// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS command queue and ITS bring-up (Arm IHI 0069, "The ITS command interface").
//!
//! - [`ring`]: pure ring arithmetic with absolute completion tickets;
//! - [`queue`]: [`CmdQueue`], the command queue: batches written contiguously with one
//!   GITS_CWRITER write, the SYNC/VSYNC each batch needs, bounded waits, GITS_CREADR.Stalled
//!   reported with the offending command and recovered by retry or skip, a trace of the last
//!   commands kept by the queue and read on demand, and safe use from several CPUs;
//! - [`tables`]: GITS_BASER tables, flat or two-level, with page-size probing;
//! - [`lpi`]: the LPI property table, the INTID allocator and redistributor bring-up;
//! - [`its`] and [`device`]: [`Its`], the ITS brought up with one collection per CPU, and
//!   devices and events mapped to physical LPIs.
//!
//! Linux posts one command at a time and waits a second for each; this queue batches, knows
//! which command failed, and never hangs. Everything here is tested on the host against the
//! model of `its-model` before it meets QEMU.
//!
//! ```no_run
//! use its_cmdq::{Its, ItsConfig, Lpis, RedistInfo};
//! use its_core::caps::DistCaps;
//! use its_core::ids::DeviceId;
//! use its_core::mmio::{ItsRegisters, RedistRegisters};
//! use its_core::platform::Platform;
//! use its_core::regs::GicdTyper;
//!
//! fn bring_up<R: ItsRegisters, D: RedistRegisters, P: Platform + Clone>(
//!     its_regs: R, rd: &mut D, rd_info: RedistInfo, platform: P,
//! ) -> Result<(), its_cmdq::ItsError> {
//!     let dist = DistCaps::from_typer(GicdTyper::from(0x037e_0208), None);
//!     let lpis = Lpis::new(&dist, platform.clone())?;
//!     let _pending = lpis.init_redistributor(rd, core::time::Duration::from_secs(1))?;
//!     let its = Its::new(its_regs, platform, &[rd_info], ItsConfig::new(dist))?;
//!     let lpi = lpis.alloc(1)?.base;
//!     lpis.configure(lpi, 0xa0, true)?;
//!     let mut dev = its.map_device(DeviceId::new(8), 4)?;
//!     its.map_event(&mut dev, 0, lpi, 0)?;
//!     its.int_event(&dev, 0)?;
//!     Ok(())
//! }
//! ```
#![no_std]
#![deny(missing_debug_implementations)]

#[cfg(any(test, loom))]
extern crate std;

pub mod device;
pub mod error;
pub mod its;
mod logging;
pub mod lpi;
pub mod queue;
pub mod ring;
mod sync;
pub mod tables;

pub use device::{Device, EventState, PhysMapping, VirtMapping};
pub use error::{ItsError, Trace, TraceEntry};
pub use its::{
    CpuTarget, Its, ItsConfig, MAX_CPUS, MAX_DEVICES, Outcome, RedistInfo, its_numbers_in_use,
};
pub use lpi::{LpiAllocator, LpiRange, Lpis, PendingTable};
pub use queue::{CmdQueue, Posted, QueueConfig, QueueStats, Recovery, SkippedCmd, SyncTarget};
pub use ring::Ticket;
pub use tables::ItsTable;
