// SPDX-License-Identifier: MIT OR Apache-2.0
//! Arm GICv3/GICv4 Interrupt Translation Service: IDs, registers and commands.
//!
//! `its-core` is the foundation of a GICv4 ITS driver for hypervisors written in Rust. It holds
//! no state and performs no I/O of its own beyond the MMIO register blocks.
//!
//! # Where to start
//!
//! **What you implement**: the [`platform`] traits, once, for your hypervisor:
//! [`DmaAlloc`](platform::DmaAlloc) (zeroed, physically contiguous memory for the GIC's tables
//! and queues, and its physical addresses), [`CacheMaint`](platform::CacheMaint) (clean to
//! the point of coherency, `DSB`) and [`Clock`](platform::Clock) (a monotonic clock: every
//! wait of the drivers is bounded by it). A type with all three is a
//! [`Platform`](platform::Platform).
//!
//! **What you map**: the GIC's frames. The drivers use the narrow register traits
//! [`ItsRegisters`](mmio::ItsRegisters) and [`RedistRegisters`](mmio::RedistRegisters), which
//! are implemented here for `safe_mmio::UniqueMmioPointer`s to the register blocks
//! [`GitsRegs`](mmio::GitsRegs) (an ITS control frame) and [`GicrRegs`](mmio::GicrRegs) (a
//! redistributor); [`GicdRegs`](mmio::GicdRegs) gives GICD_TYPER for
//! [`DistCaps`](caps::DistCaps). Where the frames are comes from the device tree
//! (`discover::GicDescription::from_fdt`, feature `fdt`).
//!
//! **Then** hand the platform and the registers to the drivers:
//! [`its-cmdq`](https://docs.rs/its-cmdq) brings the ITS and LPIs up,
//! [`vpe-sched`](https://docs.rs/vpe-sched) and [`doorbell`](https://docs.rs/doorbell) add
//! GICv4 direct injection. The [embedding guide] (`vpe_sched::guide::embedding`) walks
//! through all of it. The host implementations of the platform and register traits,
//! the test double of every crate here and of your hypervisor's host tests, are the crate
//! [`its-model`](https://docs.rs/its-model).
//!
//! ```no_run
//! use core::ptr::NonNull;
//! use its_core::caps::ItsCaps;
//! use its_core::ids::DeviceId;
//! use its_core::mmio::{GitsRegs, ItsRegisters};
//! use safe_mmio::UniqueMmioPointer;
//!
//! // QEMU `virt`'s ITS control frame (from the device tree in general).
//! let frame = NonNull::new(0x0808_0000 as *mut GitsRegs).unwrap();
//! // SAFETY: the frame is the ITS's, mapped as Device memory, and nothing else accesses it
//! // while `its` lives.
//! let its = unsafe { UniqueMmioPointer::new(frame) };
//! let caps = ItsCaps::from_typer(its.typer());
//! assert!(caps.check_device(DeviceId::new(8)).is_ok(), "DeviceID beyond GITS_TYPER.Devbits");
//! ```
//!
//! The commands the drivers write are plain values, encoded exactly and decoded back (as the
//! host model and `cargo xtask decode` do):
//!
//! ```
//! use its_core::cmd::{Command, ItsVersion};
//! use its_core::ids::{CollectionId, DeviceId, EventId, IntId};
//!
//! // Event 0 of device 8 raises LPI 8192 on collection 0.
//! let mapti = Command::Mapti {
//!     device: DeviceId::new(8),
//!     event: EventId::new(0),
//!     pintid: IntId::new(8192),
//!     icid: CollectionId::new(0),
//! };
//! let raw: [u64; 4] = mapti.encode();
//! assert_eq!(raw[0] & 0xff, 0x0a); // the MAPTI opcode
//! assert_eq!(Command::decode(&raw, ItsVersion::V4_0), Ok(mapti));
//! assert!(mapti.to_string().starts_with("MAPTI"));
//! ```
//!
//! # Modules
//! - [`ids`] and [`addr`]: identifier and physical-address newtypes with checked constructors;
//! - [`caps`]: capabilities parsed from GITS_TYPER, GICR_TYPER and GICD_TYPER, and the
//!   capability-aware checks of IDs against them;
//! - [`regs`]: register value types (Arm IHI 0069, "ITS registers", "Redistributor registers");
//! - [`mmio`]: the MMIO register blocks, accessed with single load and store instructions;
//! - [`cmd`]: every ITS command (GICv3, GICv4.0, GICv4.1) as a typed value with exact encode
//!   and decode, and a text form for disassembly;
//! - [`platform`]: the traits a hypervisor implements (DMA memory, cache maintenance, clock);
//! - `discover` (feature `fdt`): the GIC, its ITSs and the PCI `msi-map` from a device tree,
//!   without allocation.
//!
//! References: Arm Generic Interrupt Controller Architecture Specification, GIC architecture
//! version 3 and version 4 (Arm IHI 0069).
//!
//! [embedding guide]: https://docs.rs/vpe-sched/latest/vpe_sched/guide/embedding/index.html
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod addr;
pub mod caps;
pub mod cmd;
#[cfg(feature = "fdt")]
pub mod discover;
pub mod ids;
pub mod mmio;
pub mod platform;
pub mod regs;

/// The README's example, compiled and run as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
