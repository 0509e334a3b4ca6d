// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest-facing GICv3 ITS whose commands become GICv4 vLPI operations.
//!
//! A guest programs MSIs through its own ITS driver. With GICv4 the hypervisor can have the
//! physical ITS deliver those MSIs straight into the running vCPU as virtual LPIs, but only
//! if something turns the guest's view of an ITS into vLPI mappings: that is this crate.
//!
//! The hypervisor traps the guest's accesses to the ITS control frame (64 KiB) and hands
//! them to a [`Vits`]; the GITS_TRANSLATER frame is mapped through to the physical ITS, and
//! the guest's DeviceIDs of assigned devices translate to the physical ones, so device MSIs
//! need no trap. The vITS emulates the registers, reads the guest's command queue from guest
//! memory ([`GuestMemory`]) and turns each command into operations of a [`Backend`]:
//! [`VpeSchedBackend`] over the workspace's GICv4 driver, or [`Recorder`] in tests.
//!
//! # What the hypervisor implements
//!
//! [`GuestMemory`]: reads of the VM's RAM at guest-physical addresses (the guest's command
//! queue and LPI configuration table live there). The [`Backend`] is [`VpeSchedBackend`] over
//! `vpe-sched`'s GICv4 layer (see its `guide::embedding`), or your own; [`Recorder`] records
//! the operations, for tests such as the example below.
//!
//! # What the hypervisor calls
//!
//! | When | Call |
//! |---|---|
//! | VM creation | [`Vits::new`] with a [`VitsConfig`] (vCPUs, ID widths, assigned devices, pool) and the backend (for [`VpeSchedBackend`]: the VM's [`::vpe_sched::Vm`], one vPE per vCPU) |
//! | each trapped read / write of the ITS control frame | [`Vits::read`] / [`Vits::write`] (offset into the frame, 4 or 8 bytes) |
//! | a vCPU's emulated redistributor gets GICR_CTLR.EnableLPIs (or loses it) | [`Vits::set_lpi_config`] with the GICR_PROPBASER table |
//! | optionally, before resuming a vCPU | [`Vits::process`], to finish a queue left over by the work budget |
//! | VM teardown or reset | [`Vits::teardown`], then the backend's VM can be destroyed |
//!
//! vCPUs need no calls of their own: a vCPU is named by its index (its
//! GICR_TYPER.Processor_Number, GITS_TYPER.PTA = 0), and residency stays with the GICv4 layer
//! (`vpe_sched::GicV4::make_resident`). The vITS takes `&mut self`: the hypervisor serialises
//! the traps of a VM's vCPUs (a lock per VM).
//!
//! ```
//! use its_core::ids::DeviceId;
//! use vits::{AssignedDevice, DevicePool, GuestMemory, GuestMemoryError, Recorder, Vits, VitsConfig};
//!
//! /// The guest's RAM, here a buffer at guest-physical 0x4000_0000.
//! struct Ram(Vec<u8>);
//! impl GuestMemory for Ram {
//!     fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
//!         let off = gpa.checked_sub(0x4000_0000).ok_or(GuestMemoryError)? as usize;
//!         let src = self.0.get(off..off + buf.len()).ok_or(GuestMemoryError)?;
//!         buf.copy_from_slice(src);
//!         Ok(())
//!     }
//! }
//!
//! let nvme = [AssignedDevice::identity(DeviceId::new(0x8))];
//! let pool = DevicePool { first: DeviceId::new(0xf000), count: 16 };
//! let cfg = VitsConfig::new(2, 16, &nvme, pool);
//! let mut its: Vits<Recorder<64>, 8, 64, 8> = Vits::new(cfg, Recorder::new()).unwrap();
//! let ram = Ram(vec![0; 0x2_0000]);
//! // The guest probes: GITS_TYPER says physical LPIs only, RDbase = vCPU number.
//! let typer = its.read(&ram, 0x8, 8).unwrap();
//! assert_eq!(typer & 0b11, 0b01);
//! // ... then gives a 4 KiB queue at 0x4000_0000 and enables the ITS.
//! its.write(&ram, 0x80, 8, 1 << 63 | 0x4000_0000).unwrap();
//! its.write(&ram, 0x0, 4, 1).unwrap();
//! // Commands written to the queue run when it writes GITS_CWRITER (here: none).
//! its.write(&ram, 0x88, 8, 0).unwrap();
//! assert_eq!(its.read(&ram, 0x90, 8).unwrap(), 0);
//! ```
//!
//! # The guest's view (Arm IHI 0069, "The ITS control register map")
//!
//! - GITS_TYPER: Physical = 1, Virtual = 0, PTA = 0, ITT_entry_size = 8 bytes, IDbits and
//!   Devbits from the configuration, HCC = 0, CIL = 1 with CIDbits = log2(COLLECTIONS) - 1.
//! - GITS_CTLR: Enabled; Quiescent whenever disabled (commands complete inside the trapped
//!   access, nothing is ever in flight).
//! - GITS_BASER0 is the device table, GITS_BASER1 the collection table (8-byte entries):
//!   Type and Entry_Size read-only, every other field read back as written (4, 16 and 64 KiB
//!   pages, Indirect). BASER2 to 7 and every other offset are RAZ/WI. The tables' sizes bound
//!   the DeviceIDs and ICIDs accepted, but the vITS never reads or writes them: their format
//!   is IMPLEMENTATION DEFINED, and it keeps its own records (fixed capacity, no
//!   allocation). Changing a table's description (only possible while disabled) drops what
//!   it held. BASER and CBASER writes while enabled are ignored.
//! - GITS_CBASER, GITS_CWRITER, GITS_CREADR (with Stalled): writing CBASER resets CREADR;
//!   writing CWRITER (or its low half) runs the new commands; CWRITER.Retry restarts a
//!   stalled queue at the stalled command; a CWRITER beyond the queue is ignored.
//! - GITS_PIDR2 = 0x3b (GICv3), GITS_IIDR from the configuration.
//! - 32-bit accesses everywhere, 64-bit to the 64-bit registers, naturally aligned; anything
//!   else is an [`AccessError`], for the hypervisor to turn into an abort or RAZ/WI.
//!
//! # Command translation
//!
//! Commands are read with [`Command::decode_lenient`](its_core::cmd::Command::decode_lenient)
//! as GICv3 commands (reserved bits are ignored). Guest IDs are checked first; a vINTID is
//! always the guest's pINTID. "Live" below means mapped in the backend: an event is live
//! exactly when its collection is mapped (the guest may map events to a collection before
//! mapping the collection; the vLPI is mapped when the collection is).
//!
//! | Command | Backend operations |
//! |---|---|
//! | MAPD V=1 | `map_device(phys, Size+1)`; a MAPD of a mapped device first forgets its events (live ones unmapped), and maps the physical device again only if the size changes |
//! | MAPD V=0 | every live event of the device `unmap_vlpi`, then `unmap_device` |
//! | MAPC V=1 | the collection's events follow it: parked ones `map_vlpi`, live ones on another vCPU `move_vlpi` (VMOVI) |
//! | MAPC V=0 | the collection's live events `unmap_vlpi` (they are parked, and mapped again by the next MAPC V=1) |
//! | MAPTI / MAPI | `map_vlpi(vcpu of the collection, vINTID = pINTID, configuration byte read from the guest's LPI table)` if the collection is mapped |
//! | INV | reread the byte; `update_vlpi(.., inv = true)` if it differs from the backend's |
//! | INVALL | reread the bytes of the collection's live events, `update_vlpi(.., inv = false)` for those that differ, then `invall` (VINVALL) of the collection's vCPU if it has live events |
//! | DISCARD | `unmap_vlpi` if live; the event is forgotten |
//! | MOVI | `move_vlpi` (VMOVI) to the new collection's vCPU if it differs (`map_vlpi` if the event was parked) |
//! | MOVALL | nothing: pending state lives with each vLPI in its vPE's pending table and moves with it at each VMOVI, so no redistributor holds any to move |
//! | INT / CLEAR | `int` / `clear` of the live event |
//! | SYNC | nothing: every backend operation is complete when it returns (the GICv4 layer waits for the (V)SYNC of its own commands), so the effects of earlier commands are visible already |
//!
//! # Bad commands
//!
//! The architecture lets an ITS either ignore a command with an error or stall the queue
//! (GITS_CREADR.Stalled). This vITS ignores everything the guest got wrong (as QEMU's ITS
//! and KVM's vITS do, and as Linux expects: it never looks at Stalled), and stalls only when
//! it cannot do what a well-formed command asks: guest memory it cannot read, or a backend
//! failure. A stalled queue runs again after a CWRITER write with Retry = 1 (the stalled
//! command again) or a CBASER write. No error ever reaches the backend: it sees only
//! DeviceIDs assigned to the VM or from its pool, and vINTIDs within the VM's range.
//!
//! | Case | Outcome |
//! |---|---|
//! | unknown opcode; GICv4 command (GITS_TYPER.Virtual = 0) | ignored |
//! | DeviceID beyond Devbits or the device table | ignored |
//! | device not mapped (INT, CLEAR, INV, DISCARD, MOVI, MAPTI) | ignored |
//! | MAPD Size beyond IDbits | ignored |
//! | EventID beyond the device's ITT (ITT overflow) | ignored |
//! | event not mapped (INT, CLEAR, INV, DISCARD, MOVI) | ignored |
//! | MAPTI / MAPI of a mapped event (UNPREDICTABLE) | ignored, the old mapping stays |
//! | ICID beyond CIDbits or the collection table | ignored |
//! | collection not mapped (INT, CLEAR, INV, INVALL, MOVI's target) | ignored |
//! | RDbase naming no vCPU (MAPC, SYNC, MOVALL) | ignored |
//! | pINTID not an LPI of the VM (below 8192, beyond its vINTID bits) | ignored |
//! | no room: devices, events, pool DeviceIDs | ignored (the vITS's limits, reported in [`Vits::errors`]) |
//! | CWRITER beyond the queue | the write is ignored |
//! | command unreadable (CBASER at memory that is not the VM's) | stalled at that command |
//! | configuration byte unreadable (PROPBASER at memory that is not the VM's) | stalled |
//! | backend failure (e.g. the physical ITS, allocation) | stalled; its records say what the backend has, so a retry completes the command |
//!
//! A command that fails in the backend may be half done (a MAPC that moved some of its
//! events). Its records say what the backend has, so a retry finishes it; if the guest
//! abandons it instead (a GITS_CBASER write clears Stalled), the vITS finishes its effects
//! before it runs the next command, and stalls there if it cannot ([`Vits::is_consistent`]).
//!
//! Every error is counted ([`Vits::stats`]) and the last [`ERROR_LOG`] are kept
//! ([`Vits::errors`]).
//!
//! # DeviceIDs
//!
//! A guest DeviceID in the assigned table is its physical device. A DeviceID the guest makes
//! up (Linux's ITS self-tests, or a guest driver testing with INT) is backed by a physical
//! DeviceID from a pool the hypervisor reserves ([`DevicePool`]: IDs no device uses), mapped
//! in the physical ITS like an assigned device. So INT, CLEAR, INV and MOVI on it are real
//! vLPI operations, with the same pending state, priority and doorbell behaviour as a real
//! device's: emulating such devices in software would mean injecting their LPIs through list
//! registers next to directly injected ones, with a second copy of every vLPI's
//! configuration and pending state to keep coherent. The cost is an ITT per made-up device in
//! host memory; the pool size bounds it.
//!
//! # Bounded work
//!
//! A trapped access does at most [`VitsConfig::work_per_trap`] units of work (a command is
//! one, plus one per backend operation, and the command that crosses the budget completes:
//! one command can make up to ITES + 1 operations). Commands left over run at the guest's
//! next GITS_CREADR read, which it does to wait for them. The queue is a ring between CREADR
//! and CWRITER, so a hostile guest cannot make a trap loop: it gets one budget per trap.
//!
//! # Logging
//!
//! With the `log` feature: the vITS made and torn down at info; a batch left for the next
//! trap at debug; every guest command at trace; a guest's bad command (ignored or stalling)
//! at warn, with its offset and opcode: a hostile guest can make many, so rate-limit in the
//! logger.
//!
//! # Not done
//!
//! - The guest's LPI pending table (GICR_PENDBASER) is not used: the pending state of vLPIs
//!   is in the vPEs' virtual pending tables, which the GICv4 layer owns.
//! - Disabling the vITS (GITS_CTLR.Enabled = 0) keeps the mappings, and device MSIs keep
//!   arriving (the architecture drops translations while disabled).
//! - Two-level tables: the first-level entries the guest writes are not read (an ID in a
//!   second-level page the guest did not provide is accepted).
//! - GICv4.1 with DirectLPI: [`VpeSchedBackend`]'s `invall` has no redistributor to use.
#![no_std]
#![deny(missing_debug_implementations)]

mod backend;
mod config;
mod error;
use its_core::log_events as logging;
mod memory;
mod recorder;
pub mod regs;
mod soft;
mod vits;
mod vpe_sched;

pub use backend::{Backend, LpiProp, PhysEvent};
pub use config::{AssignedDevice, ConfigError, DevicePool, LpiConfigTable, VcpuId, VitsConfig};
pub use error::{AccessError, CommandError, ErrorRecord};
pub use memory::{GuestMemory, GuestMemoryError};
pub use recorder::{Mapped, Op, Recorder, RecorderError};
pub use soft::{HOST_PRIORITY, Route, SoftBackend, SoftError, SoftRoutes};
pub use vits::{DeviceView, ERROR_LOG, EventView, Stats, Vits};
pub use vpe_sched::VpeSchedBackend;
