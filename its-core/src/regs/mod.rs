// SPDX-License-Identifier: MIT OR Apache-2.0
//! Register value types for the ITS, the redistributors and the distributor.
//!
//! Each register is a `#[repr(transparent)]` newtype over its integer, generated with
//! `bitfield-struct`, with zerocopy derives so the MMIO blocks in [`crate::mmio`] can read and
//! write it with one load or store. Field names follow Arm IHI 0069 (in snake case); each
//! field's documentation quotes the specification's name in parentheses.
//!
//! # Panics
//! The `with_*` and `set_*` builders generated for fields narrower than their Rust type panic
//! when given a value that does not fit the field (as `bitfield-struct` generates them). Values
//! that come from outside the driver should go through the `*_checked` forms, which return an
//! error instead; the typed helpers (`with_addr`, ...) take values that always fit.

mod dist;
mod its;
mod redist;

pub use dist::*;
pub use its::*;
pub use redist::*;

/// Memory cacheability attribute of a GIC table or queue (the InnerCache and OuterCache
/// fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cacheability {
    /// 0b000: Device-nGnRnE (InnerCache), or "same as inner" (OuterCache).
    DeviceOrSameAsInner,
    /// 0b001: Normal, non-cacheable.
    NonCacheable,
    /// 0b010: Normal, read-allocate, write-through.
    RaWt,
    /// 0b011: Normal, read-allocate, write-back.
    RaWb,
    /// 0b100: Normal, write-allocate, write-through.
    WaWt,
    /// 0b101: Normal, write-allocate, write-back.
    WaWb,
    /// 0b110: Normal, read- and write-allocate, write-through.
    RaWaWt,
    /// 0b111: Normal, read- and write-allocate, write-back.
    RaWaWb,
}

impl Cacheability {
    /// Field encoding.
    pub const fn into_bits(self) -> u8 {
        self as u8
    }

    /// Decodes the 3-bit field (higher bits ignored).
    pub const fn from_bits(v: u8) -> Self {
        match v & 7 {
            0 => Self::DeviceOrSameAsInner,
            1 => Self::NonCacheable,
            2 => Self::RaWt,
            3 => Self::RaWb,
            4 => Self::WaWt,
            5 => Self::WaWb,
            6 => Self::RaWaWt,
            _ => Self::RaWaWb,
        }
    }
}

/// Shareability attribute of a GIC table or queue (the Shareability field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Shareability {
    /// 0b00: non-shareable. The GIC may not snoop CPU caches: software must clean to PoC.
    NonShareable,
    /// 0b01: inner shareable.
    Inner,
    /// 0b10: outer shareable.
    Outer,
    /// 0b11: reserved.
    Reserved,
}

impl Shareability {
    /// Field encoding.
    pub const fn into_bits(self) -> u8 {
        self as u8
    }

    /// Decodes the 2-bit field (higher bits ignored).
    pub const fn from_bits(v: u8) -> Self {
        match v & 3 {
            0 => Self::NonShareable,
            1 => Self::Inner,
            2 => Self::Outer,
            _ => Self::Reserved,
        }
    }
}

/// The memory attributes the driver programs and reads back for a table or queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemAttrs {
    /// Shareability.
    pub shareability: Shareability,
    /// InnerCache.
    pub inner: Cacheability,
    /// OuterCache.
    pub outer: Cacheability,
}

impl MemAttrs {
    /// What Linux programs first: inner shareable, read/write-allocate write-back.
    pub const CACHED: Self = Self {
        shareability: Shareability::Inner,
        inner: Cacheability::RaWaWb,
        outer: Cacheability::DeviceOrSameAsInner,
    };

    /// The fallback when the GIC reports non-shareable memory: non-shareable, non-cacheable.
    /// Software then cleans every write to the point of coherency.
    pub const NON_CACHEABLE: Self = Self {
        shareability: Shareability::NonShareable,
        inner: Cacheability::NonCacheable,
        outer: Cacheability::DeviceOrSameAsInner,
    };

    /// Whether CPU writes must be cleaned to the point of coherency before the GIC reads them:
    /// the memory is not shared with the GIC, or the GIC reads it uncached.
    pub const fn needs_clean_to_poc(&self) -> bool {
        matches!(self.shareability, Shareability::NonShareable)
            || matches!(
                self.inner,
                Cacheability::NonCacheable | Cacheability::DeviceOrSameAsInner
            )
    }
}
