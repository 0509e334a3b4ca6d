// SPDX-License-Identifier: MIT OR Apache-2.0
//! A Linux guest on the project's hypervisor (`qemu-tests/hyp/src/linux`): where the kernel
//! and initramfs go in guest RAM, the boot parameter block that tells the hypervisor, and
//! QEMU's command line.
//!
//! The hypervisor boots whatever the block names: xtask loads the files into guest RAM with
//! QEMU's generic loader (`-device loader,file=F,addr=A,force-raw=on`) and the block at
//! [`layout::BOOT_PARAMS`]. The addresses come from [`layout`], the file the hypervisor
//! compiles too, so both sides agree. The guest's device tree is the hypervisor's business:
//! it derives it from QEMU's own at boot and puts it in the last 2 MiB of guest RAM, which
//! [`place`] leaves free.

use std::fs;
use std::path::{Path, PathBuf};

use super::image::{BASE_ALIGN, ImageHeader};
use super::machine::Machine;

/// The guest's memory map, shared with the hypervisor.
#[allow(
    dead_code,
    reason = "the hypervisor's constants, not all used on this side"
)]
pub mod layout {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../qemu-tests/hyp/src/linux/layout.rs"
    ));
}

use layout::{BOOT_PARAMS, GUEST_DTB_OFFSET, GUEST_INITRD_OFFSET, GUEST_RAM_BASE, QEMU_RAM_MIB};

/// Where each file goes in guest RAM.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Placement {
    /// The kernel's load address (2 MiB aligned base + text_offset).
    pub kernel: u64,
    /// The initramfs's, if there is one.
    pub initrd: Option<u64>,
    /// Where the hypervisor puts the guest's device tree (nothing of xtask's goes at or above).
    pub dtb: u64,
}

/// Places a kernel with `header` and an initramfs of `initrd_size` bytes in guest RAM: the
/// kernel at the start of RAM (+ text_offset), the initramfs at [`GUEST_INITRD_OFFSET`] or
/// the first 2 MiB boundary above the kernel's `image_size`, the device tree in the last
/// 2 MiB. Fails if they do not fit.
pub fn place(header: &ImageHeader, initrd_size: Option<u64>) -> Result<Placement, String> {
    let kernel = GUEST_RAM_BASE + header.text_offset;
    let kernel_end = kernel + header.image_size;
    let dtb = GUEST_RAM_BASE + GUEST_DTB_OFFSET;
    if kernel_end > dtb {
        return Err(format!(
            "the kernel needs {:#x} bytes: more than the {} MiB of guest RAM below the device tree",
            header.image_size,
            GUEST_DTB_OFFSET >> 20
        ));
    }
    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let at =
                (GUEST_RAM_BASE + GUEST_INITRD_OFFSET).max(kernel_end.next_multiple_of(BASE_ALIGN));
            if at + size > dtb {
                return Err(format!(
                    "the initramfs ({size} bytes at {at:#x}) does not fit below the device tree \
                     at {dtb:#x}"
                ));
            }
            Some(at)
        }
    };
    Ok(Placement {
        kernel,
        initrd,
        dtb,
    })
}

/// The boot parameter block's text (the hypervisor's `linux::params` reads it).
pub fn params_text(
    p: &Placement,
    header: &ImageHeader,
    initrd_size: Option<u64>,
    bootargs: &str,
) -> String {
    let mut t = format!(
        "vgt-linux 1\nkernel {:#x} {} {}\n",
        p.kernel, header.file_len, header.image_size
    );
    if let (Some(at), Some(size)) = (p.initrd, initrd_size) {
        t.push_str(&format!("initrd {at:#x} {size}\n"));
    }
    t.push_str(&format!("bootargs {bootargs}\nend\n"));
    t
}

/// A Linux boot on the hypervisor: what to boot and on what machine.
#[derive(Clone, Debug)]
pub struct HypBoot {
    /// The hypervisor image (`-kernel`).
    pub hyp: PathBuf,
    /// The hypervisor's scenario (`linux_boot`, ..., or `linux`).
    pub scenario: String,
    /// CPUs (= vCPUs).
    pub smp: u32,
    /// The arm64 Image.
    pub kernel: PathBuf,
    /// Its checked header.
    pub header: ImageHeader,
    /// The initramfs, if any.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub bootargs: String,
    /// The raw image behind an NVMe device, if any.
    pub nvme_disk: Option<PathBuf>,
    /// The NVMe device's MSI-X vectors, when not QEMU's default.
    pub nvme_vectors: Option<u16>,
    /// Where the boot parameter block is written.
    pub work_dir: PathBuf,
}

impl HypBoot {
    /// The QEMU machine: GICv4, `smp` CPUs, [`QEMU_RAM_MIB`], the CPU model of
    /// [`Machine`], NVMe if asked.
    pub fn machine(&self) -> Machine {
        let mut m = Machine::new(4, self.smp);
        m.memory_mib = QEMU_RAM_MIB as u32;
        if let Some(d) = &self.nvme_disk {
            m = m.with_nvme(d);
            m.nvme_vectors = self.nvme_vectors;
        }
        m
    }

    /// Writes the boot parameter block under [`HypBoot::work_dir`] and returns QEMU's
    /// arguments (without `-d`/`-D`).
    pub fn prepare(&self) -> Result<Vec<String>, String> {
        fs::create_dir_all(&self.work_dir)
            .map_err(|e| format!("creating {}: {e}", self.work_dir.display()))?;
        let initrd_size = match &self.initrd {
            Some(p) => Some(
                fs::metadata(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .len(),
            ),
            None => None,
        };
        let place = place(&self.header, initrd_size)?;
        let machine = self.machine();
        let params = self.work_dir.join(format!("{}.params", self.scenario));
        let mut text = params_text(&place, &self.header, initrd_size, &self.bootargs);
        text.push('\0');
        fs::write(&params, text).map_err(|e| format!("writing {}: {e}", params.display()))?;

        let mut args = machine.args(None)?;
        args.extend([
            "-semihosting-config".into(),
            format!("enable=on,target=native,arg=hyp,arg={}", self.scenario),
            "-kernel".into(),
            self.hyp.display().to_string(),
        ]);
        let mut load = |file: &Path, addr: u64| -> Result<(), String> {
            let f = file.display().to_string();
            if f.contains(',') {
                return Err(format!(
                    "{f}: a path with a comma cannot go in a QEMU option"
                ));
            }
            args.extend([
                "-device".into(),
                format!("loader,file={f},addr={addr:#x},force-raw=on"),
            ]);
            Ok(())
        };
        load(&self.kernel, place.kernel)?;
        if let (Some(f), Some(at)) = (&self.initrd, place.initrd) {
            load(f, at)?;
        }
        load(&params, BOOT_PARAMS as u64)?;
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::layout::GUEST_RAM_SIZE;
    use super::*;
    use crate::linux::image::PageSize;

    fn header(text_offset: u64, image_size: u64) -> ImageHeader {
        ImageHeader {
            text_offset,
            image_size,
            flags: 0xa,
            page_size: PageSize::K4,
            anywhere: true,
            efi_stub: true,
            file_len: image_size - 0x1000,
        }
    }

    #[test]
    fn a_debian_kernel_and_initramfs_are_placed_apart_in_guest_ram() {
        let p = place(&header(0, 0x2f0_0000), Some(2 << 20)).unwrap();
        assert_eq!(p.kernel, GUEST_RAM_BASE);
        assert_eq!(p.initrd, Some(GUEST_RAM_BASE + GUEST_INITRD_OFFSET));
        assert_eq!(p.dtb, GUEST_RAM_BASE + GUEST_RAM_SIZE - (2 << 20));
        // A kernel larger than the default initramfs offset pushes it up to a 2 MiB boundary.
        let big = place(&header(0x8_0000, 0x900_0001), Some(100)).unwrap();
        assert_eq!(big.kernel, GUEST_RAM_BASE + 0x8_0000);
        assert_eq!(big.initrd, Some(GUEST_RAM_BASE + 0x920_0000));
        assert!(place(&header(0, GUEST_RAM_SIZE), None).is_err());
        assert!(place(&header(0, 0x100_0000), Some(GUEST_RAM_SIZE)).is_err());
    }

    #[test]
    fn the_parameter_block_names_every_file() {
        let h = header(0, 0x2f0_0000);
        let p = place(&h, Some(0x1c_0000)).unwrap();
        let t = params_text(&p, &h, Some(0x1c_0000), "console=ttyAMA0 vgt.mode=boot");
        assert_eq!(
            t,
            "vgt-linux 1\nkernel 0x60000000 49278976 49283072\ninitrd 0x68000000 1835008\n\
             bootargs console=ttyAMA0 vgt.mode=boot\nend\n"
        );
        let none = params_text(&place(&h, None).unwrap(), &h, None, "");
        assert!(!none.contains("initrd"));
    }

    #[test]
    fn the_layout_is_the_hypervisors() {
        // The block sits in the hypervisor's reserved RAM, below guest RAM, and guest RAM
        // ends within QEMU's RAM.
        const { assert!((BOOT_PARAMS as u64) < GUEST_RAM_BASE) };
        const { assert!(GUEST_RAM_BASE + GUEST_RAM_SIZE <= 0x4000_0000 + (QEMU_RAM_MIB << 20)) };
    }
}
