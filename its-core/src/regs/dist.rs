// SPDX-License-Identifier: MIT OR Apache-2.0
//! Distributor register values needed for LPI and GICv4 bring-up (Arm IHI 0069, "The GIC
//! Distributor register map").

use bitfield_struct::bitfield;

/// GICD_CTLR with affinity routing enabled and a single security state as the Non-secure
/// view sees it (offset 0x0000, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicdCtlr {
    /// (EnableGrp0) or, in the Non-secure view with two security states, (EnableGrp1).
    pub enable_grp0: bool,
    /// (EnableGrp1) or (EnableGrp1NS) in the Secure view.
    pub enable_grp1: bool,
    /// (EnableGrp1S) with two security states, Secure view.
    pub enable_grp1s: bool,
    #[bits(1)]
    __: u8,
    /// (ARE) or (ARE_S): affinity routing enabled.
    pub are: bool,
    /// (ARE_NS) with two security states.
    pub are_ns: bool,
    /// (DS) Disable security.
    pub ds: bool,
    /// (E1NWF) Enable 1 of N wakeup.
    pub e1nwf: bool,
    #[bits(23)]
    __: u32,
    /// (RWP) Register write pending.
    pub rwp: bool,
}

/// GICD_TYPER, the distributor type register (offset 0x0004, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicdTyper {
    /// (ITLinesNumber) SPIs supported: 32 * (N + 1).
    #[bits(5)]
    pub it_lines_number: u8,
    /// (CPUNumber) Legacy: PEs supported minus one.
    #[bits(3)]
    pub cpu_number: u8,
    /// (ESPI) Extended SPIs supported.
    pub espi: bool,
    /// (NMI) Non-maskable interrupts supported.
    pub nmi: bool,
    /// (SecurityExtn) Two security states.
    pub security_extn: bool,
    /// (num_LPIs) LPIs supported when IDbits alone does not say: 2^(num_LPIs+1) LPIs.
    #[bits(5)]
    pub num_lpis: u8,
    /// (MBIS) Message-based SPIs supported.
    pub mbis: bool,
    /// (LPIS) LPIs supported.
    pub lpis: bool,
    /// (DVIS) GICv4: direct injection of virtual LPIs supported.
    pub dvis: bool,
    /// (IDbits) INTID bits supported, minus one.
    #[bits(5)]
    pub id_bits: u8,
    /// (A3V) Affinity level 3 values supported.
    pub a3v: bool,
    /// (No1N) 1 of N SPI routing not supported.
    pub no1n: bool,
    /// (RSS) Range selector support.
    pub rss: bool,
    /// (ESPI_range) Extended SPI range.
    #[bits(5)]
    pub espi_range: u8,
}

/// GICD_TYPER2 (GICv4.1, offset 0x000c, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicdTyper2 {
    /// (VID) vPE ID bits, minus one (valid when VIL = 1).
    #[bits(5)]
    pub vid: u8,
    #[bits(2)]
    __: u8,
    /// (VIL) VID is valid; otherwise vPE IDs are 16 bits.
    pub vil: bool,
    /// (nASSGIcap) SGIs can be configured without an active state.
    pub nassgi_cap: bool,
    #[bits(23)]
    __: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10.0 at reset: GICD_TYPER = 0x037e_0208 (LPIS, DVIS, IDbits = 15 meaning 16 bits).
    #[test]
    fn qemu_typer() {
        let t = GicdTyper::from(0x037e_0208);
        assert!(t.lpis());
        assert!(t.dvis());
        assert_eq!(t.id_bits(), 15);
        assert!(t.a3v());
        assert!(t.no1n());
        assert_eq!(t.it_lines_number(), 8);
        // QEMU 7.2 reports 0x037e_0007.
        let t72 = GicdTyper::from(0x037e_0007);
        assert!(t72.lpis() && t72.dvis());
        assert_eq!(t72.id_bits(), 15);
    }

    #[test]
    fn field_positions() {
        assert_eq!(GicdTyper::LPIS_OFFSET, 17);
        assert_eq!(GicdTyper::DVIS_OFFSET, 18);
        assert_eq!(GicdTyper::ID_BITS_OFFSET, 19);
        assert_eq!(GicdCtlr::ARE_OFFSET, 4);
        assert_eq!(GicdCtlr::RWP_OFFSET, 31);
        assert_eq!(GicdTyper2::VIL_OFFSET, 7);
    }
}
