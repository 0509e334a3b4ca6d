// SPDX-License-Identifier: MIT OR Apache-2.0
//! SGI generation registers: ICC_SGI0R_EL1, ICC_SGI1R_EL1 and ICC_ASGI1R_EL1, decoded.
//!
//! The three registers share one layout (Arm IHI 0069, "ICC_SGI1R_EL1, Interrupt Controller
//! Software Generated Interrupt Group 1 Register"): TargetList \[15:0\], Aff1 \[23:16\],
//! INTID \[27:24\], Aff2 \[39:32\], IRM \[40\], RS \[47:44\], Aff3 \[55:48\]; the other bits are
//! RES0 and ignored.
//!
//! - IRM = 0: the SGI goes to every PE Aff3.Aff2.Aff1.a0 with a0 = RS * 16 + n for each set
//!   bit n of TargetList, including the sender if it is listed. A listed affinity that names
//!   no vCPU is ignored. The model reports GICD_TYPER.RSS = 1, so RS is honoured.
//! - IRM = 1: every PE but the sender; the affinity fields are ignored.
//!
//! # Groups with one Security state
//! The emulated GIC has one Security state (GICD_CTLR.DS = 1). Following "Forwarding an SGI
//! to a target PE" for that case, whether a target gets the SGI depends on the group its SGI
//! is configured in:
//! - ICC_SGI1R_EL1 generates Group 1 SGIs, and with one Security state it may also generate
//!   Group 0 ones: it reaches targets whose SGI is in either group;
//! - ICC_SGI0R_EL1 generates Group 0 SGIs: it reaches targets whose SGI is in Group 0 only;
//! - ICC_ASGI1R_EL1 asks for Group 1 SGIs of the *other* Security state, which does not
//!   exist here; it can generate Group 0 SGIs, so the model treats it like ICC_SGI0R_EL1.
//!
//! A target whose SGI is in a group the register does not reach is skipped and counted
//! ([`crate::VgicStats::sgis_filtered`]).
//!
//! A guest's ICC_SGI1R_EL1 writes trap to EL2 when HCR_EL2.IMO = 1; ICC_SGI0R_EL1 and
//! ICC_ASGI1R_EL1 trap under FMO and IMO likewise (EC 0x18).

use crate::ids::Affinity;
use crate::trap::SysRegAccess;

/// Which SGI generation register the guest wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SgiRegister {
    /// ICC_SGI0R_EL1 (S3_0_C12_C11_7): Group 0 SGIs.
    Sgi0r,
    /// ICC_SGI1R_EL1 (S3_0_C12_C11_5): Group 1 SGIs (Group 0 targets too, see above).
    Sgi1r,
    /// ICC_ASGI1R_EL1 (S3_0_C12_C11_6): treated as ICC_SGI0R_EL1 (one Security state).
    Asgi1r,
}

impl SgiRegister {
    /// The SGI register a trapped MSR writes, if any (an MRS of these write-only registers
    /// is not one).
    pub const fn from_trap(access: &SysRegAccess) -> Option<Self> {
        if access.read || access.op0 != 3 || access.op1 != 0 || access.crn != 12 || access.crm != 11
        {
            return None;
        }
        match access.op2 {
            5 => Some(Self::Sgi1r),
            6 => Some(Self::Asgi1r),
            7 => Some(Self::Sgi0r),
            _ => None,
        }
    }

    /// Whether it reaches a target whose SGI is in Group 1 (`group1`) or Group 0.
    pub const fn reaches(self, group1: bool) -> bool {
        matches!(self, Self::Sgi1r) || !group1
    }
}

/// The PEs an SGI is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SgiTargets {
    /// IRM = 0: Aff3.Aff2.Aff1.(RS * 16 + n) for each set bit n of `target_list`.
    List {
        /// (Aff3)
        aff3: u8,
        /// (Aff2)
        aff2: u8,
        /// (Aff1)
        aff1: u8,
        /// (RS) Range selector: TargetList bit n stands for Aff0 = RS * 16 + n.
        rs: u8,
        /// (TargetList)
        target_list: u16,
    },
    /// IRM = 1: every PE except the sender.
    AllButSelf,
}

impl SgiTargets {
    /// Whether a PE with affinity `aff` is a target; `is_sender` says whether it is the PE
    /// that wrote the register.
    pub const fn includes(&self, aff: Affinity, is_sender: bool) -> bool {
        match *self {
            Self::AllButSelf => !is_sender,
            Self::List {
                aff3,
                aff2,
                aff1,
                rs,
                target_list,
            } => {
                let base = rs as u16 * 16;
                let a0 = aff.aff0 as u16;
                aff.aff3 == aff3
                    && aff.aff2 == aff2
                    && aff.aff1 == aff1
                    && a0 >= base
                    && a0 < base + 16
                    && target_list & (1 << (a0 - base)) != 0
            }
        }
    }
}

/// One write to an SGI generation register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct SgiRequest(u64);

impl SgiRequest {
    /// The value the guest wrote.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// (INTID) bits \[27:24\]: the SGI, 0..=15.
    pub const fn intid(self) -> u8 {
        ((self.0 >> 24) & 0xF) as u8
    }

    /// (TargetList) bits \[15:0\].
    pub const fn target_list(self) -> u16 {
        self.0 as u16
    }

    /// (Aff1) bits \[23:16\].
    pub const fn aff1(self) -> u8 {
        (self.0 >> 16) as u8
    }

    /// (Aff2) bits \[39:32\].
    pub const fn aff2(self) -> u8 {
        (self.0 >> 32) as u8
    }

    /// (IRM) bit 40.
    pub const fn irm(self) -> bool {
        self.0 & (1 << 40) != 0
    }

    /// (RS) bits \[47:44\].
    pub const fn rs(self) -> u8 {
        ((self.0 >> 44) & 0xF) as u8
    }

    /// (Aff3) bits \[55:48\].
    pub const fn aff3(self) -> u8 {
        (self.0 >> 48) as u8
    }

    /// The targets.
    pub const fn targets(self) -> SgiTargets {
        if self.irm() {
            SgiTargets::AllButSelf
        } else {
            SgiTargets::List {
                aff3: self.aff3(),
                aff2: self.aff2(),
                aff1: self.aff1(),
                rs: self.rs(),
                target_list: self.target_list(),
            }
        }
    }
}
