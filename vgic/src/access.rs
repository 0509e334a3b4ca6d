// SPDX-License-Identifier: MIT OR Apache-2.0
//! Access sizes, where an access landed, and how it was handled.
//!
//! Every access to the emulated frames is answered: a register read or written, or RAZ/WI
//! with the reason, so that a hypervisor can count what its guest touches that the model
//! does not implement. None of these outcomes is an error for the guest.
//!
//! # Access sizes (Arm IHI 0069, "GIC memory-mapped register access")
//! - 32-bit accesses reach every register.
//! - Byte accesses reach the byte-addressable registers only: `GICD_IPRIORITYR<n>`,
//!   `GICR_IPRIORITYR<n>` (and the RAZ/WI `GICD_ITARGETSR<n>`, `GICD_CPENDSGIR<n>`,
//!   `GICD_SPENDSGIR<n>`).
//! - 64-bit accesses reach the 64-bit registers only (`GICD_IROUTER<n>`, GICR_TYPER,
//!   GICR_PROPBASER, GICR_PENDBASER), which also accept 32-bit accesses to either half.
//! - Halfword accesses reach nothing.
//!
//! An access of a size the register does not allow, or not aligned to its size, is RAZ/WI
//! ([`RazWi::BadSize`], [`RazWi::Misaligned`]).

use crate::ids::VcpuId;

/// The size of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AccessSize {
    /// 8 bits.
    Byte = 1,
    /// 16 bits.
    Half = 2,
    /// 32 bits.
    Word = 4,
    /// 64 bits.
    Dword = 8,
}

impl AccessSize {
    /// From a data-abort syndrome's SAS field (0: byte, 1: halfword, 2: word, 3: doubleword).
    pub const fn from_sas(sas: u8) -> Self {
        match sas & 3 {
            0 => Self::Byte,
            1 => Self::Half,
            2 => Self::Word,
            _ => Self::Dword,
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u32 {
        self as u32
    }

    /// A mask of the low `bytes() * 8` bits.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xFF,
            Self::Half => 0xFFFF,
            Self::Word => 0xFFFF_FFFF,
            Self::Dword => u64::MAX,
        }
    }
}

/// Which emulated 64 KiB frame an address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// The distributor (GICD).
    Distributor,
    /// A redistributor's RD_base frame (control, LPIs, identification).
    RdBase(VcpuId),
    /// A redistributor's SGI_base frame (SGIs and PPIs).
    SgiBase(VcpuId),
}

/// Why an access was read-as-zero, write-ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum RazWi {
    /// A reserved offset.
    Reserved = 0,
    /// A register of a feature the emulated GIC does not have (GICD_TYPER2, the message-based
    /// SPI registers, extended SPI/PPI ranges, NMI, MPAM, direct LPI registers, the LPI
    /// registers when the VM has no LPIs, status registers, the ID registers other than
    /// PIDR2).
    NotImplemented = 1,
    /// RES0 because affinity routing is always enabled (GICD_CTLR.ARE = 1): the SGI/PPI
    /// banks of the distributor (n = 0), `GICD_ITARGETSR<n>`, GICD_SGIR,
    /// `GICD_CPENDSGIR<n>`, `GICD_SPENDSGIR<n>`, `GICD_IROUTER<n>` for n < 32.
    AffinityRouting = 2,
    /// RES0 with one Security state (GICD_CTLR.DS = 1): IGRPMODR, NSACR.
    SingleSecurityState = 3,
    /// A register (or byte) for INTIDs the VM does not have (beyond ITLinesNumber, or
    /// 1020-1023).
    NoSuchInterrupt = 4,
    /// An access size the register does not allow.
    BadSize = 5,
    /// An address not aligned to the access size.
    Misaligned = 6,
}

impl RazWi {
    /// The number of reasons (for counters indexed by `reason as usize`).
    pub const COUNT: usize = 7;
}

/// How an access was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// An emulated register was read or written.
    Register,
    /// A write to a read-only register (GICD_TYPER, GICR_TYPER, IIDR, PIDR2, GICR_ICFGR0):
    /// ignored.
    ReadOnly,
    /// A write the architecture does not let software make now and the model ignores:
    /// GICR_PROPBASER or GICR_PENDBASER while GICR_CTLR.EnableLPIs = 1.
    WriteIgnored,
    /// Read as zero, write ignored.
    RazWi(RazWi),
}

/// The answer to one emulated access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// The frame the address fell in.
    pub frame: Frame,
    /// The offset in that frame.
    pub offset: u32,
    /// For a read, the value (zero-extended to 64 bits); 0 for a write.
    pub value: u64,
    /// How the access was handled.
    pub outcome: Outcome,
}
