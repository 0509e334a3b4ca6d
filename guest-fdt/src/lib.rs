// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest's flattened device tree, derived from the host's own.
//!
//! A hypervisor that boots an unmodified Linux at EL1 with an identity stage 2 hands it the
//! machine's own device tree, changed where the guest's machine differs. [`derive()`] takes the
//! host's blob and a [`GuestPolicy`] and writes the guest's:
//!
//! - **memory**: one memory node with the policy's ranges (the host's memory minus the
//!   hypervisor's own; [`guest_memory`] computes them), checked to be host memory;
//! - **CPUs**: the first [`GuestPolicy::vcpus`] CPU nodes of `/cpus`; the others go, with
//!   their `cpu-map` entries and any `cpu-map` node left empty;
//! - **`/chosen`**: `bootargs` and `linux,initrd-start`/`-end` from the policy (the host's
//!   are removed when the policy has none); `stdout-path` and the rest are kept;
//! - **GIC**: `reg` keeps the host's GICD entry and gets one redistributor region of
//!   vCPUs x 128 KiB ([`REDISTRIBUTOR_SIZE`]: the guest's virtual GICv3 has 2 frames per
//!   redistributor, GICR_TYPER.VLPIS = 0), `#redistributor-regions` becomes 1,
//!   `redistributor-stride` and the maintenance interrupt (`interrupts`) go;
//! - **ITS**: kept, or removed with every `msi-map` and `msi-parent` entry naming it (an
//!   `msi-map` left empty goes with its `msi-map-mask`), so PCI falls back to INTx;
//! - **PSCI**: kept, with the policy's conduit as `method` (SMC by default: the hypervisor
//!   traps it);
//! - **removed nodes**: [`REMOVED_BY_DEFAULT`] (platform bus, fw-cfg, flash), the virtio-mmio
//!   transports not listed in the policy, and the policy's own remove list, except what its
//!   keep list names; `/aliases` and `/__symbols__` entries pointing into removed nodes go.
//!
//! Everything else is copied exactly: node and property order, values, phandles, the memory
//! reservations inside guest memory and the header's boot CPU. The timer node in particular
//! is untouched: its secure and EL2 interrupts stay listed, and Linux at EL1 uses the virtual
//! timer. A kept node that still refers to a removed one by phandle is an error
//! ([`Error::DanglingReference`]) rather than a broken guest tree.
//!
//! The host tree is read and validated with `dtoolkit` (no allocation, errors rather than
//! panics on malformed blobs) and the guest's is written with rust-vmm's `vm-fdt`; nothing
//! here panics on any input.
//!
//! Where to start: [`guest_memory`] turns the host's memory minus the hypervisor's into the
//! guest's ranges, [`GuestPolicy::new`] takes them and the number of vCPUs (its `with_*`
//! methods add the rest), and [`derive()`] writes the guest's blob, here from the tree QEMU's
//! `virt` board gives (a file of the project's repository). Nothing to implement.
//!
//! ```
//! use guest_fdt::{derive, guest_memory, GuestPolicy, MemRegion};
//!
//! # let host_dtb: &[u8] = include_bytes!(concat!(
//! #     env!("CARGO_MANIFEST_DIR"), "/../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb"));
//! // The hypervisor keeps the first 64 MiB of RAM for itself.
//! let memory = guest_memory(host_dtb, &[MemRegion::new(0x4000_0000, 0x400_0000)])?;
//! let initrd = MemRegion::new(0x4800_0000, 0x20_0000);
//! let policy = GuestPolicy::new(&memory, 2)
//!     .with_bootargs("console=ttyAMA0 earlycon")
//!     .with_initrd(initrd)
//!     .with_its(false);
//! let guest_dtb = derive(host_dtb, &policy)?;
//! assert!(guest_dtb.len() < host_dtb.len());
//! # Ok::<(), guest_fdt::Error>(())
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod derive;
mod error;
mod policy;
mod refs;

pub use derive::{MAX_DEPTH, REDISTRIBUTOR_SIZE, derive, guest_memory, host_memory};
pub use error::{Error, WriteError};
pub use policy::{GuestPolicy, MemRegion, NodeMatch, PsciMethod, REMOVED_BY_DEFAULT};
