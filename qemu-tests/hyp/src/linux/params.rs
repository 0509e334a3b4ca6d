// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot parameter block: what xtask loaded into guest RAM and the kernel command line.
//!
//! xtask (`xtask/src/linux/guest.rs`) writes a short text block and QEMU's loader puts it at
//! [`BOOT_PARAMS`](super::layout::BOOT_PARAMS), next to the kernel and initramfs it loads
//! into guest RAM with `-device loader,...,force-raw=on`:
//!
//! ```text
//! vgt-linux 1
//! kernel 0x60000000 <file bytes> <image_size from the Image header>
//! initrd 0x68000000 <bytes>                 (optional)
//! bootargs console=ttyAMA0 vgt.mode=boot    (the rest of the line)
//! end
//! ```
//!
//! The guest's device tree is not in the block: the hypervisor derives it (`linux::fdt`).
//!
//! Numbers are `0x` hexadecimal or decimal. [`BootParams::parse`] checks the block against
//! guest RAM (everything inside it, the kernel 4 KiB aligned, nothing overlapping) so that a
//! bad block is a typed error, never a guest booted into the hyp's memory.

use super::layout::{GUEST_RAM_BASE, GUEST_RAM_SIZE};

/// The first line of a block this hyp reads.
const MAGIC: &str = "vgt-linux 1";
/// Longest kernel command line kept (the device tree's `bootargs`).
pub const BOOTARGS_MAX: usize = 1024;

/// A byte range in guest RAM.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Blob {
    /// Guest physical address (= physical address).
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Blob {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.addr + self.size
    }

    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, other: &Blob) -> bool {
        self.addr < other.end() && other.addr < self.end()
    }

    fn in_ram(&self) -> bool {
        self.addr >= GUEST_RAM_BASE
            && self
                .addr
                .checked_add(self.size)
                .is_some_and(|e| e <= GUEST_RAM_BASE + GUEST_RAM_SIZE)
    }
}

/// Why a boot parameter block was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ParamsError {
    /// Nothing at the block's address, or not this format (first line).
    NoBlock,
    /// A line the format does not know, by line number (from 1).
    BadLine(usize),
    /// No `kernel` line, or no `end` line.
    Missing(&'static str),
    /// The kernel is not 4 KiB aligned, or its image size is below its file size.
    BadKernel,
    /// A range is not inside guest RAM.
    OutsideRam(&'static str),
    /// Two ranges overlap.
    Overlap(&'static str, &'static str),
    /// The command line is longer than [`BOOTARGS_MAX`].
    BootargsTooLong,
}

/// What xtask asked the hyp to boot.
#[derive(Clone, Copy, Debug)]
pub struct BootParams {
    /// The kernel Image as loaded.
    pub kernel: Blob,
    /// Bytes the kernel occupies once running (its header's `image_size`, BSS included).
    pub image_size: u64,
    /// The initramfs, if any.
    pub initrd: Option<Blob>,
    bootargs: [u8; BOOTARGS_MAX],
    bootargs_len: usize,
}

fn number(word: Option<&str>) -> Option<u64> {
    let w = word?;
    match w.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => w.parse().ok(),
    }
}

impl BootParams {
    /// The kernel command line.
    pub fn bootargs(&self) -> &str {
        core::str::from_utf8(&self.bootargs[..self.bootargs_len]).unwrap_or("")
    }

    /// The value of `key=` on the kernel command line, if present.
    pub fn bootarg(&self, key: &str) -> Option<&str> {
        self.bootargs()
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The kernel's running footprint: its load address and `image_size`.
    pub fn kernel_footprint(&self) -> Blob {
        Blob {
            addr: self.kernel.addr,
            size: self.image_size,
        }
    }

    /// Parses and checks a block (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, ParamsError> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(MAGIC) {
            return Err(ParamsError::NoBlock);
        }
        let mut p = Self {
            kernel: Blob { addr: 0, size: 0 },
            image_size: 0,
            initrd: None,
            bootargs: [0; BOOTARGS_MAX],
            bootargs_len: 0,
        };
        let (mut kernel, mut end) = (false, false);
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.trim_end();
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let mut words = rest.split_whitespace();
            let blob = |words: &mut core::str::SplitWhitespace<'_>| -> Option<Blob> {
                Some(Blob {
                    addr: number(words.next())?,
                    size: number(words.next())?,
                })
            };
            match key {
                "kernel" => {
                    p.kernel = blob(&mut words).ok_or(ParamsError::BadLine(n))?;
                    p.image_size = number(words.next()).ok_or(ParamsError::BadLine(n))?;
                    kernel = true;
                }
                "initrd" => p.initrd = Some(blob(&mut words).ok_or(ParamsError::BadLine(n))?),
                "bootargs" => {
                    let args = rest.trim();
                    if args.len() > BOOTARGS_MAX {
                        return Err(ParamsError::BootargsTooLong);
                    }
                    p.bootargs[..args.len()].copy_from_slice(args.as_bytes());
                    p.bootargs_len = args.len();
                }
                "end" => {
                    end = true;
                    break;
                }
                "" => {}
                _ => return Err(ParamsError::BadLine(n)),
            }
        }
        if !kernel {
            return Err(ParamsError::Missing("kernel"));
        }
        if !end {
            return Err(ParamsError::Missing("end"));
        }
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), ParamsError> {
        if !self.kernel.addr.is_multiple_of(4096) || self.image_size < self.kernel.size {
            return Err(ParamsError::BadKernel);
        }
        let kernel = self.kernel_footprint();
        if !kernel.in_ram() {
            return Err(ParamsError::OutsideRam("kernel"));
        }
        if let Some(initrd) = self.initrd {
            if !initrd.in_ram() {
                return Err(ParamsError::OutsideRam("initrd"));
            }
            if initrd.overlaps(&kernel) {
                return Err(ParamsError::Overlap("initrd", "kernel"));
            }
        }
        Ok(())
    }
}
