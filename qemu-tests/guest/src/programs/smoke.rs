// SPDX-License-Identifier: MIT OR Apache-2.0
//! Program SMOKE: the guest runs at EL1 with its MMU on and can talk to the hyp.

use common::{check, mmu, println, read_sysreg, sysreg};

use crate::hvc;

/// Checks EL1 and the MMU, turns the virtual CPU interface on (nothing pending: spurious),
/// makes one hypercall round trip and executes one WFI (trapped by the hyp, which skips it).
pub fn smoke() {
    let el = sysreg::current_el();
    let sctlr = read_sysreg!(sctlr_el1);
    println!("guest: hello from EL{el}, SCTLR_EL1={sctlr:#x}");
    check!(el == 1, "guest at EL{el}");
    check!(
        mmu::el1_mmu_and_caches_on(),
        "SCTLR_EL1 = {sctlr:#x}: MMU/caches off"
    );
    crate::irq::init();
    let spurious = crate::irq::ack();
    check!(
        spurious == crate::irq::SPURIOUS,
        "ICV_IAR1_EL1 read {spurious} with nothing pending"
    );
    let answer = hvc::print_num(41);
    check!(answer == 42, "PRINT_NUM(41) answered {answer}");
    // Nothing is pending and HCR_EL2.TWI is set: this traps to the hyp, which skips it.
    // SAFETY: `wfi` only waits; the hyp resumes us after it.
    unsafe { core::arch::asm!("wfi", options(nostack)) };
    println!("guest: back from WFI");
}
