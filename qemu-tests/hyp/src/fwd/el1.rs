// SPDX-License-Identifier: MIT OR Apache-2.0
//! A vCPU's EL1 system-register context, for running it on another PE.
//!
//! [`Vcpu`](crate::vcpu::Vcpu) keeps the guest's general registers, SP_EL1, ELR_EL2 and
//! SPSR_EL2 in its frame, but the EL1 system registers (MMU, vectors, exception state, thread
//! IDs, timer control) stay in the PE the guest last ran on. Moving a vCPU means saving them
//! on the old PE and writing them on the new one, together with the vCPU's identity
//! (VMPIDR_EL2, VPIDR_EL2: the guest keeps reading the MPIDR it booted with). The GIC virtual
//! CPU interface and the virtual timer have their own put/load in `fwd-irq`.

use common::{read_sysreg, write_sysreg};

macro_rules! el1_context {
    ($($reg:ident),* $(,)?) => {
        /// The saved EL1 system registers of a vCPU, one field per register.
        #[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
        pub struct El1Context {
            $(
                #[doc = concat!("`", stringify!($reg), "`.")]
                pub $reg: u64,
            )*
        }

        impl El1Context {
            /// Reads the registers of the PE the caller runs on (the vCPU is not running).
            pub fn save() -> Self {
                Self { $($reg: read_sysreg!($reg),)* }
            }

            /// Writes the registers to the PE the caller runs on, then makes the new
            /// translation regime and image visible: invalidates EL1&0 TLB entries and the
            /// instruction cache of this PE.
            pub fn restore(&self) {
                // SAFETY: called at EL2 with no guest running on this PE; the values were read
                // from the same vCPU on another PE, so they describe the EL1 state this guest
                // already ran with (its page tables and vectors live in memory every PE sees).
                // The TLB and I-cache maintenance only drops cached state.
                unsafe {
                    $(write_sysreg!($reg, self.$reg);)*
                    core::arch::asm!(
                        "isb",
                        "tlbi vmalle1",
                        "ic iallu",
                        "dsb nsh",
                        "isb",
                        options(nostack)
                    );
                }
            }
        }
    };
}

el1_context!(
    sctlr_el1,
    tcr_el1,
    ttbr0_el1,
    ttbr1_el1,
    mair_el1,
    amair_el1,
    vbar_el1,
    cpacr_el1,
    elr_el1,
    spsr_el1,
    esr_el1,
    far_el1,
    afsr0_el1,
    afsr1_el1,
    par_el1,
    contextidr_el1,
    tpidr_el1,
    tpidr_el0,
    tpidrro_el0,
    cntkctl_el1,
    csselr_el1,
    mdscr_el1,
    vmpidr_el2,
    vpidr_el2,
);
