// SPDX-License-Identifier: MIT OR Apache-2.0
//! The EL2 mini-hypervisor of the QEMU tests.
//!
//! One QEMU boot runs one scenario: the runner passes its name on the semihosting command line
//! (`-semihosting-config enable=on,target=native,arg=hyp,arg=<scenario>`), the hyp looks it up
//! in [`scenarios::SCENARIOS`], runs it and exits through semihosting with the verdict. See
//! `scenarios/mod.rs` for how to add one.
#![no_std]
#![no_main]

extern crate alloc;

mod exits;
mod fwd;
mod gic;
mod gic_hw;
mod heap;
mod linux;
mod pci;
mod rawmem;
mod scenarios;
mod smp;
mod stack;
mod v4;
mod vcpu;

use common::palloc::PALLOC;
use common::platform::{GUEST_BASE, GUEST_SIZE, RAM_END};

common::el2_main!(main);

unsafe extern "C" {
    /// End of the hyp image, stacks included (64 KiB aligned; from common.ld).
    static __image_end: u8;
}

fn main(cpu: usize) -> ! {
    stack::paint_current();
    let image_end = &raw const __image_end as usize;
    // SAFETY: [image end, guest base) and [guest end, RAM end) are RAM that neither image nor
    // QEMU (DTB at the start of RAM, below the hyp) uses; given once, at boot.
    unsafe {
        PALLOC.add_region(image_end, GUEST_BASE);
        PALLOC.add_region(GUEST_BASE + GUEST_SIZE, RAM_END);
    }
    // The GIC's one owner, made before anything uses the GIC. The set-up steps are reported
    // as failures of the scenario once it has started (`scenarios::run`).
    let gic = gic_hw::claim();
    let boot = [
        ("GIC distributor", gic.init_distributor()),
        ("GIC CPU interface", gic.init_cpu(cpu)),
    ];
    exits::install();

    let mut buf = [0u8; 256];
    let name = common::semihosting::cmdline(&mut buf)
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or("");
    scenarios::run(name, cpu, &boot)
}
