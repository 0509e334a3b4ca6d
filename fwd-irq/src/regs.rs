// SPDX-License-Identifier: MIT OR Apache-2.0
//! Register value types: the GICv3 virtualization control registers (ICH_*), the host CPU
//! interface control register (ICC_CTLR_EL1) and the generic-timer control registers.
//!
//! Field positions follow Arm IHI 0069 ("GIC System register descriptions"; `ICH_LR<n>_EL2`,
//! ICH_HCR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2, ICH_MISR_EL2, ICH_EISR_EL2, ICH_ELRSR_EL2,
//! `ICH_AP1R<n>_EL2`, ICC_CTLR_EL1) and the Arm ARM (CNTV_CTL_EL0, CNTHP_CTL_EL2). Each field's
//! doc quotes the spec's field name in parentheses. The host tests in this module pin every
//! field to its bit position.
//!
//! All types are plain values: reading or writing the registers is the job of
//! [`IchRegs`](crate::hw::IchRegs) and friends.
#![allow(
    clippy::result_unit_err,
    reason = "bitfield-struct generates `with_*_checked` returning `Result<Self, ()>`"
)]

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ids::{LrIndex, PIntId, VIntId};

/// `ICH_LR<n>_EL2`.State: the state of the virtual interrupt in a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LrState {
    /// 0b00: invalid; the list register is free (unless it signals an EOI maintenance
    /// interrupt, see [`IchElrsr`]).
    Invalid = 0,
    /// 0b01: pending.
    Pending = 1,
    /// 0b10: active.
    Active = 2,
    /// 0b11: pending and active. Never used together with HW = 1.
    PendingActive = 3,
}

impl LrState {
    /// The 2-bit encoding.
    pub const fn into_bits(self) -> u8 {
        self as u8
    }

    /// Decodes the low 2 bits of `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Self::Invalid,
            1 => Self::Pending,
            2 => Self::Active,
            _ => Self::PendingActive,
        }
    }

    /// From separate pending and active flags.
    pub const fn from_flags(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    /// Pending or pending+active.
    pub const fn is_pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    /// Active or pending+active.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }

    /// Anything but invalid.
    pub const fn is_valid(self) -> bool {
        !matches!(self, Self::Invalid)
    }
}

/// `ICH_LR<n>_EL2`: one virtual interrupt presented to the vCPU (GICv3 64-bit layout).
///
/// Bits \[44:32\] are pINTID when HW = 1. When HW = 0, bit 41 is EOI ("assert a maintenance
/// interrupt when the guest deactivates this interrupt") and the rest of \[44:32\] is RES0.
/// The two meanings overlap, so pINTID and EOI have hand-written accessors: build list
/// registers with [`IchLr::virtual_irq`] or [`IchLr::hw_irq`] and the overlap cannot bite.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchLr {
    /// (vINTID) The virtual INTID the guest acknowledges.
    pub vintid: u32,
    /// (pINTID) bits \[44:32\]; see [`IchLr::pintid`] and [`IchLr::eoi`].
    #[bits(13)]
    pintid_bits: u16,
    #[bits(3)]
    _res0_45: u8,
    /// (Priority) The virtual priority; only the top ICH_VTR_EL2.PRIbits + 1 bits are kept.
    pub priority: u8,
    #[bits(3)]
    _res0_56: u8,
    /// (NMI) Non-maskable property (FEAT_GICv3_NMI; RES0 otherwise). This crate never sets it.
    pub nmi: bool,
    /// (Group) 1: Group 1 (IRQ), 0: Group 0 (FIQ).
    pub group: bool,
    /// (HW) The virtual interrupt maps to the physical interrupt pINTID: deactivating the
    /// virtual interrupt deactivates the physical one.
    pub hw: bool,
    /// (State) Invalid, pending, active, or pending and active.
    #[bits(2)]
    pub state: LrState,
}

impl IchLr {
    const EOI_BIT: u64 = 1 << 41;

    /// A list register for a virtual interrupt with no physical counterpart (HW = 0).
    ///
    /// `eoi_maintenance` sets the EOI bit: deactivating the interrupt then asserts a
    /// maintenance interrupt (ICH_MISR_EL2.EOI) and sets the list register's ICH_EISR_EL2 bit.
    pub const fn virtual_irq(
        vintid: VIntId,
        priority: u8,
        group1: bool,
        state: LrState,
        eoi_maintenance: bool,
    ) -> Self {
        let lr = Self::new()
            .with_vintid(vintid.get())
            .with_priority(priority)
            .with_group(group1)
            .with_state(state);
        if eoi_maintenance {
            Self::from_bits(lr.into_bits() | Self::EOI_BIT)
        } else {
            lr
        }
    }

    /// A list register for a pending virtual LPI (`vintid` 8192 and above; HW = 0, no EOI
    /// maintenance: an LPI has no active state, so the guest's acknowledge leaves the list
    /// register invalid).
    pub const fn virtual_lpi(vintid: u32, priority: u8, group1: bool) -> Self {
        Self::new()
            .with_vintid(vintid)
            .with_priority(priority)
            .with_group(group1)
            .with_state(LrState::Pending)
    }

    /// A list register for a forwarded physical interrupt (HW = 1, pINTID set).
    ///
    /// `state` should be [`LrState::Pending`] or [`LrState::Active`]: the architecture leaves
    /// pending+active with HW = 1 to the physical distributor, and [`crate::vgic`] never
    /// builds one.
    pub const fn hw_irq(
        vintid: VIntId,
        pintid: PIntId,
        priority: u8,
        group1: bool,
        state: LrState,
    ) -> Self {
        Self::new()
            .with_vintid(vintid.get())
            .with_pintid_bits(pintid.get() as u16)
            .with_priority(priority)
            .with_group(group1)
            .with_hw(true)
            .with_state(state)
    }

    /// (pINTID) Bits \[44:32\]: the physical INTID when HW = 1; `None` when HW = 0.
    pub const fn pintid(&self) -> Option<u16> {
        if self.hw() {
            Some(self.pintid_bits())
        } else {
            None
        }
    }

    /// Sets HW = 1 and pINTID.
    pub const fn with_pintid(self, pintid: PIntId) -> Self {
        self.with_hw(true).with_pintid_bits(pintid.get() as u16)
    }

    /// (EOI) Bit 41 when HW = 0: deactivation asserts an EOI maintenance interrupt. Always
    /// `false` when HW = 1 (the bit then belongs to pINTID).
    pub const fn eoi(&self) -> bool {
        !self.hw() && self.into_bits() & Self::EOI_BIT != 0
    }

    /// Sets or clears EOI (bit 41) and clears HW, so the bit means EOI and not pINTID\[9\].
    pub const fn with_eoi(self, eoi: bool) -> Self {
        let bits = self.with_hw(false).with_pintid_bits(0).into_bits();
        Self::from_bits(if eoi { bits | Self::EOI_BIT } else { bits })
    }

    /// Whether the vCPU's deactivation of this entry is signalled as an EOI maintenance
    /// interrupt: State = invalid, HW = 0 and EOI = 1 (the ICH_EISR_EL2 condition).
    pub const fn signals_eoi(&self) -> bool {
        matches!(self.state(), LrState::Invalid) && self.eoi()
    }

    /// Whether the entry is free to reuse: State = invalid and either HW = 1 or EOI = 0
    /// (the ICH_ELRSR_EL2 condition).
    pub const fn is_empty(&self) -> bool {
        matches!(self.state(), LrState::Invalid) && !self.eoi()
    }
}

/// ICH_HCR_EL2: controls for the virtual CPU interface of the running vCPU.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchHcr {
    /// (En) Global enable of the virtual CPU interface.
    pub en: bool,
    /// (UIE) Underflow interrupt enable: maintenance interrupt while at most one list register
    /// holds a valid interrupt.
    pub uie: bool,
    /// (LRENPIE) Maintenance interrupt while EOIcount is non-zero.
    pub lrenpie: bool,
    /// (NPIE) No-pending interrupt enable: maintenance interrupt while no list register is in
    /// the pending state.
    pub npie: bool,
    /// (VGrp0EIE) Maintenance interrupt while virtual Group 0 is enabled.
    pub vgrp0eie: bool,
    /// (VGrp0DIE) Maintenance interrupt while virtual Group 0 is disabled.
    pub vgrp0die: bool,
    /// (VGrp1EIE) Maintenance interrupt while virtual Group 1 is enabled.
    pub vgrp1eie: bool,
    /// (VGrp1DIE) Maintenance interrupt while virtual Group 1 is disabled.
    pub vgrp1die: bool,
    /// (vSGIEOICount) GICv4.1: deactivating a vSGI can increment EOIcount.
    pub vsgieoicount: bool,
    #[bits(1)]
    _res0_9: u8,
    /// (TC) Trap EL1 accesses to common ICC_*/ICV_* registers.
    pub tc: bool,
    /// (TALL0) Trap EL1 accesses to Group 0 ICC_*/ICV_* registers.
    pub tall0: bool,
    /// (TALL1) Trap EL1 accesses to Group 1 ICC_*/ICV_* registers.
    pub tall1: bool,
    /// (TSEI) Trap locally generated SEIs.
    pub tsei: bool,
    /// (TDIR) Trap EL1 writes to ICC_DIR_EL1 / ICV_DIR_EL1.
    pub tdir: bool,
    /// (DVIM) GICv4.1: mask directly injected virtual interrupts.
    pub dvim: bool,
    #[bits(11)]
    _res0_16: u16,
    /// (EOIcount) Deactivations of interrupts that had no list register entry (0..=31).
    #[bits(5)]
    pub eoicount: u8,
    _res0_32: u32,
}

/// ICH_VMCR_EL2: the vCPU's view of its CPU interface control state (ICV_* aliases).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchVmcr {
    /// (VENG0) Virtual Group 0 enable (ICV_IGRPEN0_EL1).
    pub veng0: bool,
    /// (VENG1) Virtual Group 1 enable (ICV_IGRPEN1_EL1).
    pub veng1: bool,
    /// (VAckCtl) Legacy acknowledge control (RES0 with system-register access).
    pub vackctl: bool,
    /// (VFIQEn) Group 0 as virtual FIQ (RES1 with system-register access).
    pub vfiqen: bool,
    /// (VCBPR) Common binary point (ICV_CTLR_EL1.CBPR).
    pub vcbpr: bool,
    #[bits(4)]
    _res0_5: u8,
    /// (VEOIM) Virtual EOI mode (ICV_CTLR_EL1.EOImode): 1 splits priority drop (EOIR) from
    /// deactivation (DIR).
    pub veoim: bool,
    #[bits(8)]
    _res0_10: u8,
    /// (VBPR1) Virtual Group 1 binary point (0..=7).
    #[bits(3)]
    pub vbpr1: u8,
    /// (VBPR0) Virtual Group 0 binary point (0..=7).
    #[bits(3)]
    pub vbpr0: u8,
    /// (VPMR) Virtual priority mask: only priorities below it are signalled.
    pub vpmr: u8,
    _res0_32: u32,
}

impl IchVmcr {
    /// A vCPU that takes every Group 1 interrupt: VENG1 = 1, VPMR = 0xFF.
    pub const fn group1_all() -> Self {
        Self::new().with_veng1(true).with_vpmr(0xFF)
    }
}

/// ICH_VTR_EL2: what the virtual CPU interface implements (read-only).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchVtr {
    /// (ListRegs) Number of list registers, minus one.
    #[bits(5)]
    pub listregs: u8,
    #[bits(13)]
    _res0_5: u16,
    /// (DVIM) GICv4.1: ICH_HCR_EL2.DVIM supported.
    pub dvim: bool,
    /// (TDS) Separate trapping of EL1 writes to ICV_DIR_EL1 supported.
    pub tds: bool,
    /// (nV4) Direct injection of virtual interrupts (GICv4) NOT supported.
    pub nv4: bool,
    /// (A3V) Affinity 3 valid.
    pub a3v: bool,
    /// (SEIS) Local SEI generation supported.
    pub seis: bool,
    /// (IDbits) Virtual INTID bits: 0b000 = 16, 0b001 = 24.
    #[bits(3)]
    pub idbits: u8,
    /// (PREbits) Virtual preemption bits, minus one.
    #[bits(3)]
    pub prebits: u8,
    /// (PRIbits) Virtual priority bits, minus one.
    #[bits(3)]
    pub pribits: u8,
    _res0_32: u32,
}

impl IchVtr {
    /// ListRegs + 1: how many list registers exist (1..=32 as encoded; at most 16 legal).
    pub const fn nr_lrs(&self) -> usize {
        self.listregs() as usize + 1
    }

    /// How many `ICH_AP{0,1}R<n>_EL2` registers the implemented preemption bits need:
    /// 1 for 5 bits, 2 for 6 bits, 4 for 7 bits.
    pub const fn nr_aprs(&self) -> usize {
        match self.prebits() {
            0..=4 => 1,
            5 => 2,
            _ => 4,
        }
    }
}

/// A 16-bit status register with one bit per list register.
macro_rules! lr_status_reg {
    ($(#[$meta:meta])* $name:ident, $field_doc:literal, $query:ident, $query_doc:literal) => {
        $(#[$meta])*
        #[bitfield(u64)]
        #[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
        pub struct $name {
            #[doc = $field_doc]
            pub status: u16,
            #[bits(48)]
            _res0_16: u64,
        }

        impl $name {
            #[doc = $query_doc]
            pub const fn $query(&self, lr: LrIndex) -> bool {
                self.status() & lr.bit() != 0
            }
        }
    };
}

lr_status_reg!(
    /// ICH_ELRSR_EL2: which list registers are empty (State = invalid and either HW = 1 or
    /// EOI = 0), so that reading them back can be skipped.
    IchElrsr,
    "(`Status<n>`) Bit n set: `ICH_LR<n>_EL2` holds no valid interrupt and no pending EOI \
     maintenance.",
    is_empty,
    "Whether list register `lr` is empty."
);

lr_status_reg!(
    /// ICH_EISR_EL2: which list registers signal an EOI maintenance interrupt (State =
    /// invalid, HW = 0, EOI = 1).
    IchEisr,
    "(`Status<n>`) Bit n set: `ICH_LR<n>_EL2` signals an EOI maintenance interrupt.",
    signals_eoi,
    "Whether list register `lr` signals an EOI maintenance interrupt."
);

/// ICH_MISR_EL2: which maintenance interrupt conditions hold (read-only).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchMisr {
    /// (EOI) At least one list register signals an EOI maintenance interrupt.
    pub eoi: bool,
    /// (U) Underflow: UIE set and at most one list register valid.
    pub u: bool,
    /// (LRENP) LRENPIE set and EOIcount non-zero.
    pub lrenp: bool,
    /// (NP) NPIE set and no list register pending.
    pub np: bool,
    /// (VGrp0E) VGrp0EIE set and virtual Group 0 enabled.
    pub vgrp0e: bool,
    /// (VGrp0D) VGrp0DIE set and virtual Group 0 disabled.
    pub vgrp0d: bool,
    /// (VGrp1E) VGrp1EIE set and virtual Group 1 enabled.
    pub vgrp1e: bool,
    /// (VGrp1D) VGrp1DIE set and virtual Group 1 disabled.
    pub vgrp1d: bool,
    #[bits(56)]
    _res0_8: u64,
}

impl IchMisr {
    /// Whether any condition holds (the maintenance interrupt is asserted if ICH_HCR_EL2.En).
    pub const fn any(&self) -> bool {
        self.into_bits() != 0
    }
}

/// `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2`: active priorities of the vCPU, saved and restored with
/// the vCPU.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IchApr {
    /// (`P<x>`) One bit per group priority, set while an interrupt of that priority is active.
    pub p: u32,
    #[bits(31)]
    _res0_32: u32,
    /// (NMI) `ICH_AP1R<n>_EL2` only, FEAT_GICv3_NMI: a non-maskable interrupt is active.
    pub nmi: bool,
}

/// ICC_CTLR_EL1: the host's physical CPU interface control.
///
/// # Why EOImode = 1
/// With EOImode = 1 a write to ICC_EOIR1_EL1 only drops the running priority; the interrupt
/// stays active until ICC_DIR_EL1 or, for a forwarded interrupt, until the guest deactivates
/// the virtual interrupt of an HW = 1 list register. That is how the physical vtimer PPI stays
/// active (and silent) while the guest owns it.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IccCtlr {
    /// (CBPR) Common binary point register.
    pub cbpr: bool,
    /// (EOImode) 1: EOIR drops priority only, DIR deactivates.
    pub eoimode: bool,
    #[bits(4)]
    _res0_2: u8,
    /// (PMHE) Priority mask hint enable.
    pub pmhe: bool,
    #[bits(1)]
    _res0_7: u8,
    /// (PRIbits) Priority bits implemented, minus one (read-only).
    #[bits(3)]
    pub pribits: u8,
    /// (IDbits) INTID bits: 0b000 = 16, 0b001 = 24 (read-only).
    #[bits(3)]
    pub idbits: u8,
    /// (SEIS) Local SEI generation supported (read-only).
    pub seis: bool,
    /// (A3V) Affinity 3 valid (read-only).
    pub a3v: bool,
    #[bits(2)]
    _res0_16: u8,
    /// (RSS) Range selector support (read-only).
    pub rss: bool,
    /// (ExtRange) Extended INTID range supported (read-only).
    pub extrange: bool,
    #[bits(44)]
    _res0_20: u64,
}

/// CNTV_CTL_EL0 / CNTHP_CTL_EL2: a generic-timer control register.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CntCtl {
    /// (ENABLE) The timer is enabled.
    pub enable: bool,
    /// (IMASK) The timer's interrupt is masked.
    pub imask: bool,
    /// (ISTATUS) The timer condition is met (read-only; ignored on write).
    pub istatus: bool,
    #[bits(61)]
    _res0_3: u64,
}

impl CntCtl {
    /// Whether the timer asserts its interrupt once its condition is met (ENABLE = 1 and
    /// IMASK = 0).
    pub const fn can_fire(&self) -> bool {
        self.enable() && !self.imask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> VIntId {
        VIntId::new(n).unwrap()
    }
    fn p(n: u32) -> PIntId {
        PIntId::new(n).unwrap()
    }

    #[test]
    fn ich_lr_golden() {
        // vINTID [31:0], pINTID [44:32], Priority [55:48], Group 60, HW 61, State [63:62].
        let lr = IchLr::hw_irq(v(27), p(27), 0xA0, true, LrState::Pending);
        assert_eq!(
            lr.into_bits(),
            27 | (27 << 32) | (0xA0 << 48) | (1 << 60) | (1 << 61) | (1 << 62)
        );
        assert_eq!(lr.pintid(), Some(27));
        assert!(!lr.eoi());

        let lr = IchLr::hw_irq(v(1019), p(1019), 0, false, LrState::Active);
        assert_eq!(lr.into_bits(), 1019 | (1019 << 32) | (1 << 61) | (2 << 62));
        // pINTID 1019 has bit 9 set: with HW = 1 that is bit 41 and it is not EOI.
        assert!(!lr.eoi());

        // HW = 0: bit 41 is EOI.
        let lr = IchLr::virtual_irq(v(40), 0x80, true, LrState::Pending, true);
        assert_eq!(
            lr.into_bits(),
            40 | (1 << 41) | (0x80 << 48) | (1 << 60) | (1 << 62)
        );
        assert!(lr.eoi());
        assert_eq!(lr.pintid(), None);
        assert!(!lr.signals_eoi());
        assert!(lr.with_state(LrState::Invalid).signals_eoi());
        assert!(!lr.with_state(LrState::Invalid).is_empty());
        assert!(IchLr::new().is_empty());
        assert!(IchLr::hw_irq(v(1), p(17), 0, true, LrState::Invalid).is_empty());

        assert_eq!(
            IchLr::new().with_state(LrState::PendingActive).into_bits(),
            3 << 62
        );
        assert_eq!(IchLr::new().with_nmi(true).into_bits(), 1 << 59);
        assert_eq!(IchLr::new().with_eoi(true).with_eoi(false).into_bits(), 0);
        assert_eq!(
            IchLr::new().with_pintid(p(1019)).with_eoi(true).into_bits(),
            1 << 41,
            "with_eoi clears HW and pINTID"
        );
        assert_eq!(IchLr::new().with_pintid(p(1000)).pintid(), Some(1000));
        assert_eq!(core::mem::size_of::<IchLr>(), 8);
    }

    #[test]
    fn lr_state_flags() {
        for s in [
            LrState::Invalid,
            LrState::Pending,
            LrState::Active,
            LrState::PendingActive,
        ] {
            assert_eq!(LrState::from_bits(s.into_bits()), s);
            assert_eq!(LrState::from_flags(s.is_pending(), s.is_active()), s);
        }
        assert!(!LrState::Invalid.is_valid());
    }

    #[test]
    fn ich_hcr_golden() {
        let bit = |h: IchHcr| h.into_bits();
        assert_eq!(bit(IchHcr::new().with_en(true)), 1 << 0);
        assert_eq!(bit(IchHcr::new().with_uie(true)), 1 << 1);
        assert_eq!(bit(IchHcr::new().with_lrenpie(true)), 1 << 2);
        assert_eq!(bit(IchHcr::new().with_npie(true)), 1 << 3);
        assert_eq!(bit(IchHcr::new().with_vgrp0eie(true)), 1 << 4);
        assert_eq!(bit(IchHcr::new().with_vgrp0die(true)), 1 << 5);
        assert_eq!(bit(IchHcr::new().with_vgrp1eie(true)), 1 << 6);
        assert_eq!(bit(IchHcr::new().with_vgrp1die(true)), 1 << 7);
        assert_eq!(bit(IchHcr::new().with_vsgieoicount(true)), 1 << 8);
        assert_eq!(bit(IchHcr::new().with_tc(true)), 1 << 10);
        assert_eq!(bit(IchHcr::new().with_tall0(true)), 1 << 11);
        assert_eq!(bit(IchHcr::new().with_tall1(true)), 1 << 12);
        assert_eq!(bit(IchHcr::new().with_tsei(true)), 1 << 13);
        assert_eq!(bit(IchHcr::new().with_tdir(true)), 1 << 14);
        assert_eq!(bit(IchHcr::new().with_dvim(true)), 1 << 15);
        assert_eq!(bit(IchHcr::new().with_eoicount(31)), 0x1F << 27);
    }

    #[test]
    fn ich_vmcr_golden() {
        let bit = |h: IchVmcr| h.into_bits();
        assert_eq!(bit(IchVmcr::new().with_veng0(true)), 1 << 0);
        assert_eq!(bit(IchVmcr::new().with_veng1(true)), 1 << 1);
        assert_eq!(bit(IchVmcr::new().with_vackctl(true)), 1 << 2);
        assert_eq!(bit(IchVmcr::new().with_vfiqen(true)), 1 << 3);
        assert_eq!(bit(IchVmcr::new().with_vcbpr(true)), 1 << 4);
        assert_eq!(bit(IchVmcr::new().with_veoim(true)), 1 << 9);
        assert_eq!(bit(IchVmcr::new().with_vbpr1(7)), 7 << 18);
        assert_eq!(bit(IchVmcr::new().with_vbpr0(7)), 7 << 21);
        assert_eq!(bit(IchVmcr::new().with_vpmr(0xFF)), 0xFF << 24);
        assert_eq!(bit(IchVmcr::group1_all()), (1 << 1) | (0xFF << 24));
    }

    #[test]
    fn ich_vtr_golden() {
        let bit = |h: IchVtr| h.into_bits();
        assert_eq!(bit(IchVtr::new().with_listregs(31)), 0x1F);
        assert_eq!(bit(IchVtr::new().with_dvim(true)), 1 << 18);
        assert_eq!(bit(IchVtr::new().with_tds(true)), 1 << 19);
        assert_eq!(bit(IchVtr::new().with_nv4(true)), 1 << 20);
        assert_eq!(bit(IchVtr::new().with_a3v(true)), 1 << 21);
        assert_eq!(bit(IchVtr::new().with_seis(true)), 1 << 22);
        assert_eq!(bit(IchVtr::new().with_idbits(7)), 7 << 23);
        assert_eq!(bit(IchVtr::new().with_prebits(7)), 7 << 26);
        assert_eq!(bit(IchVtr::new().with_pribits(7)), 7 << 29);
        // QEMU's virtual CPU interface: 4 list registers, 5 priority and preemption bits.
        let qemu = IchVtr::from_bits(3 | (4 << 26) | (4 << 29));
        assert_eq!(qemu.nr_lrs(), 4);
        assert_eq!(qemu.nr_aprs(), 1);
        assert_eq!(IchVtr::new().with_prebits(5).nr_aprs(), 2);
        assert_eq!(IchVtr::new().with_prebits(6).nr_aprs(), 4);
    }

    #[test]
    fn status_and_misr_golden() {
        let lr3 = LrIndex::new(3).unwrap();
        assert!(IchElrsr::from_bits(1 << 3).is_empty(lr3));
        assert!(!IchElrsr::from_bits(1 << 2).is_empty(lr3));
        assert!(IchEisr::from_bits(1 << 3).signals_eoi(lr3));
        assert_eq!(IchElrsr::from_bits(u64::MAX).status(), 0xFFFF);

        let bit = |h: IchMisr| h.into_bits();
        assert_eq!(bit(IchMisr::new().with_eoi(true)), 1 << 0);
        assert_eq!(bit(IchMisr::new().with_u(true)), 1 << 1);
        assert_eq!(bit(IchMisr::new().with_lrenp(true)), 1 << 2);
        assert_eq!(bit(IchMisr::new().with_np(true)), 1 << 3);
        assert_eq!(bit(IchMisr::new().with_vgrp0e(true)), 1 << 4);
        assert_eq!(bit(IchMisr::new().with_vgrp0d(true)), 1 << 5);
        assert_eq!(bit(IchMisr::new().with_vgrp1e(true)), 1 << 6);
        assert_eq!(bit(IchMisr::new().with_vgrp1d(true)), 1 << 7);
        assert!(!IchMisr::new().any());

        assert_eq!(IchApr::new().with_p(u32::MAX).into_bits(), 0xFFFF_FFFF);
        assert_eq!(IchApr::new().with_nmi(true).into_bits(), 1 << 63);
    }

    #[test]
    fn icc_ctlr_and_cnt_ctl_golden() {
        assert_eq!(IccCtlr::new().with_cbpr(true).into_bits(), 1);
        assert_eq!(IccCtlr::new().with_eoimode(true).into_bits(), 1 << 1);
        assert_eq!(IccCtlr::new().with_pmhe(true).into_bits(), 1 << 6);
        assert_eq!(IccCtlr::new().with_pribits(7).into_bits(), 7 << 8);
        assert_eq!(IccCtlr::new().with_idbits(7).into_bits(), 7 << 11);
        assert_eq!(IccCtlr::new().with_seis(true).into_bits(), 1 << 14);
        assert_eq!(IccCtlr::new().with_a3v(true).into_bits(), 1 << 15);
        assert_eq!(IccCtlr::new().with_rss(true).into_bits(), 1 << 18);
        assert_eq!(IccCtlr::new().with_extrange(true).into_bits(), 1 << 19);

        assert_eq!(CntCtl::new().with_enable(true).into_bits(), 1);
        assert_eq!(CntCtl::new().with_imask(true).into_bits(), 2);
        assert_eq!(CntCtl::new().with_istatus(true).into_bits(), 4);
        assert!(CntCtl::from_bits(1).can_fire());
        assert!(!CntCtl::from_bits(3).can_fire());
    }
}
