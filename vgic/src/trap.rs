// SPDX-License-Identifier: MIT OR Apache-2.0
//! Pure decoders of trapped guest accesses: MMIO data aborts and system-register writes.
//!
//! Nothing here is specific to the GIC: a hypervisor decodes every stage-2 data abort it
//! wants to emulate with [`DataAbort::decode`], and every trapped MSR/MRS with
//! [`SysRegAccess::decode`].
//!
//! Field positions follow the Arm Architecture Reference Manual for A-profile: ESR_EL2 ("ISS
//! encoding for an exception from a Data Abort", "ISS encoding for an exception from MSR,
//! MRS, or System instruction execution in AArch64 state"), FAR_EL2 and HPFAR_EL2.
//!
//! # The rules applied
//! - Only EC 0x24 (Data Abort from a lower Exception level) is an access to emulate; EC 0x25
//!   is the hypervisor's own fault.
//! - HPFAR_EL2 holds the faulting IPA only for a stage-2 Translation, Access flag or
//!   Permission fault, so any other fault status code is refused.
//! - A fault on a stage-1 translation table walk (S1PTW = 1) is not an access to the faulting
//!   address by the instruction, and a cache maintenance instruction (CM = 1) transfers no
//!   data: both are refused.
//! - ISV = 0: the instruction is not described (load/store pair, writeback, SIMD&FP register,
//!   exclusive or atomic forms and others), so [`AbortError::NoSyndrome`]: the hypervisor
//!   must refuse the access (inject an abort) or decode the instruction itself.
//! - FnV = 1: FAR_EL2 is not valid, so the page offset is unknown.
//! - SRT = 31 names the zero register (WZR/XZR) for a load or store: a store writes 0 and a
//!   load's result is discarded.
//! - A load of fewer than 64 bits is zero-extended, or sign-extended (SSE = 1) to 32 bits
//!   (SF = 0, the register written as Wt, whose upper 32 bits become 0) or to 64 bits
//!   (SF = 1). A 64-bit access with SF = 0 or SSE = 1 is never reported by the architecture
//!   and is refused as [`AbortError::Malformed`].
//! - IPA = HPFAR_EL2.FIPA (bits \[47:4\], IPA\[55:12\]) : FAR_EL2\[11:0\].
//!
//! Data are little-endian: a big-endian guest (SCTLR_EL1.EE = 1) needs its bytes swapped by
//! the caller.

use crate::access::AccessSize;

/// ESR_EL2.EC for a Data Abort taken from a lower Exception level.
pub const EC_DATA_ABORT_LOWER: u8 = 0x24;
/// ESR_EL2.EC for a trapped MSR, MRS or System instruction in AArch64 state.
pub const EC_SYS_REG: u8 = 0x18;

const ISS_ISV: u64 = 1 << 24;
const ISS_SSE: u64 = 1 << 21;
const ISS_SF: u64 = 1 << 15;
const ISS_AR: u64 = 1 << 14;
const ISS_FNV: u64 = 1 << 10;
const ISS_EA: u64 = 1 << 9;
const ISS_CM: u64 = 1 << 8;
const ISS_S1PTW: u64 = 1 << 7;
const ISS_WNR: u64 = 1 << 6;
const ESR_IL: u64 = 1 << 25;

/// A general-purpose register number as a syndrome reports it (SRT, Rt): 0-30 are X0-X30,
/// 31 is the zero register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Gpr(u8);

impl Gpr {
    /// The zero register (WZR/XZR) in a load/store or MSR/MRS syndrome.
    pub const ZR: Self = Self(31);

    /// Register `n` (only the low 5 bits count).
    pub const fn new(n: u8) -> Self {
        Self(n & 31)
    }

    /// The raw 5-bit number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The index into X0-X30, or `None` for the zero register.
    pub const fn index(self) -> Option<usize> {
        if self.0 == 31 {
            None
        } else {
            Some(self.0 as usize)
        }
    }
}

/// Why a syndrome does not describe an access this decoder can complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[repr(u32)]
pub enum AbortError {
    /// ESR_EL2.EC is not 0x24 (Data Abort from a lower Exception level).
    #[error("ESR_EL2.EC {ec:#x} is not a data abort from a lower Exception level")]
    NotDataAbort {
        /// The exception class found.
        ec: u8,
    } = 1,
    /// The fault status code is not a stage-2 Translation, Access flag or Permission fault,
    /// so HPFAR_EL2 does not hold the IPA (alignment, external abort, TLB conflict, ...).
    #[error("DFSC {dfsc:#x} is not a stage-2 translation, access flag or permission fault")]
    NotStage2Fault {
        /// ESR_EL2.ISS.DFSC.
        dfsc: u8,
    } = 2,
    /// S1PTW = 1: the stage-2 fault happened on the guest's stage-1 table walk.
    #[error("stage-2 fault on a stage-1 translation table walk (S1PTW = 1)")]
    StageOneWalk = 3,
    /// CM = 1: a cache maintenance or address translation instruction.
    #[error("cache maintenance instruction (CM = 1)")]
    CacheMaintenance = 4,
    /// ISV = 0: the syndrome does not describe the access; refuse it or decode the
    /// instruction.
    #[error("no instruction syndrome (ISV = 0)")]
    NoSyndrome = 5,
    /// FnV = 1: FAR_EL2 is not valid.
    #[error("FAR_EL2 not valid (FnV = 1)")]
    FarNotValid = 6,
    /// A combination the architecture never reports (64-bit access with SF = 0 or SSE = 1).
    #[error("inconsistent syndrome: ISS {iss:#x}")]
    Malformed {
        /// ESR_EL2.ISS.
        iss: u32,
    } = 7,
}

/// What the trapped instruction does with its register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A load into `rt`.
    Read {
        /// (SRT) The register loaded.
        rt: Gpr,
        /// (SSE) The value is sign-extended.
        sign_extend: bool,
        /// (SF) The register is 64-bit (Xt) rather than 32-bit (Wt).
        sixty_four: bool,
    },
    /// A store from `rt`.
    Write {
        /// (SRT) The register stored.
        rt: Gpr,
    },
}

/// A decoded MMIO access from a stage-2 data abort with a valid instruction syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataAbort {
    ipa: u64,
    size: AccessSize,
    direction: Direction,
    acquire_release: bool,
    insn_len: u8,
}

impl DataAbort {
    /// Decodes ESR_EL2, FAR_EL2 and HPFAR_EL2 of a data abort taken to EL2.
    ///
    /// # Errors
    /// [`AbortError`]: see the module documentation for the rules.
    pub fn decode(esr: u64, far: u64, hpfar: u64) -> Result<Self, AbortError> {
        let ec = ((esr >> 26) & 0x3F) as u8;
        if ec != EC_DATA_ABORT_LOWER {
            return Err(AbortError::NotDataAbort { ec });
        }
        let iss = esr & 0x1FF_FFFF;
        if iss & ISS_CM != 0 {
            return Err(AbortError::CacheMaintenance);
        }
        if iss & ISS_S1PTW != 0 {
            return Err(AbortError::StageOneWalk);
        }
        let dfsc = (iss & 0x3F) as u8;
        if !is_stage2_emulation_fault(dfsc) || iss & ISS_EA != 0 {
            return Err(AbortError::NotStage2Fault { dfsc });
        }
        if iss & ISS_ISV == 0 {
            return Err(AbortError::NoSyndrome);
        }
        if iss & ISS_FNV != 0 {
            return Err(AbortError::FarNotValid);
        }
        let size = AccessSize::from_sas(((iss >> 22) & 3) as u8);
        let rt = Gpr::new(((iss >> 16) & 31) as u8);
        let sign_extend = iss & ISS_SSE != 0;
        let sixty_four = iss & ISS_SF != 0;
        let write = iss & ISS_WNR != 0;
        let malformed = Err(AbortError::Malformed { iss: iss as u32 });
        if size == AccessSize::Dword && (!sixty_four || sign_extend) {
            return malformed;
        }
        if write && sign_extend {
            return malformed;
        }
        let direction = if write {
            Direction::Write { rt }
        } else {
            Direction::Read {
                rt,
                sign_extend,
                sixty_four,
            }
        };
        let fipa = (hpfar >> 4) & ((1 << 44) - 1);
        Ok(Self {
            ipa: (fipa << 12) | (far & 0xFFF),
            size,
            direction,
            acquire_release: iss & ISS_AR != 0,
            insn_len: if esr & ESR_IL != 0 { 4 } else { 2 },
        })
    }

    /// The intermediate physical address accessed.
    pub const fn ipa(&self) -> u64 {
        self.ipa
    }

    /// (SAS) The access size.
    pub const fn size(&self) -> AccessSize {
        self.size
    }

    /// Load or store, and the register.
    pub const fn direction(&self) -> Direction {
        self.direction
    }

    /// (WnR) Whether it is a store.
    pub const fn is_write(&self) -> bool {
        matches!(self.direction, Direction::Write { .. })
    }

    /// (AR) Load-acquire or store-release semantics: the emulation must order it as the
    /// instruction would.
    pub const fn acquire_release(&self) -> bool {
        self.acquire_release
    }

    /// (IL) The instruction's length in bytes (4, or 2 for a T32 16-bit instruction): add it
    /// to ELR_EL2 to skip the instruction once emulated.
    pub const fn insn_len(&self) -> u8 {
        self.insn_len
    }

    /// The register the instruction names (SRT).
    pub const fn rt(&self) -> Gpr {
        match self.direction {
            Direction::Read { rt, .. } | Direction::Write { rt } => rt,
        }
    }

    /// The data a store writes, from the guest's X0-X30 (the zero register stores 0),
    /// truncated to the access size. 0 for a load.
    pub fn write_value(&self, x: &[u64; 31]) -> u64 {
        match self.direction {
            Direction::Write { rt } => {
                let v = rt.index().and_then(|i| x.get(i).copied()).unwrap_or(0);
                v & self.size.mask()
            }
            Direction::Read { .. } => 0,
        }
    }

    /// The value a load leaves in its register, given the `data` read from the device: the
    /// low `size` bytes, zero- or sign-extended to 32 or 64 bits as SSE and SF say (a 32-bit
    /// register's upper half becomes 0). `None` for a store.
    pub const fn load_value(&self, data: u64) -> Option<u64> {
        let Direction::Read {
            sign_extend,
            sixty_four,
            ..
        } = self.direction
        else {
            return None;
        };
        let bits = self.size.bytes() * 8;
        let mut v = data & self.size.mask();
        if sign_extend && bits < 64 && v & (1 << (bits - 1)) != 0 {
            v |= !self.size.mask();
        }
        if !sixty_four {
            v &= 0xFFFF_FFFF;
        }
        Some(v)
    }

    /// Completes a load: writes [`Self::load_value`] of `data` to the guest's register
    /// (nothing for the zero register or a store).
    pub fn complete_read(&self, x: &mut [u64; 31], data: u64) {
        if let (Some(v), Some(i)) = (self.load_value(data), self.rt().index())
            && let Some(r) = x.get_mut(i)
        {
            *r = v;
        }
    }
}

/// Whether `dfsc` is a Translation, Access flag or Permission fault (any level), the faults
/// for which HPFAR_EL2 holds the IPA.
const fn is_stage2_emulation_fault(dfsc: u8) -> bool {
    matches!(dfsc, 0b00_0100..=0b00_1111 | 0b10_1011)
}

/// A trapped MSR or MRS (ESR_EL2.EC 0x18): which register and which general-purpose register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysRegAccess {
    /// (Op0) bits \[21:20\].
    pub op0: u8,
    /// (Op1) bits \[16:14\].
    pub op1: u8,
    /// (CRn) bits \[13:10\].
    pub crn: u8,
    /// (CRm) bits \[4:1\].
    pub crm: u8,
    /// (Op2) bits \[19:17\].
    pub op2: u8,
    /// (Rt) bits \[9:5\].
    pub rt: Gpr,
    /// (Direction) bit 0: true for MRS (a read), false for MSR (a write).
    pub read: bool,
    /// (IL) The instruction's length in bytes.
    pub insn_len: u8,
}

impl SysRegAccess {
    /// Decodes ESR_EL2 of a trapped MSR/MRS/System instruction; `None` if ESR_EL2.EC is not
    /// 0x18.
    pub const fn decode(esr: u64) -> Option<Self> {
        if ((esr >> 26) & 0x3F) as u8 != EC_SYS_REG {
            return None;
        }
        Some(Self {
            op0: ((esr >> 20) & 3) as u8,
            op1: ((esr >> 14) & 7) as u8,
            crn: ((esr >> 10) & 15) as u8,
            crm: ((esr >> 1) & 15) as u8,
            op2: ((esr >> 17) & 7) as u8,
            rt: Gpr::new(((esr >> 5) & 31) as u8),
            read: esr & 1 != 0,
            insn_len: if esr & ESR_IL != 0 { 4 } else { 2 },
        })
    }

    /// Whether this names `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
    pub const fn is(&self, op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> bool {
        self.op0 == op0 && self.op1 == op1 && self.crn == crn && self.crm == crm && self.op2 == op2
    }
}
