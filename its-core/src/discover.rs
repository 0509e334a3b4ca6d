// SPDX-License-Identifier: MIT OR Apache-2.0
//! Device-tree discovery of the GIC: distributor, redistributors, ITSs, PCI msi-map.
//!
//! A hypervisor booted with a flattened device tree finds there everything the driver crates
//! need to start: [`GicDescription::from_fdt`] reads, without allocating,
//! - the distributor (GICD) of the first available `arm,gic-v3` node, the first `reg` entry;
//! - every redistributor region: the `#redistributor-regions` (default 1) `reg` entries after
//!   the GICD, and the optional `redistributor-stride`;
//! - the GIC's maintenance interrupt (its `interrupts` property), when the tree has one;
//! - every ITS: the available `arm,gic-v3-its` children of the GIC that carry
//!   `msi-controller`, with their `reg` and `phandle`;
//! - every PCI host bridge (`device_type = "pci"`) with its `msi-map` (or `msi-parent`) and
//!   `msi-map-mask`.
//!
//! Addresses are translated to physical addresses through the `ranges` of every bus above a
//! node. The tree itself only says where the redistributor *regions* are: the redistributors
//! inside them are found by reading GICR_TYPER frame by frame, which [`RedistributorWalk`]
//! does through a reader the caller supplies (this module never touches MMIO). A PCI requester
//! ID maps to an ITS and a DeviceID through the host bridge's msi-map with
//! [`GicDescription::device_for_rid`].
//!
//! The blob is checked whole (header, block bounds, every token, name and string offset) by
//! the `dtoolkit` crate before any node is read; nothing here panics on any input, and every
//! malformed or unexpected value is a [`DiscoverError`].
//!
//! ```no_run
//! use its_core::discover::{GICR_TYPER_OFFSET, GicDescription, Redistributor};
//! use its_core::regs::GicrTyper;
//!
//! # fn read_u64(_pa: u64) -> u64 { 0 }
//! # fn run(dtb: &[u8]) -> Result<(), its_core::discover::DiscoverError> {
//! let gic = GicDescription::from_fdt(dtb)?;
//! let gicd = gic.distributor();
//!
//! // The reader gets each redistributor's RD_base; it maps and reads GICR_TYPER there.
//! let mut rds = [Redistributor::default(); 8];
//! let n = gic.walk_redistributors_into(
//!     |rd_base| GicrTyper::from(read_u64(rd_base.get() + GICR_TYPER_OFFSET)),
//!     &mut rds,
//! )?;
//! for rd in &rds[..n] {
//!     let _ = (rd.base, rd.processor(), rd.affinity());
//! }
//!
//! // The DeviceID of the PCI function 00:02.0 on the first host bridge.
//! if let Some(host) = gic.pci_hosts().first() {
//!     let (its, device) = gic.device_for_rid(host, 0x0010)?;
//!     let _ = (its.region.base(), its.translater(), device);
//! }
//! # let _ = gicd;
//! # Ok(())
//! # }
//! ```
//!
//! References: Arm IHI 0069 (GIC architecture version 3 and 4), "GICR_TYPER" and "The GIC
//! Redistributor register map"; the device-tree bindings "arm,gic-v3" (interrupt-controller)
//! and "pci-msi" (msi-map, msi-map-mask, msi-parent); the Devicetree Specification, "reg",
//! "ranges", "status".

use dtoolkit::fdt::{Fdt, FdtNode, FdtProperty};
use dtoolkit::{Node, Property};

use crate::addr::PhysAddr;
use crate::caps::RedistCaps;
use crate::ids::{DeviceId, IntId, ProcessorNumber};
use crate::regs::GicrTyper;

#[cfg(test)]
mod tests;

/// How many redistributor regions a [`GicDescription`] holds.
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 16;
/// How many ITSs a [`GicDescription`] holds.
pub const MAX_ITS: usize = 8;
/// How many PCI host bridges a [`GicDescription`] holds.
pub const MAX_PCI_HOSTS: usize = 8;
/// How deep the tree may nest (the root is depth 0); deeper trees are refused.
pub const MAX_DEPTH: usize = 32;

/// One redistributor frame (RD_base, SGI_base, VLPI_base, ...): 64 KiB.
pub const GICR_FRAME_SIZE: u64 = 0x1_0000;
/// The offset of GICR_TYPER in a redistributor's RD_base frame.
pub const GICR_TYPER_OFFSET: u64 = 0x8;
/// The offset of GITS_TRANSLATER from an ITS's base (in its second 64 KiB frame).
pub const GITS_TRANSLATER_OFFSET: u64 = 0x1_0040;

/// A device-tree node this module reads, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DtNode {
    /// The `arm,gic-v3` node.
    Gic,
    /// An `arm,gic-v3-its` node.
    Its,
    /// A PCI host bridge node.
    PciHost,
}

/// Why a device tree, or a redistributor walk, could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DiscoverError {
    /// The blob is not a valid flattened device tree.
    #[error("not a valid flattened device tree: {reason}")]
    InvalidBlob {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No available `arm,gic-v3` node.
    #[error("the device tree has no available arm,gic-v3 node")]
    NoGic,
    /// A `reg` property missing, too short, of an unsupported cell count, or describing an
    /// empty or wrapping region.
    #[error("malformed reg in the {node:?} node")]
    MalformedReg {
        /// The node.
        node: DtNode,
    },
    /// Another property with a value this module cannot use.
    #[error("malformed {property} in the {node:?} node")]
    MalformedProperty {
        /// The node.
        node: DtNode,
        /// The property.
        property: &'static str,
    },
    /// An address no `ranges` of the buses above it translates to a physical address.
    #[error("address {address:#x} of the {node:?} node is not translatable to the root")]
    Untranslatable {
        /// The node.
        node: DtNode,
        /// The address, in the address space where translation stopped.
        address: u64,
    },
    /// The tree nests deeper than [`MAX_DEPTH`].
    #[error("the device tree nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More redistributor regions, ITSs or PCI host bridges than a [`GicDescription`] holds.
    #[error("more than {capacity} {node:?} entries")]
    TooMany {
        /// What there are too many of ([`DtNode::Gic`]: redistributor regions).
        node: DtNode,
        /// How many are held.
        capacity: usize,
    },
    /// A redistributor, or the frame holding its GICR_TYPER, lies beyond the end of its
    /// region: the region ended before a redistributor with GICR_TYPER.Last.
    #[error("redistributor at {frame:#x} runs past its region {region_base:#x}+{region_size:#x}")]
    WalkPastRegion {
        /// The region's base.
        region_base: u64,
        /// The region's size.
        region_size: u64,
        /// The RD_base the walk was at.
        frame: u64,
    },
    /// The tree's `redistributor-stride` is smaller than the frames a redistributor has.
    #[error("redistributor-stride {stride:#x} is smaller than a redistributor ({needed:#x})")]
    StrideTooSmall {
        /// The stride from the tree.
        stride: u64,
        /// The bytes the redistributor's frames take.
        needed: u64,
    },
    /// The caller's buffer holds fewer redistributors than the walk found.
    #[error("more than {capacity} redistributors")]
    TooManyRedistributors {
        /// The buffer's length.
        capacity: usize,
    },
    /// The requester ID matches no msi-map entry (or the host bridge has no MSI mapping).
    #[error("requester ID {rid:#06x} is not mapped to an MSI controller")]
    RidNotMapped {
        /// The requester ID.
        rid: u16,
    },
    /// An msi-map entry names a phandle that is not one of the ITSs found.
    #[error("msi-map names phandle {phandle:#x}, which is not an ITS")]
    UnknownMsiController {
        /// The phandle.
        phandle: u32,
    },
}

/// A physical region: base and a non-zero size that does not wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MmioRegion {
    base: PhysAddr,
    size: u64,
}

impl MmioRegion {
    /// A region of `size` bytes at `base`, or `None` when `size` is 0 or the region wraps.
    pub const fn new(base: PhysAddr, size: u64) -> Option<Self> {
        if size == 0 || base.get().checked_add(size).is_none() {
            None
        } else {
            Some(Self { base, size })
        }
    }

    /// The first byte.
    pub const fn base(&self) -> PhysAddr {
        self.base
    }

    /// The size in bytes.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The first byte after the region.
    pub const fn end(&self) -> u64 {
        // Cannot wrap: `new` refused regions that do.
        self.base.get().wrapping_add(self.size)
    }
}

/// The kind of a GIC interrupt specifier (its first cell, per the `arm,gic-v3` binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GicIntKind {
    /// A shared peripheral interrupt (0): INTID 32 + number.
    Spi,
    /// A private peripheral interrupt (1): INTID 16 + number.
    Ppi,
    /// An extended SPI (2): INTID 4096 + number.
    ExtendedSpi,
    /// An extended PPI (3): INTID 1056 + number.
    ExtendedPpi,
}

/// An interrupt as a GIC interrupt specifier describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GicInterrupt {
    /// SPI, PPI or their extended ranges.
    pub kind: GicIntKind,
    /// The number within its kind.
    pub number: u32,
    /// The third cell: trigger type and level flags (1 = rising edge, 4 = level high).
    pub flags: u32,
}

impl GicInterrupt {
    /// The interrupt of a specifier's three cells, or `None` for an unknown kind or a number
    /// outside its kind's range.
    pub const fn from_cells(kind: u32, number: u32, flags: u32) -> Option<Self> {
        let (kind, count) = match kind {
            0 => (GicIntKind::Spi, 988),
            1 => (GicIntKind::Ppi, 16),
            2 => (GicIntKind::ExtendedSpi, 1024),
            3 => (GicIntKind::ExtendedPpi, 64),
            _ => return None,
        };
        if number >= count {
            return None;
        }
        Some(Self {
            kind,
            number,
            flags,
        })
    }

    /// The INTID.
    pub const fn intid(&self) -> IntId {
        // `from_cells` bounds `number`, so none of these overflow.
        IntId::new(match self.kind {
            GicIntKind::Spi => 32 + self.number,
            GicIntKind::Ppi => 16 + self.number,
            GicIntKind::ExtendedSpi => 4096 + self.number,
            GicIntKind::ExtendedPpi => 1056 + self.number,
        })
    }
}

/// An ITS found in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ItsNode {
    /// Its register frames (ITS_base, first `reg` entry).
    pub region: MmioRegion,
    /// The node's phandle, which msi-map and msi-parent entries name.
    pub phandle: Option<u32>,
}

impl ItsNode {
    /// The physical address of GITS_TRANSLATER, the register devices write MSIs to.
    pub const fn translater(&self) -> PhysAddr {
        PhysAddr::new(
            self.region
                .base()
                .get()
                .saturating_add(GITS_TRANSLATER_OFFSET),
        )
    }
}

/// One msi-map entry: requester IDs `rid_base..rid_base + length` map to the MSI specifiers
/// (ITS DeviceIDs) `msi_base..msi_base + length` of the controller `msi_controller`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MsiMapEntry {
    /// The first requester ID (after masking with msi-map-mask).
    pub rid_base: u32,
    /// The phandle of the MSI controller (an ITS).
    pub msi_controller: u32,
    /// The first MSI specifier: the DeviceID `rid_base` maps to.
    pub msi_base: u32,
    /// How many IDs the entry maps.
    pub length: u32,
}

impl MsiMapEntry {
    /// The MSI specifier `rid` (already masked) maps to, if the entry covers it.
    pub const fn map(&self, rid: u32) -> Option<u32> {
        if rid < self.rid_base {
            return None;
        }
        let offset = rid - self.rid_base;
        if offset >= self.length {
            return None;
        }
        // Checked when the entry was read: msi_base + length - 1 fits in 32 bits.
        Some(self.msi_base.wrapping_add(offset))
    }

    fn from_be(cells: &[u8]) -> Option<Self> {
        Some(Self {
            rid_base: be32(cells, 0)?,
            msi_controller: be32(cells, 1)?,
            msi_base: be32(cells, 2)?,
            length: be32(cells, 3)?,
        })
    }
}

/// How a PCI host bridge's requester IDs reach an MSI controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MsiRoute<'a> {
    /// No msi-map and no msi-parent.
    None,
    /// The raw msi-map value, checked to be whole 4-cell entries.
    Map(&'a [u8]),
    /// msi-parent with one phandle: DeviceID = requester ID.
    Parent(u32),
}

/// A PCI host bridge found in the tree (`device_type = "pci"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciHost<'a> {
    name: &'a str,
    domain: Option<u32>,
    route: MsiRoute<'a>,
    msi_map_mask: u32,
}

impl<'a> PciHost<'a> {
    /// The node's name (`pcie@10000000`).
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The `linux,pci-domain` property, if present.
    pub const fn domain(&self) -> Option<u32> {
        self.domain
    }

    /// The `msi-map-mask` (all ones when absent).
    pub const fn msi_map_mask(&self) -> u32 {
        self.msi_map_mask
    }

    /// Whether the bridge has an msi-map or msi-parent (otherwise its functions have only
    /// legacy INTx interrupts).
    pub const fn has_msi(&self) -> bool {
        !matches!(self.route, MsiRoute::None)
    }

    /// The msi-map entries. A bridge with only `msi-parent` yields one identity entry over all
    /// 2^16 requester IDs; one without either yields nothing.
    pub fn msi_map(&self) -> MsiMapIter<'a> {
        match self.route {
            MsiRoute::None => MsiMapIter {
                raw: &[],
                identity: None,
            },
            MsiRoute::Map(raw) => MsiMapIter {
                raw,
                identity: None,
            },
            MsiRoute::Parent(phandle) => MsiMapIter {
                raw: &[],
                identity: Some(MsiMapEntry {
                    rid_base: 0,
                    msi_controller: phandle,
                    msi_base: 0,
                    length: 0x1_0000,
                }),
            },
        }
    }

    /// The MSI controller's phandle and the DeviceID a requester ID maps to: the RID is masked
    /// with msi-map-mask and the first entry covering it applies.
    ///
    /// # Errors
    /// [`DiscoverError::RidNotMapped`] when no entry covers the RID.
    pub fn map_rid(&self, rid: u16) -> Result<(u32, DeviceId), DiscoverError> {
        let masked = u32::from(rid) & self.msi_map_mask;
        self.msi_map()
            .find_map(|e| {
                e.map(masked)
                    .map(|id| (e.msi_controller, DeviceId::new(id)))
            })
            .ok_or(DiscoverError::RidNotMapped { rid })
    }
}

/// The entries of a PCI host bridge's msi-map ([`PciHost::msi_map`]).
#[derive(Clone, Debug)]
pub struct MsiMapIter<'a> {
    raw: &'a [u8],
    identity: Option<MsiMapEntry>,
}

impl Iterator for MsiMapIter<'_> {
    type Item = MsiMapEntry;

    fn next(&mut self) -> Option<MsiMapEntry> {
        if let Some(e) = self.identity.take() {
            return Some(e);
        }
        let (entry, rest) = self.raw.split_at_checked(16)?;
        self.raw = rest;
        MsiMapEntry::from_be(entry)
    }
}

/// One redistributor found by a walk: its RD_base and GICR_TYPER.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Redistributor {
    /// RD_base, the first of its frames.
    pub base: PhysAddr,
    /// Its GICR_TYPER as read.
    pub typer: GicrTyper,
}

impl Redistributor {
    /// GICR_TYPER.Processor_Number.
    pub const fn processor(&self) -> ProcessorNumber {
        self.typer.processor()
    }

    /// GICR_TYPER.Affinity_Value: Aff3.Aff2.Aff1.Aff0 of the PE it serves.
    pub const fn affinity(&self) -> u32 {
        self.typer.affinity()
    }

    /// Everything GICR_TYPER says.
    pub const fn caps(&self) -> RedistCaps {
        RedistCaps::from_typer(self.typer)
    }
}

/// The GIC as a device tree describes it ([`GicDescription::from_fdt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GicDescription<'a> {
    distributor: MmioRegion,
    redistributor_regions: heapless::Vec<MmioRegion, MAX_REDISTRIBUTOR_REGIONS>,
    redistributor_stride: Option<u64>,
    maintenance_interrupt: Option<GicInterrupt>,
    phandle: Option<u32>,
    its: heapless::Vec<ItsNode, MAX_ITS>,
    pci_hosts: heapless::Vec<PciHost<'a>, MAX_PCI_HOSTS>,
}

impl<'a> GicDescription<'a> {
    /// Reads the GIC, its ITSs and the PCI host bridges from a flattened device tree.
    ///
    /// `dtb` may extend past the blob (a firmware region): only the header's `totalsize`
    /// bytes are read.
    ///
    /// # Errors
    /// [`DiscoverError::InvalidBlob`] for a blob that does not validate,
    /// [`DiscoverError::NoGic`] without an available `arm,gic-v3` node, and the
    /// `Malformed*`, [`DiscoverError::Untranslatable`], [`DiscoverError::TooDeep`] and
    /// [`DiscoverError::TooMany`] errors for contents this module cannot use.
    pub fn from_fdt(dtb: &'a [u8]) -> Result<Self, DiscoverError> {
        let fdt = open(dtb)?;
        let mut found = Found::default();
        walk(fdt.root(), None, 0, &mut |node, parent| {
            found.visit(node, parent)
        })?;
        let gic = found.gic.ok_or(DiscoverError::NoGic)?;
        let gic = Self {
            pci_hosts: found.pci_hosts,
            ..gic
        };
        crate::logging::info!(
            "its-core: GICv3 in the device tree: GICD at {}, {} redistributor regions, {} ITSs, {} PCI host bridges",
            gic.distributor.base,
            gic.redistributor_regions.len(),
            gic.its.len(),
            gic.pci_hosts.len()
        );
        Ok(gic)
    }

    /// The distributor's registers (GICD).
    pub const fn distributor(&self) -> MmioRegion {
        self.distributor
    }

    /// The redistributor regions, in `reg` order.
    pub fn redistributor_regions(&self) -> &[MmioRegion] {
        &self.redistributor_regions
    }

    /// The tree's `redistributor-stride`, when it has one (a multiple of 64 KiB).
    pub const fn redistributor_stride(&self) -> Option<u64> {
        self.redistributor_stride
    }

    /// The GIC's maintenance interrupt (its `interrupts` property), if the tree names one.
    pub const fn maintenance_interrupt(&self) -> Option<GicInterrupt> {
        self.maintenance_interrupt
    }

    /// The GIC node's phandle.
    pub const fn phandle(&self) -> Option<u32> {
        self.phandle
    }

    /// The available ITSs, in tree order.
    pub fn its(&self) -> &[ItsNode] {
        &self.its
    }

    /// The ITS with this phandle.
    pub fn its_by_phandle(&self, phandle: u32) -> Option<&ItsNode> {
        self.its.iter().find(|its| its.phandle == Some(phandle))
    }

    /// The available PCI host bridges, in tree order.
    pub fn pci_hosts(&self) -> &[PciHost<'a>] {
        &self.pci_hosts
    }

    /// The ITS and DeviceID a PCI requester ID of `host` maps to ([`PciHost::map_rid`]).
    ///
    /// # Errors
    /// [`DiscoverError::RidNotMapped`] when the host's msi-map does not cover the RID,
    /// [`DiscoverError::UnknownMsiController`] when the entry names a phandle that is not an
    /// available ITS of this GIC.
    pub fn device_for_rid(
        &self,
        host: &PciHost<'_>,
        rid: u16,
    ) -> Result<(ItsNode, DeviceId), DiscoverError> {
        let (phandle, device) = host.map_rid(rid)?;
        let its = self
            .its_by_phandle(phandle)
            .ok_or(DiscoverError::UnknownMsiController { phandle })?;
        Ok((*its, device))
    }

    /// A walk over the redistributors of every region, reading each one's GICR_TYPER with
    /// `read_typer` (given the RD_base; the register is at [`GICR_TYPER_OFFSET`] from it).
    pub fn redistributors<R>(&self, read_typer: R) -> RedistributorWalk<'_, R>
    where
        R: FnMut(PhysAddr) -> GicrTyper,
    {
        RedistributorWalk::new(
            &self.redistributor_regions,
            self.redistributor_stride,
            read_typer,
        )
    }

    /// Walks the redistributors into `out` and returns how many there are.
    ///
    /// # Errors
    /// [`DiscoverError::TooManyRedistributors`] when `out` is too short, and the walk's
    /// errors ([`RedistributorWalk`]).
    pub fn walk_redistributors_into<R>(
        &self,
        read_typer: R,
        out: &mut [Redistributor],
    ) -> Result<usize, DiscoverError>
    where
        R: FnMut(PhysAddr) -> GicrTyper,
    {
        let capacity = out.len();
        let mut slots = out.iter_mut();
        let mut count = 0;
        for rd in self.redistributors(read_typer) {
            let rd = rd?;
            let slot = slots
                .next()
                .ok_or(DiscoverError::TooManyRedistributors { capacity })?;
            *slot = rd;
            count += 1;
        }
        Ok(count)
    }
}

/// A walk over the redistributors of a list of regions, frame by frame.
///
/// At each RD_base the walk reads GICR_TYPER through the caller's reader, yields the
/// redistributor, and steps by the tree's `redistributor-stride`, or else by 2 frames
/// (128 KiB; 4 frames, 256 KiB, when GICR_TYPER.VLPIS is set), until a redistributor with
/// GICR_TYPER.Last ends the region. Every redistributor must lie inside its region: a walk
/// that would read or step past the end yields [`DiscoverError::WalkPastRegion`] and stops,
/// so it performs at most size / 128 KiB reads per region.
#[derive(Clone, Debug)]
pub struct RedistributorWalk<'r, R> {
    regions: &'r [MmioRegion],
    stride: Option<u64>,
    read_typer: R,
    region: usize,
    offset: u64,
    done: bool,
}

impl<'r, R> RedistributorWalk<'r, R>
where
    R: FnMut(PhysAddr) -> GicrTyper,
{
    /// A walk over `regions` with an optional stride (from the tree) and a GICR_TYPER reader.
    pub fn new(regions: &'r [MmioRegion], stride: Option<u64>, read_typer: R) -> Self {
        Self {
            regions,
            stride,
            read_typer,
            region: 0,
            offset: 0,
            done: false,
        }
    }

    fn step(&mut self) -> Option<Result<Redistributor, DiscoverError>> {
        let region = *self.regions.get(self.region)?;
        let frame = region.base().get().wrapping_add(self.offset);
        let past = DiscoverError::WalkPastRegion {
            region_base: region.base().get(),
            region_size: region.size(),
            frame,
        };
        // `offset` < size, so `frame` is inside the region and does not wrap.
        if region.size() - self.offset < GICR_FRAME_SIZE {
            return Some(Err(past));
        }
        let base = PhysAddr::new(frame);
        let typer = (self.read_typer)(base);
        let needed = if typer.vlpis() { 4 } else { 2 } * GICR_FRAME_SIZE;
        let step = self.stride.unwrap_or(needed);
        if step < needed {
            return Some(Err(DiscoverError::StrideTooSmall {
                stride: step,
                needed,
            }));
        }
        if region.size() - self.offset < needed {
            return Some(Err(past));
        }
        if typer.last() {
            self.region += 1;
            self.offset = 0;
        } else if region.size() - self.offset <= step {
            // No room for another redistributor, yet this one is not the last.
            return Some(Err(past));
        } else {
            self.offset += step;
        }
        Some(Ok(Redistributor { base, typer }))
    }
}

impl<R> Iterator for RedistributorWalk<'_, R>
where
    R: FnMut(PhysAddr) -> GicrTyper,
{
    type Item = Result<Redistributor, DiscoverError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Validates `dtb` (cut to the header's `totalsize`) as a flattened device tree.
fn open(dtb: &[u8]) -> Result<Fdt<'_>, DiscoverError> {
    open_blob(dtb).map_err(|reason| DiscoverError::InvalidBlob { reason })
}

/// Opens `dtb`, cut to its header's `totalsize`, with the parser's checks of the whole
/// blob; what is wrong with it otherwise. Shared with `guest-fdt`, which reads host trees
/// the same way; not part of the public API.
#[doc(hidden)]
pub fn open_blob(dtb: &[u8]) -> Result<Fdt<'_>, &'static str> {
    let total = be32(dtb, 1).ok_or("shorter than a header")?;
    let blob = usize::try_from(total)
        .ok()
        .and_then(|total| dtb.get(..total))
        .ok_or("shorter than its totalsize")?;
    Fdt::new(blob).map_err(|e| blob_error(&e.kind))
}

/// A fixed description of the parser's error.
fn blob_error(kind: &dtoolkit::error::FdtErrorKind) -> &'static str {
    use dtoolkit::error::FdtErrorKind as K;
    match kind {
        K::InvalidMagic => "bad magic",
        K::UnsupportedVersion(_) => "unsupported version",
        K::InvalidLength => "bad length",
        K::InvalidHeader(why) => why,
        K::BadToken(_) => "bad structure token",
        K::InvalidOffset => "offset out of bounds",
        K::InvalidString => "bad string",
        K::InvalidNodeName => "bad node name",
        K::InvalidPropertyName => "bad property name",
        K::MemReserveNotTerminated | K::MemReserveInvalid => "bad memory reservation block",
        _ => "rejected by the parser",
    }
}

/// The `index`th big-endian 32-bit cell of `bytes`.
fn be32(bytes: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let cell = bytes.get(start..start.checked_add(4)?)?;
    Some(u32::from_be_bytes(cell.try_into().ok()?))
}

/// A node's ancestors, innermost first, kept on the stack during a walk.
struct Ancestors<'p, 'a> {
    node: FdtNode<'a>,
    up: Option<&'p Ancestors<'p, 'a>>,
}

/// Depth-first walk from `node`; `visit` returns whether to descend into the node's children.
fn walk<'a, F>(
    node: FdtNode<'a>,
    parent: Option<&Ancestors<'_, 'a>>,
    depth: usize,
    visit: &mut F,
) -> Result<(), DiscoverError>
where
    F: for<'p> FnMut(FdtNode<'a>, Option<&'p Ancestors<'p, 'a>>) -> Result<bool, DiscoverError>,
{
    if depth > MAX_DEPTH {
        return Err(DiscoverError::TooDeep { limit: MAX_DEPTH });
    }
    if !visit(node, parent)? {
        return Ok(());
    }
    let here = Ancestors { node, up: parent };
    for child in node.children() {
        walk(child, Some(&here), depth + 1, visit)?;
    }
    Ok(())
}

/// Whether a node's `status` lets it be used (absent, "okay" or "ok").
fn available(node: &FdtNode<'_>) -> bool {
    match node.property("status") {
        None => true,
        Some(p) => matches!(p.value(), b"okay\0" | b"ok\0"),
    }
}

/// A property's value, borrowed from the blob rather than from the property.
fn raw<'a>(property: FdtProperty<'a>) -> &'a [u8] {
    property.value_as::<&'a [u8]>().unwrap_or(&[])
}

fn is_compatible(node: &FdtNode<'_>, with: &str) -> bool {
    node.compatible().is_some_and(|mut c| c.any(|s| s == with))
}

fn u32_property(
    node: &FdtNode<'_>,
    name: &'static str,
    at: DtNode,
) -> Result<Option<u32>, DiscoverError> {
    node.property(name)
        .map(|p| p.value_as::<u32>())
        .transpose()
        .map_err(|_| DiscoverError::MalformedProperty {
            node: at,
            property: name,
        })
}

fn phandle_of(node: &FdtNode<'_>, at: DtNode) -> Result<Option<u32>, DiscoverError> {
    match u32_property(node, "phandle", at)? {
        Some(p) => Ok(Some(p)),
        None => u32_property(node, "linux,phandle", at),
    }
}

/// Translates `address..address + size`, in the address space of the children of `bus`, to
/// the root's address space through the `ranges` of `bus` and of every bus above it.
fn translate(
    mut address: u64,
    size: u64,
    mut bus: Option<&Ancestors<'_, '_>>,
    at: DtNode,
) -> Result<u64, DiscoverError> {
    while let Some(Ancestors { node, up }) = bus {
        if up.is_none() {
            // The root: its children's addresses are physical addresses.
            break;
        }
        let untranslatable = DiscoverError::Untranslatable { node: at, address };
        match node.property("ranges") {
            // No ranges: the bus's children are not in its parent's address space.
            None => return Err(untranslatable),
            // Empty ranges: the identity.
            Some(p) if p.value().is_empty() => {}
            Some(_) => {
                let mut ranges = node
                    .ranges()
                    .map_err(|_| DiscoverError::MalformedProperty {
                        node: at,
                        property: "ranges",
                    })?
                    .ok_or(untranslatable)?;
                address = ranges
                    .find_map(|r| {
                        let child = r.child_bus_address::<u64>().ok()?;
                        let parent = r.parent_bus_address::<u64>().ok()?;
                        let length = r.length::<u64>().ok()?;
                        let offset = address.checked_sub(child)?;
                        (offset.checked_add(size)? <= length)
                            .then(|| parent.checked_add(offset))
                            .flatten()
                    })
                    .ok_or(untranslatable)?;
            }
        }
        bus = *up;
    }
    Ok(address)
}

/// The `reg` entries of `node` as physical regions, `index`th entry; `None` past the end.
fn reg_entry(
    node: &FdtNode<'_>,
    parent: Option<&Ancestors<'_, '_>>,
    index: usize,
    at: DtNode,
) -> Result<Option<MmioRegion>, DiscoverError> {
    let malformed = DiscoverError::MalformedReg { node: at };
    let mut reg = node.reg().map_err(|_| malformed)?.ok_or(malformed)?;
    let Some(entry) = reg.nth(index) else {
        return Ok(None);
    };
    let address = entry.address::<u64>().map_err(|_| malformed)?;
    let size = entry.size::<u64>().map_err(|_| malformed)?;
    let base = translate(address, size, parent, at)?;
    MmioRegion::new(PhysAddr::new(base), size)
        .map(Some)
        .ok_or(malformed)
}

/// What a walk has found so far.
#[derive(Default)]
struct Found<'a> {
    gic: Option<GicDescription<'a>>,
    pci_hosts: heapless::Vec<PciHost<'a>, MAX_PCI_HOSTS>,
}

impl<'a> Found<'a> {
    fn visit(
        &mut self,
        node: FdtNode<'a>,
        parent: Option<&Ancestors<'_, 'a>>,
    ) -> Result<bool, DiscoverError> {
        // One pass over the properties for the three this needs of every node.
        let (mut status, mut compatible, mut device_type) = (None, None, None);
        for p in node.properties() {
            match p.name() {
                "status" => status = Some(raw(p)),
                "compatible" => compatible = Some(raw(p)),
                "device_type" => device_type = Some(raw(p)),
                _ => {}
            }
        }
        if !status.is_none_or(|s| s == b"okay\0" || s == b"ok\0") {
            return Ok(false);
        }
        let gic_v3 = compatible.is_some_and(|c| c.split(|b| *b == 0).any(|s| s == b"arm,gic-v3"));
        if self.gic.is_none() && gic_v3 {
            self.gic = Some(gic(node, parent)?);
            // The ITS children were read with the GIC.
            return Ok(false);
        }
        if device_type == Some(b"pci\0") {
            let host = pci_host(node)?;
            self.pci_hosts
                .push(host)
                .map_err(|_| DiscoverError::TooMany {
                    node: DtNode::PciHost,
                    capacity: MAX_PCI_HOSTS,
                })?;
            // Functions below a host bridge are not host bridges.
            return Ok(false);
        }
        Ok(true)
    }
}

/// Reads an `arm,gic-v3` node and its ITS children.
fn gic<'a>(
    node: FdtNode<'a>,
    parent: Option<&Ancestors<'_, 'a>>,
) -> Result<GicDescription<'a>, DiscoverError> {
    let at = DtNode::Gic;
    let malformed_reg = DiscoverError::MalformedReg { node: at };
    let distributor = reg_entry(&node, parent, 0, at)?.ok_or(malformed_reg)?;

    let regions = u32_property(&node, "#redistributor-regions", at)?.unwrap_or(1);
    if regions == 0 {
        return Err(DiscoverError::MalformedProperty {
            node: at,
            property: "#redistributor-regions",
        });
    }
    let mut redistributor_regions = heapless::Vec::new();
    for index in 1..=regions as usize {
        let region = reg_entry(&node, parent, index, at)?.ok_or(malformed_reg)?;
        redistributor_regions
            .push(region)
            .map_err(|_| DiscoverError::TooMany {
                node: at,
                capacity: MAX_REDISTRIBUTOR_REGIONS,
            })?;
    }

    let redistributor_stride = match node.property("redistributor-stride") {
        None => None,
        Some(p) => {
            let stride = p
                .value_as::<u64>()
                .or_else(|_| p.value_as::<u32>().map(u64::from))
                .ok()
                .filter(|s| *s != 0 && s.is_multiple_of(GICR_FRAME_SIZE));
            Some(stride.ok_or(DiscoverError::MalformedProperty {
                node: at,
                property: "redistributor-stride",
            })?)
        }
    };

    let maintenance_interrupt = match node.property("interrupts") {
        None => None,
        Some(p) => {
            let malformed = DiscoverError::MalformedProperty {
                node: at,
                property: "interrupts",
            };
            let cells = u32_property(&node, "#interrupt-cells", at)?.unwrap_or(3);
            if cells < 3 || p.value().len() < cells as usize * 4 {
                return Err(malformed);
            }
            let v = p.value();
            let (kind, number, flags) = (be32(v, 0), be32(v, 1), be32(v, 2));
            let (Some(kind), Some(number), Some(flags)) = (kind, number, flags) else {
                return Err(malformed);
            };
            Some(GicInterrupt::from_cells(kind, number, flags).ok_or(malformed)?)
        }
    };

    let here = Ancestors { node, up: parent };
    let mut its = heapless::Vec::new();
    for child in node.children() {
        if !available(&child)
            || !is_compatible(&child, "arm,gic-v3-its")
            || child.property("msi-controller").is_none()
        {
            continue;
        }
        let region = reg_entry(&child, Some(&here), 0, DtNode::Its)?
            .ok_or(DiscoverError::MalformedReg { node: DtNode::Its })?;
        let phandle = phandle_of(&child, DtNode::Its)?;
        its.push(ItsNode { region, phandle })
            .map_err(|_| DiscoverError::TooMany {
                node: DtNode::Its,
                capacity: MAX_ITS,
            })?;
    }

    Ok(GicDescription {
        distributor,
        redistributor_regions,
        redistributor_stride,
        maintenance_interrupt,
        phandle: phandle_of(&node, at)?,
        its,
        pci_hosts: heapless::Vec::new(),
    })
}

/// Reads a PCI host bridge's MSI routing.
fn pci_host(node: FdtNode<'_>) -> Result<PciHost<'_>, DiscoverError> {
    let at = DtNode::PciHost;
    let domain = u32_property(&node, "linux,pci-domain", at)?;
    let msi_map_mask = u32_property(&node, "msi-map-mask", at)?.unwrap_or(u32::MAX);
    let route = if let Some(map) = node.property("msi-map") {
        let raw = raw(map);
        let malformed = DiscoverError::MalformedProperty {
            node: at,
            property: "msi-map",
        };
        if raw.is_empty() || !raw.len().is_multiple_of(16) {
            return Err(malformed);
        }
        let mut entries = MsiMapIter {
            raw,
            identity: None,
        };
        // Each entry must map a non-empty range whose both ends fit in 32 bits.
        let fits = |base: u32, length: u32| u64::from(base) + u64::from(length) <= 1 << 32;
        if !entries
            .all(|e| e.length != 0 && fits(e.rid_base, e.length) && fits(e.msi_base, e.length))
        {
            return Err(malformed);
        }
        MsiRoute::Map(raw)
    } else if let Some(parent) = node.property("msi-parent") {
        let phandle = parent
            .value_as::<u32>()
            .map_err(|_| DiscoverError::MalformedProperty {
                node: at,
                property: "msi-parent",
            })?;
        MsiRoute::Parent(phandle)
    } else {
        MsiRoute::None
    };
    Ok(PciHost {
        name: node.name(),
        domain,
        route,
        msi_map_mask,
    })
}
