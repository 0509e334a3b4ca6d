// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the hypervisor tells the vITS about the VM: vCPUs, ID widths, assigned devices.

use its_core::ids::DeviceId;

/// A vCPU of the VM: its index, which is also its GICR_TYPER.Processor_Number (the emulated
/// redistributors must report it so) and so the RDbase a guest names it by (GITS_TYPER.PTA =
/// 0). The backend's vPE `i` is vCPU `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId(u16);

impl VcpuId {
    /// vCPU `index`.
    pub const fn new(index: u16) -> Self {
        Self(index)
    }

    /// The index.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The index, for indexing.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A device assigned to the VM: the DeviceID the guest uses for it and the physical one its
/// MSIs carry. On QEMU's virt board (msi-map is the identity) both are the requester ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AssignedDevice {
    /// The DeviceID the guest's MAPD names.
    pub guest: DeviceId,
    /// The physical DeviceID.
    pub phys: DeviceId,
}

impl AssignedDevice {
    /// A device whose guest DeviceID is its physical one.
    pub const fn identity(id: DeviceId) -> Self {
        Self {
            guest: id,
            phys: id,
        }
    }
}

/// Physical DeviceIDs that no real device uses, handed out to devices the guest makes up
/// (see the crate documentation, "DeviceIDs"). `count = 0`: none, and a made-up DeviceID's
/// MAPD is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DevicePool {
    /// The first physical DeviceID of the range.
    pub first: DeviceId,
    /// How many.
    pub count: u32,
}

impl DevicePool {
    /// Whether physical DeviceID `id` is in the pool.
    pub const fn contains(&self, id: DeviceId) -> bool {
        id.get() >= self.first.get() && (id.get() - self.first.get()) < self.count
    }
}

/// The guest's LPI configuration table, as its redistributors' GICR_PROPBASER describe it
/// (the `vgic` emulation hands it over once the guest has set GICR_CTLR.EnableLPIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LpiConfigTable {
    /// Guest-physical address of the table (GICR_PROPBASER.Physical_Address): the byte of
    /// LPI `n` is at `base + n - 8192`.
    pub base: u64,
    /// INTID bits the table covers (GICR_PROPBASER.IDbits + 1): LPIs at or above
    /// 2^`id_bits` have no byte, and are treated as disabled.
    pub id_bits: u8,
}

/// The VM's side of the vITS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VitsConfig<'c> {
    /// vCPUs (1 to 65536): MAPC, SYNC and MOVALL accept RDbase 0 to `vcpus - 1`.
    pub vcpus: u32,
    /// DeviceID bits the guest sees (GITS_TYPER.Devbits + 1), 1 to 32.
    pub device_bits: u8,
    /// EventID bits the guest sees (GITS_TYPER.IDbits + 1), 1 to 32: a MAPD's Size may ask
    /// for up to 2^`event_bits` events. The backend must be able to map a physical device
    /// with that many events (with the vpe-sched backend: at most the physical ITS's IDbits).
    pub event_bits: u8,
    /// The VM's LPI INTID bits (14 to 32): a MAPTI's pINTID becomes the vINTID and must be
    /// below 2^`vintid_bits`. The same width as the backend's VM (vpe-sched's
    /// `VmConfig::vintid_bits`) and as the guest's GICD_TYPER.IDbits + 1.
    pub vintid_bits: u8,
    /// The devices assigned to the VM (copied; at most the vITS's DEVICES).
    pub assigned: &'c [AssignedDevice],
    /// Physical DeviceIDs for made-up devices.
    pub pool: DevicePool,
    /// GITS_IIDR. The default, 0x43b (implementer Arm, product 0, revision 0), is what QEMU's
    /// ITS reports and matches none of the IIDRs Linux applies ITS errata workarounds to.
    pub iidr: u32,
    /// Work done per trapped access at most: each command counts one, plus one per backend
    /// operation it makes. Processing stops after the command that reaches the budget; the
    /// rest of the queue is processed at the guest's next GITS_CREADR read or GITS_CWRITER
    /// write (or [`crate::Vits::process`]). At least 1.
    pub work_per_trap: u32,
}

impl<'c> VitsConfig<'c> {
    /// A VM with `vcpus` vCPUs and `vintid_bits`-bit LPIs, these devices and pool, and the
    /// defaults: 16-bit DeviceIDs and EventIDs (as QEMU's ITS), IIDR 0x43b, 256 units of
    /// work per trap.
    pub const fn new(
        vcpus: u32,
        vintid_bits: u8,
        assigned: &'c [AssignedDevice],
        pool: DevicePool,
    ) -> Self {
        Self {
            vcpus,
            device_bits: 16,
            event_bits: 16,
            vintid_bits,
            assigned,
            pool,
            iidr: 0x43b,
            work_per_trap: 256,
        }
    }
}

/// Why a configuration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is outside its range.
    #[error("{what} out of range")]
    OutOfRange {
        /// Which field.
        what: &'static str,
    },
    /// More assigned devices than the vITS has room for.
    #[error("{assigned} assigned devices, room for {capacity}")]
    TooManyAssigned {
        /// Devices given.
        assigned: usize,
        /// The vITS's DEVICES.
        capacity: usize,
    },
    /// Two assigned devices share a guest or a physical DeviceID.
    #[error("DeviceID {0:#x} is assigned twice")]
    DuplicateDevice(u32),
    /// An assigned device's guest DeviceID does not fit the guest's Devbits.
    #[error("guest DeviceID {0:#x} does not fit the configured DeviceID bits")]
    GuestDeviceTooLarge(u32),
    /// The pool includes an assigned device's physical DeviceID, or wraps.
    #[error("the made-up device pool overlaps physical DeviceID {0:#x} or wraps")]
    PoolOverlap(u32),
}
