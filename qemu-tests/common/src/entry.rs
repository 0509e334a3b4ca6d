// SPDX-License-Identifier: MIT OR Apache-2.0
//! EL2 and EL1 entry points, secondary CPUs, and the image entry macros.
//!
//! `common_el2_start` (the hyp's ELF entry) and `common_el1_start` (the guest's, reached through
//! the guest image header) do, in assembly:
//!
//! 1. check CurrentEL (wrong level: print `@@T panic` and exit with status 3);
//! 2. pick the CPU's stack by MPIDR_EL1.Aff0 ([`MAX_CPUS`] stacks of [`STACK_SIZE`]);
//! 3. enable FP/SIMD (CPTR_EL2.TFP = 0 at EL2, CPACR_EL1.FPEN = 0b11 at EL1), since `core::fmt`
//!    uses SIMD registers;
//! 4. set VBAR to the level's vector table;
//! 5. zero BSS (boot CPU only);
//!
//! then, in Rust, build the identity map and enable the MMU and caches before calling the
//! image's main, named with [`el2_main!`](crate::el2_main) / [`el1_main!`](crate::el1_main).
//! Secondary CPUs started by [`start_secondary`] enter at `common_el2_secondary`, do steps 1-4,
//! enable the MMU with the tables the boot CPU built and call the function passed to
//! [`start_secondary`].
//!
//! # Why hand-written
//! Entry code runs before there is a stack, with the MMU off: it is assembly by nature, specific to
//! this memory layout (per-CPU stacks, BSS, the guest image header) and to the two exception
//! levels.

use crate::mmu::{self, Regime};
use crate::platform::{MAX_CPUS, STACK_SIZE};
use crate::psci::{self, PsciError};
use crate::sync::SpinLock;
use crate::{console, semihosting};

/// CPTR_EL2 (non-VHE): RES1 bits 13, 12 (TSM, traps SME), 9, 8 (TZ, traps SVE), 7:0; TFP (bit
/// 10) = 0 so FP/SIMD does not trap; TTA, TAM, TCPAC = 0.
const CPTR_EL2: u64 = 0x33ff;
/// CPACR_EL1.FPEN = 0b11: FP/SIMD does not trap at EL1 or EL0.
pub const CPACR_EL1_FPEN: u64 = 0b11 << 20;
/// HCR_EL2 while no guest runs: RW (EL1 is AArch64), AMO, IMO, FMO (physical SError, IRQ and
/// FIQ are taken to EL2, or they would never reach the hyp).
pub const HCR_EL2_HOST: u64 = (1 << 31) | (1 << 5) | (1 << 4) | (1 << 3);
/// CNTHCTL_EL2: EL1PCTEN | EL1PCEN, so EL1 reads the physical counter without trapping.
const CNTHCTL_EL2: u64 = 0b11;

core::arch::global_asm!(
    r#"
.macro common_pick_stack
    mrs     x9, mpidr_el1
    and     x9, x9, #0xff
    cmp     x9, #{max_cpus}
    b.hs    common_park
    adrp    x10, common_stacks
    add     x10, x10, :lo12:common_stacks
    add     x11, x9, #1
    mov     x12, #{stack_size}
    madd    x10, x11, x12, x10
    mov     sp, x10
.endm

.macro common_check_el el
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #\el
    b.eq    1f
    adrp    x10, common_stacks
    add     x10, x10, :lo12:common_stacks
    add     sp, x10, #{stack_size}
    mov     x0, x9
    bl      common_wrong_el
1:
.endm

.macro common_el2_setup
    common_check_el 2
    common_pick_stack
    mov     x10, #{cptr_el2}
    msr     cptr_el2, x10
    adrp    x10, common_el2_vectors
    add     x10, x10, :lo12:common_el2_vectors
    msr     vbar_el2, x10
    isb
.endm

.macro common_zero_bss
    adrp    x10, __bss_start
    add     x10, x10, :lo12:__bss_start
    adrp    x11, __bss_end
    add     x11, x11, :lo12:__bss_end
2:
    cmp     x10, x11
    b.hs    3f
    str     xzr, [x10], #8
    b       2b
3:
.endm

.section .text.common_el2_start, "ax"
.global common_el2_start
common_el2_start:
    common_el2_setup
    cbnz    x9, common_park
    common_zero_bss
    mov     x0, x9
    bl      common_el2_primary_rust
    b       common_park

.global common_el2_secondary
common_el2_secondary:
    common_el2_setup
    mov     x0, x9
    bl      common_el2_secondary_rust
    b       common_park

.section .text.common_el1_start, "ax"
// x0 = the argument the hyp passes (the guest program number).
.global common_el1_start
common_el1_start:
    mov     x19, x0
    common_check_el 1
    common_pick_stack
    mov     x10, #{cpacr_fpen}
    msr     cpacr_el1, x10
    adrp    x10, common_el1_vectors
    add     x10, x10, :lo12:common_el1_vectors
    msr     vbar_el1, x10
    isb
    cbnz    x9, 4f
    common_zero_bss
4:
    mov     x0, x9
    mov     x1, x19
    bl      common_el1_primary_rust
    b       common_park

.section .text.common_park, "ax"
.global common_park
common_park:
    wfe
    b       common_park

.section .stacks, "aw", %nobits
.balign 16
.global common_stacks
common_stacks:
    .space  {stacks_size}
"#,
    max_cpus = const MAX_CPUS,
    stack_size = const STACK_SIZE,
    stacks_size = const MAX_CPUS * STACK_SIZE,
    cptr_el2 = const CPTR_EL2,
    cpacr_fpen = const CPACR_EL1_FPEN,
);

/// Entered at the wrong exception level: no MMU, maybe no FP, so raw bytes only.
#[unsafe(no_mangle)]
extern "C" fn common_wrong_el(el: u64) -> ! {
    console::init();
    console::write_raw(b"@@T panic entry: wrong exception level EL");
    console::write_raw(&[b'0' + (el as u8 & 3), b'\n']);
    semihosting::exit(3)
}

unsafe extern "Rust" {
    /// Defined by [`el2_main!`](crate::el2_main) in the hyp.
    fn __common_el2_main(cpu: usize) -> !;
    /// Defined by [`el1_main!`](crate::el1_main) in the guest.
    fn __common_el1_main(cpu: usize, arg: u64) -> !;
}

#[unsafe(no_mangle)]
extern "C" fn common_el2_primary_rust(cpu: usize) -> ! {
    // SAFETY: the boot CPU, alone, at EL2 with the MMU off (reset state), running from the
    // identity-mapped image; HCR and CNTHCTL only affect lower levels, none of which runs.
    unsafe {
        crate::write_sysreg!(hcr_el2, HCR_EL2_HOST);
        crate::write_sysreg!(cnthctl_el2, CNTHCTL_EL2);
        crate::write_sysreg!(cntvoff_el2, 0);
        mmu::init_tables(Regime::El2);
        mmu::enable_el2();
    }
    console::init();
    // SAFETY: `el2_main!` defines this symbol with this signature.
    unsafe { __common_el2_main(cpu) }
}

/// A secondary CPU's Rust entry.
type SecondaryMain = fn(usize) -> !;

/// What each secondary CPU runs (read once its MMU is on, so the lock works).
static SECONDARY_MAIN: [SpinLock<Option<SecondaryMain>>; MAX_CPUS] =
    [const { SpinLock::new(None) }; MAX_CPUS];

#[unsafe(no_mangle)]
extern "C" fn common_el2_secondary_rust(cpu: usize) -> ! {
    // SAFETY: a secondary CPU at EL2 with its MMU off; the boot CPU built the tables before
    // calling CPU_ON, and this CPU's stack and code are identity mapped.
    unsafe {
        crate::write_sysreg!(hcr_el2, HCR_EL2_HOST);
        crate::write_sysreg!(cnthctl_el2, CNTHCTL_EL2);
        crate::write_sysreg!(cntvoff_el2, 0);
        mmu::enable_el2();
    }
    let main = *SECONDARY_MAIN[cpu].lock();
    match main {
        Some(main) => main(cpu),
        None => panic!("cpu{cpu} started without a main"),
    }
}

#[unsafe(no_mangle)]
extern "C" fn common_el1_primary_rust(cpu: usize, arg: u64) -> ! {
    // SAFETY: at EL1 with the MMU off, alone in this image, running from identity-mapped RAM.
    unsafe {
        mmu::init_tables(Regime::El1);
        mmu::enable_el1();
    }
    console::init();
    // SAFETY: `el1_main!` defines this symbol with this signature.
    unsafe { __common_el1_main(cpu, arg) }
}

/// Starts secondary CPU `cpu` (MPIDR Aff0 = `cpu`) at EL2 with PSCI CPU_ON; it runs `main(cpu)`
/// once its stack, vectors and MMU are set up.
pub fn start_secondary(cpu: usize, main: fn(usize) -> !) -> Result<(), PsciError> {
    if cpu == 0 || cpu >= MAX_CPUS {
        return Err(PsciError::InvalidParameters);
    }
    *SECONDARY_MAIN[cpu].lock() = Some(main);
    unsafe extern "C" {
        fn common_el2_secondary();
    }
    let entry = common_el2_secondary as *const () as u64;
    // Nothing the secondary reads before its MMU is on was written through the cache after
    // reset except the page tables, which were written with the MMU off; it reads
    // SECONDARY_MAIN with its MMU and caches on, coherent with ours.
    // SAFETY: `common_el2_secondary` is written to start from the reset state at EL2.
    unsafe { psci::cpu_on(cpu as u64, entry, cpu as u64) }
}

/// Names the hyp's entry: `common::el2_main!(main)` with `fn main(cpu: usize) -> !`.
#[macro_export]
macro_rules! el2_main {
    ($main:path) => {
        #[unsafe(export_name = "__common_el2_main")]
        fn __common_el2_main_wrapper(cpu: usize) -> ! {
            let main: fn(usize) -> ! = $main;
            main(cpu)
        }
    };
}

/// Names the guest's entry: `common::el1_main!(main)` with `fn main(cpu: usize, arg: u64) -> !`
/// (`arg` is x0 at entry, the guest program number the hyp chose).
#[macro_export]
macro_rules! el1_main {
    ($main:path) => {
        #[unsafe(export_name = "__common_el1_main")]
        fn __common_el1_main_wrapper(cpu: usize, arg: u64) -> ! {
            let main: fn(usize, u64) -> ! = $main;
            main(cpu, arg)
        }
    };
}
