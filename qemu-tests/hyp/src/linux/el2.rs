// SPDX-License-Identifier: MIT OR Apache-2.0
//! The EL2 settings an unmodified Linux needs at EL1, per CPU.
//!
//! arm64 Linux entered at EL1 expects EL2 to have prepared the CPU (the boot protocol's "CPU
//! mode" rules) and to trap only what the hypervisor means to handle:
//!
//! | Register | Value | Why |
//! |---|---|---|
//! | HCR_EL2 | [`HCR_EL2_LINUX`]: VM, RW, TSC, IMO, FMO, AMO, API, APK | stage 2 on; EL1 is AArch64; SMC (PSCI) traps; physical IRQ/FIQ/SError to EL2 and the guest's ICC_* to the virtual CPU interface; pointer authentication keys and instructions do not trap (without API/APK every CPU traps on APIAKeyLo_EL1) |
//! | CPTR_EL2 | [`CPTR_EL2_LINUX`] | FP/SIMD and SVE (TZ = 0) do not trap |
//! | ZCR_EL2 | LEN = 0 | SVE vectors of 128 bits, all CPUs alike. Not longer: the hyp's exception entry saves q0-q31, which then hold the whole of z0-z31 |
//! | MDCR_EL2 | HPMN = PMCR_EL0.N | the guest owns every PMU counter, nothing traps |
//! | CNTHCTL_EL2 / CNTVOFF_EL2 | EL1PCTEN, EL1PCEN / 0 | EL1 reads the counter and may use the physical timer (set at entry by `common`) |
//! | ICC_SRE_EL2 | SRE, Enable, DIB, DFB | EL1 uses the GIC's system registers (set by `gic_hw`) |
//! | VPIDR_EL2 / VMPIDR_EL2 | MIDR_EL1 / this CPU's MPIDR_EL1 | vCPU n runs on CPU n and sees that CPU's identity |
//!
//! WFI and WFE do not trap (TWI = TWE = 0): each vCPU has its CPU to itself, so an idle guest
//! waits in hardware and a physical interrupt (a forwarded one, or a kick) still brings it to
//! EL2.

use common::{read_sysreg, write_sysreg};

/// HCR_EL2.VM: stage 2 translation.
const HCR_VM: u64 = 1 << 0;
/// HCR_EL2.FMO, IMO, AMO: FIQ, IRQ and SError routing to EL2 (and virtual interrupts to EL1).
const HCR_FMO_IMO_AMO: u64 = (1 << 3) | (1 << 4) | (1 << 5);
/// HCR_EL2.TSC: SMC from EL1 traps to EL2 (PSCI).
const HCR_TSC: u64 = 1 << 19;
/// HCR_EL2.RW: EL1 is AArch64.
const HCR_RW: u64 = 1 << 31;
/// HCR_EL2.APK and API: pointer authentication does not trap.
const HCR_APK_API: u64 = (1 << 40) | (1 << 41);

/// HCR_EL2 while the Linux guest runs.
pub const HCR_EL2_LINUX: u64 = HCR_VM | HCR_FMO_IMO_AMO | HCR_TSC | HCR_RW | HCR_APK_API;

/// CPTR_EL2 (no VHE): the RES1 bits (13, 12, 9, 7:0) set, TZ (8) and TFP (10) clear, TTA,
/// TAM, TCPAC clear. Bit 12 (TSM) stays set: SME traps.
pub const CPTR_EL2_LINUX: u64 = 0x32ff;

/// ID_AA64PFR0_EL1.SVE: SVE is implemented.
fn has_sve() -> bool {
    (read_sysreg!(id_aa64pfr0_el1) >> 32) & 0xf != 0
}

/// ID_AA64DFR0_EL1.PMUVer: a PMUv3 is implemented (not 0, not IMPLEMENTATION DEFINED 0xf).
fn has_pmuv3() -> bool {
    let v = (read_sysreg!(id_aa64dfr0_el1) >> 8) & 0xf;
    v != 0 && v != 0xf
}

/// Puts the calling CPU's EL2 in the state the table above gives (HCR_EL2 is written at each
/// guest entry from the vCPU's value).
pub fn setup_cpu() {
    let midr = read_sysreg!(midr_el1);
    let mpidr = read_sysreg!(mpidr_el1);
    // SAFETY: these registers only shape how EL1 and EL0 run and trap; no guest runs on this
    // CPU now, and the hyp itself (EL2) does not depend on any of them. ZCR_EL2 (S3_4_C1_C2_0)
    // and the PMU are written only where implemented.
    unsafe {
        write_sysreg!(cptr_el2, CPTR_EL2_LINUX);
        if has_sve() {
            write_sysreg!(S3_4_C1_C2_0, 0u64);
        }
        if has_pmuv3() {
            let n = (read_sysreg!(pmcr_el0) >> 11) & 0x1f;
            write_sysreg!(mdcr_el2, n);
        }
        write_sysreg!(vpidr_el2, midr);
        write_sysreg!(vmpidr_el2, mpidr);
        core::arch::asm!("isb", options(nostack));
    }
}
