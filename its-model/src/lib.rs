// SPDX-License-Identifier: MIT OR Apache-2.0
//! A host model of Arm GICv4 ITSs and redistributors, with a fake platform, to test GIC
//! drivers against on the host.
//!
//! What it models ([`GicModel`]): one or more ITSs and their redistributors as QEMU's
//! GICv4.0 model behaves (`-M virt,gic-version=4`), and the GICv4.1 capabilities and layouts
//! on request. The driver sees them through [`ItsHandle`] and [`RedistHandle`], which
//! implement `its_core::mmio::ItsRegisters` and `RedistRegisters`: the command queue runs on
//! GITS_CWRITER writes; the device, collection and vPE tables, ITTs and pending tables live
//! in the driver's memory and are read and written there; physical and virtual LPIs become
//! pending, are delivered to the resident vPE or ring its doorbell. Every error QEMU would log
//! with `-d guest_errors` is recorded ([`GicModel::errors`]), and so are driver bugs QEMU lets
//! pass. Faults can be injected: a stall at a given command, an ITS that is slow or dies,
//! non-shareable read-back, refused page sizes, slow GICR_WAKER, RWP, SYNCR and Dirty.
//!
//! The platform ([`FakePlatform`], [`FakeClock`]) implements the `its_core::platform` traits:
//! DMA memory with fake physical addresses (so a driver that hands the GIC a host pointer, or
//! memory it freed, is caught), the point-of-coherency view a missing cache clean leaves
//! stale, a clock that steps on every read (bounded waits end, deterministically), a log of
//! allocations, writes, cache maintenance and register writes ([`Event`]), and allocation
//! failures on request ([`AllocFaults`]).
//!
//! The crates of this project test against it; a hypervisor that embeds them can use it as
//! the test double of its own GIC code in its host tests:
//!
//! ```
//! use its_core::mmio::{ItsRegisters, RedistRegisters};
//! use its_model::{FakePlatform, GicModel, ModelConfig};
//!
//! let plat = FakePlatform::new();
//! let model = GicModel::new(ModelConfig::qemu(2), plat.clone());
//! let its = model.its(0); // ITS 0's registers, for the driver under test
//! let rd = model.redist(1); // CPU 1's redistributor
//! assert!(its.typer().virtual_lpis());
//! assert!(rd.typer().vlpis());
//! // ... bring the driver up on `its`, `rd` and `plat`, exercise it, then:
//! model.assert_no_errors();
//! assert_eq!(plat.live_bytes(), 0);
//! ```
//!
//! Where to start: put `its-model` under `[dev-dependencies]`; [`FakePlatform::new`], then
//! [`GicModel::new`] with a [`ModelConfig`]; give [`GicModel::its`] and [`GicModel::redist`]
//! to your code as its ITS and redistributor registers and the platform as its
//! `its_core::platform::Platform`, as the front pages of `its-cmdq`, `vpe-sched` and
//! `doorbell` do; end with [`GicModel::assert_no_errors`]. The embedding guide of `vpe-sched`
//! ([`guide::embedding`][guide], section 10) shows a hypervisor's host tests on it.
//!
//! # Presets
//! [`ModelConfig::qemu`] behaves as QEMU's model; [`ModelConfig::hardware`] (or
//! [`ModelConfig::harden`] on any shape) is as strict as the architecture where hardware is
//! stricter than QEMU ([`Strict`]): configuration caches, VMOVP with ITSLists, VMAPP Alloc,
//! vPE table sharing, RES0 by command form, IDAI and PendingLast.
//!
//! # Memory
//! The model reads the driver's memory through [`GicMemory`]: [`FakePlatform`], or any
//! allocator wrapped in [`TrackedDma`] ([`GicModel::with_memory`]). Errors nobody looked at
//! fail the test when the last handle to the model is dropped
//! ([`ModelConfig::check_errors_on_drop`]).
//!
//! It is a host crate (it needs `std`), for tests only. With the `log` feature, each error it
//! records is logged at warn and each ITS command it runs at trace.
//!
//! [guide]: https://docs.rs/vpe-sched/latest/vpe_sched/guide/embedding/index.html
#![deny(missing_debug_implementations)]

mod memory;
mod model;
mod platform;

pub use memory::{GicMemory, TrackedDma};
pub use model::{
    CteView, Delay, DteView, GicModel, IteView, ItsHandle, ModelConfig, ModelError, PageSizes,
    RedistHandle, Strict, VteView,
};
pub use platform::{AllocFaults, Event, FakeClock, FakePlatform, MemFault, Observer, View};
