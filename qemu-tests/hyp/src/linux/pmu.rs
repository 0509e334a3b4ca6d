// SPDX-License-Identifier: MIT OR Apache-2.0
//! Instructions counted by the hypervisor with two PMU counters kept from the guest.
//!
//! The guest owns the PMU ([`super::el2`]: MDCR_EL2.HPMN = PMCR_EL0.N) unless the VM counts
//! instructions ([`super::Options::pmu`], the benchmarks): then the last two event counters
//! are reserved for EL2 (MDCR_EL2.HPMN = N - 2, HPME = 1 enables them whatever the guest
//! does with PMCR_EL0.E) and both count INST_RETIRED (event 0x08):
//!
//! | Counter | PMEVTYPER filter | Counts |
//! |---|---|---|
//! | N - 2 | P = 0, U = 0, NSH = 0 | the guest's instructions, EL1 and EL0 |
//! | N - 1 | P = 1, U = 1, NSH = 1 | the hypervisor's instructions, EL2 |
//!
//! QEMU implements INST_RETIRED only under `-icount`, where it counts exactly, but machine
//! wide: a counter advances by the instructions of every CPU while its own CPU is at a level
//! its filter counts, so the counts are per CPU only on a one-CPU machine (the Linux
//! benchmarks run one vCPU). With PMUv3p5 the two counters are 64 bits wide (MDCR_EL2.HLP);
//! otherwise 32. The run loop reads its CPU's counters when it records a phase.
//!
//! The guest gets no PMU while the hypervisor counts: its device tree has no PMU node
//! (`super::fdt`), so Linux's PMU driver does not probe. When it does, it resets and disables
//! the counters, and on QEMU (7.2 and 10.0) the two reserved for EL2 then read 0 for the
//! whole run. PMSELR_EL0 is saved and restored around each read all the same.

use common::{read_sysreg, write_sysreg};

/// INST_RETIRED, architecturally executed instructions.
const INST_RETIRED: u64 = 0x08;
/// PMEVTYPER<n>_EL0.P: do not count at EL1.
const FILTER_P: u64 = 1 << 31;
/// PMEVTYPER<n>_EL0.U: do not count at EL0.
const FILTER_U: u64 = 1 << 30;
/// PMEVTYPER<n>_EL0.NSH: count at EL2.
const FILTER_NSH: u64 = 1 << 27;
/// MDCR_EL2.HPME: enable the counters reserved for EL2.
const MDCR_HPME: u64 = 1 << 7;
/// MDCR_EL2.HLP: the counters reserved for EL2 are 64 bits wide (PMUv3p5).
const MDCR_HLP: u64 = 1 << 26;

/// ID_AA64DFR0_EL1.PMUVer, 0xf (IMPLEMENTATION DEFINED) read as none.
fn pmu_version() -> u64 {
    let v = (read_sysreg!(id_aa64dfr0_el1) >> 8) & 0xf;
    if v == 0xf { 0 } else { v }
}

/// PMCR_EL0.N: event counters implemented (0 without a PMUv3).
pub fn counters() -> u64 {
    if pmu_version() == 0 {
        return 0;
    }
    (read_sysreg!(pmcr_el0) >> 11) & 0x1f
}

/// Reserves the last two counters for EL2 on this CPU and starts them (zeroed). Returns
/// MDCR_EL2's HPMN for the guest, or `None` without two counters to spare.
pub fn setup() -> Option<u64> {
    let n = counters();
    if n < 3 {
        return None;
    }
    let (g, h) = (n - 2, n - 1);
    // 64-bit counters where PMUv3p5 allows (otherwise 32 bits, read as such).
    let hlp = if pmu_version() >= 6 { MDCR_HLP } else { 0 };
    // SAFETY: at EL2 with no guest running on this CPU. MDCR_EL2 hides counters g and h from
    // EL1/EL0 (HPMN = g) and enables them for EL2 (HPME); the rest of this only programs and
    // starts those two counters, which nothing else uses.
    unsafe {
        write_sysreg!(mdcr_el2, g | MDCR_HPME | hlp);
        core::arch::asm!("isb", options(nostack));
        for (c, filter) in [(g, 0), (h, FILTER_P | FILTER_U | FILTER_NSH)] {
            write_sysreg!(pmselr_el0, c);
            core::arch::asm!("isb", options(nostack));
            write_sysreg!(pmxevtyper_el0, INST_RETIRED | filter);
            write_sysreg!(pmxevcntr_el0, 0u64);
        }
        write_sysreg!(pmcntenset_el0, (1u64 << g) | (1u64 << h));
        core::arch::asm!("isb", options(nostack));
    }
    Some(g)
}

/// This CPU's two counts: (guest, hypervisor) instructions since [`setup`]. `(0, 0)` if the
/// counters were not set up.
pub fn read() -> (u64, u64) {
    let mdcr = read_sysreg!(mdcr_el2);
    if mdcr & MDCR_HPME == 0 {
        return (0, 0);
    }
    let g = mdcr & 0x1f;
    let saved = read_sysreg!(pmselr_el0);
    let mut out = [0u64; 2];
    for (i, c) in [g, g + 1].into_iter().enumerate() {
        // SAFETY: selecting a counter only changes which one PMXEVCNTR_EL0 names; the guest's
        // selection is written back below, before it runs again.
        unsafe {
            write_sysreg!(pmselr_el0, c);
            core::arch::asm!("isb", options(nostack));
        }
        let width = if mdcr & MDCR_HLP != 0 {
            u64::MAX
        } else {
            0xffff_ffff
        };
        out[i] = read_sysreg!(pmxevcntr_el0) & width;
    }
    // SAFETY: as above: the guest's PMSELR_EL0 value is restored.
    unsafe {
        write_sysreg!(pmselr_el0, saved);
        core::arch::asm!("isb", options(nostack));
    }
    (out[0], out[1])
}
