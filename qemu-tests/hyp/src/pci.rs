// SPDX-License-Identifier: MIT OR Apache-2.0
//! Just enough PCIe for QEMU's `edu` device to raise MSIs at the ITS.
//!
//! Config space through the high ECAM of QEMU `virt` (`0x40_1000_0000`, bus 0 only), one
//! 32-bit memory BAR assigned in the 32-bit MMIO window, and the MSI capability pointed at
//! GITS_TRANSLATER. The `msi-map` of QEMU's DTB is the identity, so the ITS sees the device's
//! requester ID (bus << 8 | dev << 3 | fn) as its DeviceID.
//!
//! The configuration header, BAR sizing, the capability list and the MSI capability are the
//! `pci_types` crate's; this module gives it config space ([`Ecam`]: one 32-bit `safe-mmio`
//! access per call) and reads back the MSI address and data, for which the crate has no
//! getters.
//!
//! `edu` (QEMU `hw/misc/edu.c`, vendor 0x1234, device 0x11e8), BAR0 registers used here
//! ([`EduRegs`]): identification (0xRRrr00ed), interrupt status, interrupt raise (ORs the value
//! into the status and sends one MSI when MSI is enabled), interrupt acknowledge (clears those
//! status bits). Its registers below 0x80 take 32-bit accesses only.

use core::mem::offset_of;
use core::ptr::NonNull;

use common::platform::{PCIE_ECAM_BASE, PCIE_MMIO_BASE};
use pci_types::capability::{MsiCapability, MultipleMessageSupport, PciCapability};
use pci_types::{Bar, CommandRegister, ConfigRegionAccess, EndpointHeader, PciAddress, PciHeader};
use safe_mmio::fields::{ReadPure, ReadPureWrite, WriteOnly};
use safe_mmio::{UniqueMmioPointer, field};

/// Config space through QEMU `virt`'s high ECAM, bus 0.
#[derive(Clone, Copy, Debug)]
pub struct Ecam;

impl Ecam {
    /// The 32-bit config register at `offset` of function `a`, for one access.
    fn reg(a: PciAddress, offset: u16) -> UniqueMmioPointer<'static, ReadPureWrite<u32>> {
        let addr = PCIE_ECAM_BASE
            + (usize::from(a.bus()) << 20)
            + (usize::from(a.device() & 0x1f) << 15)
            + (usize::from(a.function() & 0x7) << 12)
            + (usize::from(offset) & 0xffc);
        // SAFETY: an aligned 32-bit register in this function's 4 KiB ECAM window, inside the
        // high ECAM the identity map covers as Device memory (non-zero). Config space holds no
        // Rust object, and the pointer lives for its caller's one access.
        unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(addr as *mut ReadPureWrite<u32>)) }
    }
}

impl ConfigRegionAccess for Ecam {
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        Self::reg(address, offset).read()
    }

    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        Self::reg(address, offset).write(value);
    }
}

/// `edu`'s vendor and device IDs.
pub const EDU_VENDOR: u16 = 0x1234;
/// `edu`'s device ID.
pub const EDU_DEVICE: u16 = 0x11e8;
/// Capabilities walked at most (a malformed list could loop).
const MAX_CAPS: usize = 48;

/// A PCI function on bus 0.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Bdf {
    /// Bus.
    pub bus: u8,
    /// Device (0-31).
    pub dev: u8,
    /// Function (0-7).
    pub func: u8,
}

impl Bdf {
    /// The requester ID: bus << 8 | dev << 3 | fn. With QEMU `virt`'s identity `msi-map`, also
    /// the ITS DeviceID of the function's MSIs.
    pub const fn requester_id(self) -> u32 {
        (self.bus as u32) << 8 | (self.dev as u32) << 3 | self.func as u32
    }

    fn address(self) -> PciAddress {
        PciAddress::new(0, self.bus, self.dev, self.func)
    }
}

/// Finds the first function on bus 0 with these IDs (function 0 of each device).
pub fn find(vendor: u16, device: u16) -> Option<Bdf> {
    (0..32)
        .map(|dev| Bdf {
            bus: 0,
            dev,
            func: 0,
        })
        .find(|b| PciHeader::new(b.address()).id(Ecam) == (vendor, device))
}

/// The functions on bus 0 that are not bridges (class 0x06), function 0 of each device: the
/// endpoints a hypervisor can assign to a guest (the Linux guest's ITS gives each its
/// requester ID as DeviceID).
pub fn endpoints() -> impl Iterator<Item = Bdf> {
    (0..32)
        .map(|dev| Bdf {
            bus: 0,
            dev,
            func: 0,
        })
        .filter(|b| {
            let h = PciHeader::new(b.address());
            let (vendor, _) = h.id(Ecam);
            let (_, class, _, _) = h.revision_and_class(Ecam);
            vendor != 0xffff && class != 0x06
        })
}

/// What went wrong setting `edu` up.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PciError {
    /// No `edu` on bus 0 (QEMU started without `-device edu`?).
    NotFound,
    /// Not an endpoint (type 0 header).
    NotEndpoint,
    /// BAR0 is not a 32-bit memory BAR, or too large for the window (its size, 0 if none).
    BadBar(usize),
    /// No MSI capability.
    NoMsi,
    /// The identification register did not read as `edu`'s.
    BadId(u32),
}

/// QEMU's `edu` device, with BAR0 assigned and memory decoding and bus mastering on.
#[derive(Clone, Copy, Debug)]
pub struct Edu {
    /// Where it sits; its requester ID is the ITS DeviceID of its MSIs.
    pub bdf: Bdf,
    /// BAR0's CPU (= PCI) address.
    pub bar0: usize,
    /// BAR0's size in bytes.
    pub bar0_size: usize,
    msi: MsiCapability,
    /// Config-space offset of the MSI capability.
    msi_off: u16,
}

/// The `edu` registers used here, at the start of its BAR0.
#[repr(C, align(4))]
pub struct EduRegs {
    /// 0x00 identification (0xRRrr00ed).
    id: ReadPure<u32>,
    _reserved0: [u32; 8],
    /// 0x24 interrupt status.
    irq_status: ReadPure<u32>,
    _reserved1: [u32; 14],
    /// 0x60 interrupt raise.
    irq_raise: WriteOnly<u32>,
    /// 0x64 interrupt acknowledge.
    irq_ack: WriteOnly<u32>,
}

const _: () = {
    assert!(offset_of!(EduRegs, id) == 0x00);
    assert!(offset_of!(EduRegs, irq_status) == 0x24);
    assert!(offset_of!(EduRegs, irq_raise) == 0x60);
    assert!(offset_of!(EduRegs, irq_ack) == 0x64);
};

impl Edu {
    /// Finds `edu`, sizes and assigns BAR0 at the start of the 32-bit MMIO window, enables
    /// memory decoding and bus mastering, and checks the identification register.
    pub fn probe() -> Result<Self, PciError> {
        let bdf = find(EDU_VENDOR, EDU_DEVICE).ok_or(PciError::NotFound)?;
        let mut ep = EndpointHeader::from_header(PciHeader::new(bdf.address()), Ecam)
            .ok_or(PciError::NotEndpoint)?;
        let (msi, msi_off) = ep
            .capabilities(Ecam)
            .take(MAX_CAPS)
            .find_map(|c| match c {
                PciCapability::Msi(m) => Some((m, c.address().offset)),
                _ => None,
            })
            .ok_or(PciError::NoMsi)?;
        // Decoding off while the BAR is sized.
        let decode = CommandRegister::MEMORY_ENABLE | CommandRegister::BUS_MASTER_ENABLE;
        ep.update_command(Ecam, |c| c.difference(decode));
        let size = match ep.bar(0, Ecam) {
            Some(Bar::Memory32 { size, .. }) if size as usize <= 0x1000_0000 => size as usize,
            Some(Bar::Memory32 { size, .. }) => return Err(PciError::BadBar(size as usize)),
            _ => return Err(PciError::BadBar(0)),
        };
        // SAFETY: the start of the 32-bit MMIO window, which nothing else uses, and BAR0 is
        // smaller than the window (checked above).
        unsafe { ep.write_bar(0, Ecam, PCIE_MMIO_BASE) }.map_err(|_| PciError::BadBar(size))?;
        ep.update_command(Ecam, |c| c | decode);
        let edu = Self {
            bdf,
            bar0: PCIE_MMIO_BASE,
            bar0_size: size,
            msi,
            msi_off,
        };
        let id = edu.id();
        if id & 0xff != 0xed {
            return Err(PciError::BadId(id));
        }
        Ok(edu)
    }

    /// BAR0's registers, for one access. `Edu` is `Copy` and used from two CPUs at once (one
    /// raises while the other waits), so it keeps the address, not a pointer.
    fn regs(&self) -> UniqueMmioPointer<'static, EduRegs> {
        // SAFETY: edu's BAR0, which `probe` assigned at `bar0` (non-zero) in the PCIe MMIO
        // window (Device memory in the identity map) and enabled. No Rust object lives there;
        // the pointer lives for one access, whose effect is only on edu's interrupt state.
        unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(self.bar0 as *mut EduRegs)) }
    }

    /// The identification register (0xRRrr00ed: major, minor version).
    pub fn id(&self) -> u32 {
        let mut r = self.regs();
        field!(r, id).read()
    }

    /// Points MSI at `address` with `data` (the EventID) and enables it (one vector).
    pub fn enable_msi(&self, address: u64, data: u16) {
        self.msi.set_enabled(false, Ecam);
        self.msi
            .set_multiple_message_enable(MultipleMessageSupport::Int1, Ecam);
        self.msi.set_message_info(address, data.into(), Ecam);
        self.msi.set_enabled(true, Ecam);
    }

    /// The MSI address and data programmed, and whether MSI is enabled (read back from the
    /// capability: message address at +4, upper address at +8 if 64-bit, data after them).
    pub fn msi(&self) -> (u64, u16, bool) {
        let a = self.bdf.address();
        let off = self.msi_off;
        // SAFETY: reads of the MSI capability `probe` found; config reads have no effect.
        let read = |o: u16| unsafe { Ecam.read(a, off + o) };
        let lo = u64::from(read(4));
        let (hi, data_off) = if self.msi.is_64bit() {
            (u64::from(read(8)), 0xc)
        } else {
            (0, 8)
        };
        (
            hi << 32 | lo,
            read(data_off) as u16,
            self.msi.is_enabled(Ecam),
        )
    }

    /// Raises edu's interrupt with `status` bits (one MSI per call with MSI enabled).
    pub fn raise(&self, status: u32) {
        let mut r = self.regs();
        field!(r, irq_raise).write(status);
    }

    /// Acknowledges `status` bits.
    pub fn ack(&self, status: u32) {
        let mut r = self.regs();
        field!(r, irq_ack).write(status);
    }

    /// The interrupt status register.
    pub fn irq_status(&self) -> u32 {
        let mut r = self.regs();
        field!(r, irq_status).read()
    }

    /// MSI off, bus mastering and memory decoding off, BAR0 cleared.
    pub fn shut_down(&self) {
        self.msi.set_enabled(false, Ecam);
        let mut ep = match EndpointHeader::from_header(PciHeader::new(self.bdf.address()), Ecam) {
            Some(ep) => ep,
            None => return,
        };
        ep.update_command(Ecam, |c| {
            c.difference(CommandRegister::MEMORY_ENABLE | CommandRegister::BUS_MASTER_ENABLE)
        });
        // SAFETY: 0 unassigns BAR0; decoding is off.
        let _ = unsafe { ep.write_bar(0, Ecam, 0) };
    }
}
