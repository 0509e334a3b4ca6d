// SPDX-License-Identifier: MIT OR Apache-2.0
//! Just enough PCIe for QEMU's `edu` device to raise MSIs at the ITS.
//!
//! Config space through the high ECAM of QEMU `virt` (`0x40_1000_0000`, bus 0 only), one
//! 32-bit memory BAR assigned in the 32-bit MMIO window, and the MSI capability pointed at
//! GITS_TRANSLATER. The `msi-map` of QEMU's DTB is the identity, so the ITS sees the device's
//! requester ID (bus << 8 | dev << 3 | fn) as its DeviceID.
//!
//! `edu` (QEMU `hw/misc/edu.c`, vendor 0x1234, device 0x11e8), BAR0 registers used here:
//! 0x00 identification (0xRRrr00ed), 0x24 interrupt status, 0x60 interrupt raise (ORs the
//! value into the status and sends one MSI when MSI is enabled), 0x64 interrupt acknowledge
//! (clears those status bits). Its registers below 0x80 take 32-bit accesses only.
//!
//! Every access goes through `safe-mmio` (one load or store of the register's width). Config
//! space is a byte-addressed space of 8-, 16- and 32-bit registers at offsets found at run time
//! (capability lists), so each access makes a pointer to the one register it touches; `edu`'s
//! BAR0 is an [`EduRegs`] block. No PCI crate fits: the ones that exist bring their own
//! enumeration and allocation, where this needs one function on bus 0.

use core::mem::offset_of;
use core::ptr::NonNull;

use common::platform::{PCIE_ECAM_BASE, PCIE_MMIO_BASE};
use safe_mmio::fields::{ReadPure, ReadPureWrite, WriteOnly};
use safe_mmio::{UniqueMmioPointer, field};

/// PCI_COMMAND.
const COMMAND: usize = 0x04;
/// PCI_COMMAND: Memory Space Enable.
const CMD_MEMORY: u16 = 1 << 1;
/// PCI_COMMAND: Bus Master Enable (needed for the device's MSI writes).
const CMD_BUS_MASTER: u16 = 1 << 2;
/// PCI_STATUS.
const STATUS: usize = 0x06;
/// PCI_STATUS: Capabilities List.
const STATUS_CAP_LIST: u16 = 1 << 4;
/// PCI_BASE_ADDRESS_0.
const BAR0: usize = 0x10;
/// PCI_CAPABILITY_LIST.
const CAP_PTR: usize = 0x34;
/// MSI capability ID.
const CAP_ID_MSI: u8 = 0x05;
/// MSI Message Control: MSI Enable.
const MSI_ENABLE: u16 = 1 << 0;
/// MSI Message Control: 64 Bit Address Capable.
const MSI_64BIT: u16 = 1 << 7;
/// MSI Message Control: Multiple Message Enable (bits [6:4]).
const MSI_MME_MASK: u16 = 0b111 << 4;

/// `edu`'s vendor and device IDs.
pub const EDU_VENDOR: u16 = 0x1234;
/// `edu`'s device ID.
pub const EDU_DEVICE: u16 = 0x11e8;

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

    fn cfg(self, off: usize) -> usize {
        PCIE_ECAM_BASE
            + ((self.bus as usize) << 20)
            + ((self.dev as usize) << 15)
            + ((self.func as usize) << 12)
            + off
    }

    /// The config register of type `T` at `off` (aligned down to its width), for one access.
    ///
    /// # Safety
    /// `T` is `ReadPureWrite<u8 | u16 | u32>`.
    unsafe fn reg<T>(self, off: usize) -> UniqueMmioPointer<'static, T> {
        let off = (off % 4096) & !(size_of::<T>() - 1);
        // SAFETY: an aligned register in this function's 4 KiB ECAM window, inside the high
        // ECAM the identity map covers as Device memory; the address is non-zero. Config space
        // holds no Rust object, and the pointer lives for the one access its caller makes.
        unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(self.cfg(off) as *mut T)) }
    }

    /// Reads a 32-bit config register (`off` 4-byte aligned).
    pub fn read32(self, off: usize) -> u32 {
        // SAFETY: a 32-bit register.
        unsafe { self.reg::<ReadPureWrite<u32>>(off) }.read()
    }

    /// Writes a 32-bit config register. The callers write only registers whose effect they
    /// want (BAR, command, MSI capability).
    pub fn write32(self, off: usize, v: u32) {
        // SAFETY: a 32-bit register.
        unsafe { self.reg::<ReadPureWrite<u32>>(off) }.write(v);
    }

    /// Reads a 16-bit config register (`off` 2-byte aligned).
    pub fn read16(self, off: usize) -> u16 {
        // SAFETY: a 16-bit register.
        unsafe { self.reg::<ReadPureWrite<u16>>(off) }.read()
    }

    /// Writes a 16-bit config register.
    pub fn write16(self, off: usize, v: u16) {
        // SAFETY: a 16-bit register.
        unsafe { self.reg::<ReadPureWrite<u16>>(off) }.write(v);
    }

    /// Reads an 8-bit config register.
    pub fn read8(self, off: usize) -> u8 {
        // SAFETY: an 8-bit register.
        unsafe { self.reg::<ReadPureWrite<u8>>(off) }.read()
    }

    /// Vendor and device ID (0xffff vendor: no function).
    pub fn ids(self) -> (u16, u16) {
        let v = self.read32(0);
        (v as u16, (v >> 16) as u16)
    }

    /// The config-space offset of capability `id`, walking the capability list (bounded).
    pub fn find_capability(self, id: u8) -> Option<usize> {
        if self.read16(STATUS) & STATUS_CAP_LIST == 0 {
            return None;
        }
        let mut ptr = usize::from(self.read8(CAP_PTR) & 0xfc);
        for _ in 0..48 {
            if ptr < 0x40 {
                return None;
            }
            if self.read8(ptr) == id {
                return Some(ptr);
            }
            ptr = usize::from(self.read8(ptr + 1) & 0xfc);
        }
        None
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
        .find(|b| b.ids() == (vendor, device))
}

/// What went wrong setting `edu` up.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PciError {
    /// No `edu` on bus 0 (QEMU started without `-device edu`?).
    NotFound,
    /// BAR0 is not a 32-bit memory BAR, or too large for the window.
    BadBar(u32),
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
    msi: usize,
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
        let msi = bdf.find_capability(CAP_ID_MSI).ok_or(PciError::NoMsi)?;
        // Decoding off while the BAR is sized.
        let cmd = bdf.read16(COMMAND);
        bdf.write16(COMMAND, cmd & !(CMD_MEMORY | CMD_BUS_MASTER));
        bdf.write32(BAR0, 0xffff_ffff);
        let mask = bdf.read32(BAR0);
        // Bit 0: I/O space; bits [2:1]: type (0 = 32-bit).
        if mask & 0b111 != 0 || mask & 0xffff_fff0 == 0 {
            return Err(PciError::BadBar(mask));
        }
        let size = (!(mask & 0xffff_fff0)).wrapping_add(1) as usize;
        if size > 0x1000_0000 {
            return Err(PciError::BadBar(mask));
        }
        bdf.write32(BAR0, PCIE_MMIO_BASE as u32);
        bdf.write16(COMMAND, cmd | CMD_MEMORY | CMD_BUS_MASTER);
        let edu = Self {
            bdf,
            bar0: PCIE_MMIO_BASE,
            bar0_size: size,
            msi,
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
        let ctl = self.bdf.read16(self.msi + 2);
        self.bdf
            .write16(self.msi + 2, ctl & !(MSI_ENABLE | MSI_MME_MASK));
        self.bdf.write32(self.msi + 4, address as u32);
        let data_off = if ctl & MSI_64BIT != 0 {
            self.bdf.write32(self.msi + 8, (address >> 32) as u32);
            0xc
        } else {
            8
        };
        self.bdf.write16(self.msi + data_off, data);
        self.bdf
            .write16(self.msi + 2, (ctl & !MSI_MME_MASK) | MSI_ENABLE);
    }

    /// The MSI address and data programmed, and whether MSI is enabled.
    pub fn msi(&self) -> (u64, u16, bool) {
        let ctl = self.bdf.read16(self.msi + 2);
        let lo = u64::from(self.bdf.read32(self.msi + 4));
        let (hi, data_off) = if ctl & MSI_64BIT != 0 {
            (u64::from(self.bdf.read32(self.msi + 8)), 0xc)
        } else {
            (0, 8)
        };
        (
            hi << 32 | lo,
            self.bdf.read16(self.msi + data_off),
            ctl & MSI_ENABLE != 0,
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
        let ctl = self.bdf.read16(self.msi + 2);
        self.bdf.write16(self.msi + 2, ctl & !MSI_ENABLE);
        let cmd = self.bdf.read16(COMMAND);
        self.bdf
            .write16(COMMAND, cmd & !(CMD_MEMORY | CMD_BUS_MASTER));
        self.bdf.write32(BAR0, 0);
    }
}
