// SPDX-License-Identifier: MIT OR Apache-2.0
//! Arm GICv3/GICv4 Interrupt Translation Service: IDs, registers and commands.
//!
//! `its-core` is the foundation of a GICv4 ITS driver for hypervisors written in Rust. It holds
//! no state and performs no I/O of its own beyond the MMIO register blocks:
//! - [`ids`] and [`addr`]: identifier and physical-address newtypes with checked constructors;
//! - [`caps`]: capabilities parsed from GITS_TYPER, GICR_TYPER and GICD_TYPER, and the
//!   capability-aware checks of IDs against them;
//! - [`regs`]: register value types (Arm IHI 0069, "ITS registers", "Redistributor registers");
//! - [`mmio`]: the MMIO register blocks, accessed with single load and store instructions;
//! - [`cmd`]: every ITS command (GICv3, GICv4.0, GICv4.1) as a typed value with exact encode
//!   and decode, and a text form for disassembly;
//! - [`platform`]: the traits a hypervisor implements (DMA memory, cache maintenance, clock).
//!
//! The host implementations of the platform and register traits, and the model of the ITS
//! and redistributors that every crate of the workspace tests against, are the crate
//! `its-model`.
//!
//! References: Arm Generic Interrupt Controller Architecture Specification, GIC architecture
//! version 3 and version 4 (Arm IHI 0069).
#![no_std]
#![deny(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod addr;
pub mod caps;
pub mod cmd;
#[cfg(feature = "fdt")]
pub mod discover;
pub mod ids;
mod logging;
pub mod mmio;
pub mod platform;
pub mod regs;
