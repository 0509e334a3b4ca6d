// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask demo`: narrates the platform coming up. Later work extends it with the vLPI
//! story (ITS on, vPE resident, direct injection without an exit, doorbell).

use core::time::Duration;

use common::hvc_abi::{HVC_PRINT_NUM, program};
use common::{check, mmu, narrate, read_sysreg, require, sysreg};

use super::Ctx;
use crate::exits;
use crate::smp;
use crate::vcpu::{Exit, Vcpu};

/// The narrated boot: EL2, MMU, CPU1, guest entry, guest hypercall.
pub fn demo(_ctx: &mut Ctx) {
    narrate!(
        "hyp running at EL{} on cpu0 (QEMU virt, GICv4 model)",
        sysreg::current_el()
    );
    check!(sysreg::current_el() == 2);

    let sctlr = read_sysreg!(sctlr_el2);
    narrate!("stage 1 identity map on at EL2: SCTLR_EL2={sctlr:#x} (MMU, D-cache, I-cache)");
    check!(mmu::el2_mmu_and_caches_on());

    match smp::start(1, Duration::from_secs(1)) {
        Ok(()) => {
            let (mpidr, _) = smp::checkin_regs(1);
            narrate!("cpu1 started with PSCI CPU_ON (SMC conduit); MPIDR={mpidr:#x}");
        }
        Err(e) => {
            check!(false, "cpu1 did not start: {e:?}");
        }
    }

    narrate!(
        "entering the EL1 guest at 0x{:x} (program: smoke)",
        common::platform::GUEST_BASE
    );
    let before = exits::snapshot();
    let mut vcpu = Vcpu::new(program::SMOKE);
    let result = vcpu.run_until_done(|_, exit| {
        match exit {
            Exit::Hvc {
                nr: HVC_PRINT_NUM,
                args,
            } => {
                narrate!(
                    "guest hypercall PRINT_NUM({}) -> EL2 exit, answered {}",
                    args[0],
                    args[0] + 1
                );
            }
            Exit::Wfx { .. } => narrate!("guest WFI trapped to EL2 (HCR_EL2.TWI), skipped"),
            _ => {}
        }
        None
    });
    let counts = exits::snapshot().since(&before);
    require!(result == Ok(0), "guest ended with {result:?}");
    narrate!(
        "guest reported done; EL2 exits: {} (hvc {}, wfi {}, irq {})",
        counts.exits(),
        counts.hvc,
        counts.wfi,
        counts.irq
    );
    counts.report();
}
