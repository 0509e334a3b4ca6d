// SPDX-License-Identifier: MIT OR Apache-2.0
//! EL2 and EL1 exception vectors with full context save, and pluggable handlers.
//!
//! Each of the 16 vector entries saves the complete interrupted context into a [`Frame`] on the
//! current stack: x0-x30, SP_EL0 and the interrupted SP_ELx, ELR, SPSR, ESR, FAR, FPSR, FPCR and
//! q0-q31 (Rust code uses SIMD registers, e.g. in `core::fmt`, so they must survive an
//! interrupt). It then calls the handler registered for that [`VectorKind`] with `&mut Frame`,
//! restores the (possibly modified) frame and returns with `eret`. A kind without a handler
//! prints
//!
//! ```text
//! @@T exception <el>-<kind> ESR=0x.. ELR=0x.. FAR=0x.. SPSR=0x.. (<exception class>)
//! ```
//!
//! and ends the run with status [`EXCEPTION_EXIT_STATUS`].
//!
//! The hyp installs [`EL2_VECTORS`] (VBAR_EL2), the guest [`EL1_VECTORS`] (VBAR_EL1); the
//! entry code does that. There is one handler table per image.
//!
//! # Why hand-written
//! The vector tables and the frame layout are assembly that must match [`Frame`] field for field
//! (checked at compile time) and that the hyp's vCPU entry reuses to enter the guest
//! (`common_vcpu_enter` restores a guest frame as an exception return would); no crate provides
//! a full-context (SIMD included) EL2 frame shared with a vCPU entry.

use crate::sync::FnSlot;

/// QEMU exit status after an unexpected exception.
pub const EXCEPTION_EXIT_STATUS: u32 = 102;

/// The saved context of an exception.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp_el0: u64,
    /// The stack pointer of the interrupted context when it ran on SP_ELx: SP_EL1 for an
    /// exception from a lower level (EL2 vectors), otherwise this level's SP before the
    /// exception. Written back (to SP_EL1) only for exceptions from a lower level.
    pub sp_elx: u64,
    /// ELR_ELx: the preferred return address.
    pub elr: u64,
    /// SPSR_ELx: the interrupted PSTATE.
    pub spsr: u64,
    /// ESR_ELx (not written back).
    pub esr: u64,
    /// FAR_ELx (not written back).
    pub far: u64,
    /// FPSR.
    pub fpsr: u64,
    /// FPCR.
    pub fpcr: u64,
    _pad: u64,
    /// q0 to q31.
    pub q: [u128; 32],
}

impl Frame {
    /// An all-zero frame.
    pub const fn zeroed() -> Self {
        Self {
            x: [0; 31],
            sp_el0: 0,
            sp_elx: 0,
            elr: 0,
            spsr: 0,
            esr: 0,
            far: 0,
            fpsr: 0,
            fpcr: 0,
            _pad: 0,
            q: [0; 32],
        }
    }

    /// ESR exception class (ESR_ELx.EC).
    pub const fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
}

const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const OFF_SP_EL0: usize = core::mem::offset_of!(Frame, sp_el0);
const OFF_SP_ELX: usize = core::mem::offset_of!(Frame, sp_elx);
const OFF_ELR: usize = core::mem::offset_of!(Frame, elr);
const OFF_ESR: usize = core::mem::offset_of!(Frame, esr);
const OFF_FPSR: usize = core::mem::offset_of!(Frame, fpsr);
const OFF_Q: usize = core::mem::offset_of!(Frame, q);
const _: () = {
    assert!(FRAME_SIZE.is_multiple_of(16) && FRAME_SIZE < 4096);
    assert!(core::mem::offset_of!(Frame, spsr) == OFF_ELR + 8);
    assert!(core::mem::offset_of!(Frame, far) == OFF_ESR + 8);
    assert!(core::mem::offset_of!(Frame, fpcr) == OFF_FPSR + 8);
    assert!(OFF_Q.is_multiple_of(16) && OFF_Q + 512 <= 1008 + 32);
    assert!(OFF_FPSR <= 504);
};

/// Which of the 16 vectors was taken (the index in the vector table).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum VectorKind {
    /// Synchronous, current level, SP_EL0.
    SyncCurrentSp0 = 0,
    /// IRQ, current level, SP_EL0.
    IrqCurrentSp0 = 1,
    /// FIQ, current level, SP_EL0.
    FiqCurrentSp0 = 2,
    /// SError, current level, SP_EL0.
    SErrorCurrentSp0 = 3,
    /// Synchronous, current level, SP_ELx.
    SyncCurrentSpx = 4,
    /// IRQ, current level, SP_ELx.
    IrqCurrentSpx = 5,
    /// FIQ, current level, SP_ELx.
    FiqCurrentSpx = 6,
    /// SError, current level, SP_ELx.
    SErrorCurrentSpx = 7,
    /// Synchronous, lower level, AArch64.
    SyncLowerA64 = 8,
    /// IRQ, lower level, AArch64.
    IrqLowerA64 = 9,
    /// FIQ, lower level, AArch64.
    FiqLowerA64 = 10,
    /// SError, lower level, AArch64.
    SErrorLowerA64 = 11,
    /// Synchronous, lower level, AArch32.
    SyncLowerA32 = 12,
    /// IRQ, lower level, AArch32.
    IrqLowerA32 = 13,
    /// FIQ, lower level, AArch32.
    FiqLowerA32 = 14,
    /// SError, lower level, AArch32.
    SErrorLowerA32 = 15,
}

impl VectorKind {
    const ALL: [Self; 16] = [
        Self::SyncCurrentSp0,
        Self::IrqCurrentSp0,
        Self::FiqCurrentSp0,
        Self::SErrorCurrentSp0,
        Self::SyncCurrentSpx,
        Self::IrqCurrentSpx,
        Self::FiqCurrentSpx,
        Self::SErrorCurrentSpx,
        Self::SyncLowerA64,
        Self::IrqLowerA64,
        Self::FiqLowerA64,
        Self::SErrorLowerA64,
        Self::SyncLowerA32,
        Self::IrqLowerA32,
        Self::FiqLowerA32,
        Self::SErrorLowerA32,
    ];

    /// The kind for a vector table index (0..16).
    pub fn from_index(i: usize) -> Self {
        Self::ALL[i & 15]
    }

    /// Short name used in the `@@T exception` line, e.g. `sync-current-spx`.
    pub const fn name(self) -> &'static str {
        const NAMES: [&str; 16] = [
            "sync-current-sp0",
            "irq-current-sp0",
            "fiq-current-sp0",
            "serror-current-sp0",
            "sync-current-spx",
            "irq-current-spx",
            "fiq-current-spx",
            "serror-current-spx",
            "sync-lower-a64",
            "irq-lower-a64",
            "fiq-lower-a64",
            "serror-lower-a64",
            "sync-lower-a32",
            "irq-lower-a32",
            "fiq-lower-a32",
            "serror-lower-a32",
        ];
        NAMES[self as usize]
    }
}

/// An exception handler. It may change the frame (e.g. advance `elr`); the vector restores it.
pub type Handler = fn(&mut Frame, VectorKind);

/// The registered handlers, one per vector kind.
static HANDLERS: [FnSlot<Handler>; 16] = [const { FnSlot::new() }; 16];

/// Registers (or with `None`, removes) the handler for one vector kind, for this image:
/// `set_handler(kind, Some(&(my_handler as Handler)))`.
pub fn set_handler(kind: VectorKind, handler: Option<&'static Handler>) {
    HANDLERS[kind as usize].set(handler);
}

/// A readable name for an exception class.
pub const fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE trapped",
        0x07 => "SIMD/FP access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "MSR/MRS trapped",
        0x20 => "instruction abort from lower EL",
        0x21 => "instruction abort at same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from lower EL",
        0x25 => "data abort at same EL",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK",
        _ => "other",
    }
}

/// Reports an exception nobody handles and ends the run with [`EXCEPTION_EXIT_STATUS`].
pub fn unexpected(frame: &Frame, kind: VectorKind, el: u8) -> ! {
    crate::println!(
        "@@T exception el{}-{} ESR=0x{:x} ELR=0x{:x} FAR=0x{:x} SPSR=0x{:x} ({})",
        el,
        kind.name(),
        frame.esr,
        frame.elr,
        frame.far,
        frame.spsr,
        ec_name(frame.ec()),
    );
    crate::semihosting::exit(EXCEPTION_EXIT_STATUS)
}

fn dispatch(frame: &mut Frame, index: u64, el: u8) {
    let kind = VectorKind::from_index(index as usize);
    match HANDLERS[kind as usize].get() {
        Some(handler) => handler(frame, kind),
        None => unexpected(frame, kind, el),
    }
}

#[unsafe(no_mangle)]
extern "C" fn common_el2_dispatch(frame: &mut Frame, index: u64) {
    dispatch(frame, index, 2);
}

#[unsafe(no_mangle)]
extern "C" fn common_el1_dispatch(frame: &mut Frame, index: u64) {
    dispatch(frame, index, 1);
}

unsafe extern "C" {
    /// The EL2 vector table (2 KiB aligned), for VBAR_EL2.
    #[link_name = "common_el2_vectors"]
    pub static EL2_VECTORS: [u8; 2048];
    /// The EL1 vector table (2 KiB aligned), for VBAR_EL1.
    #[link_name = "common_el1_vectors"]
    pub static EL1_VECTORS: [u8; 2048];
}

// The vector tables. `common_vec_entry` saves x0/x1, puts the vector index in x0 and branches
// to the level's save routine; `common_save_and_dispatch` saves the rest, calls
// common_elN_dispatch(frame, index), and falls into the restore. `common_restore` is also used
// by the hyp's vcpu entry (with `lower = 1`), which is why it takes the base register.
core::arch::global_asm!(
    r#"
.macro common_vec_entry el, index
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       common_el\el\()_save
.endm

.macro common_restore el, base, lower
    ldp     q0, q1, [\base, #({off_q} + 0)]
    ldp     q2, q3, [\base, #({off_q} + 32)]
    ldp     q4, q5, [\base, #({off_q} + 64)]
    ldp     q6, q7, [\base, #({off_q} + 96)]
    ldp     q8, q9, [\base, #({off_q} + 128)]
    ldp     q10, q11, [\base, #({off_q} + 160)]
    ldp     q12, q13, [\base, #({off_q} + 192)]
    ldp     q14, q15, [\base, #({off_q} + 224)]
    ldp     q16, q17, [\base, #({off_q} + 256)]
    ldp     q18, q19, [\base, #({off_q} + 288)]
    ldp     q20, q21, [\base, #({off_q} + 320)]
    ldp     q22, q23, [\base, #({off_q} + 352)]
    ldp     q24, q25, [\base, #({off_q} + 384)]
    ldp     q26, q27, [\base, #({off_q} + 416)]
    ldp     q28, q29, [\base, #({off_q} + 448)]
    ldp     q30, q31, [\base, #({off_q} + 480)]
    ldp     x2, x3, [\base, #{off_fpsr}]
    msr     fpsr, x2
    msr     fpcr, x3
    ldp     x2, x3, [\base, #{off_elr}]
    msr     elr_el\el, x2
    msr     spsr_el\el, x3
    ldr     x2, [\base, #{off_sp_el0}]
    msr     sp_el0, x2
    .if \lower == 2
    cmp     x19, #8
    b.lo    3f
    .endif
    .if \lower != 0
    ldr     x2, [\base, #{off_sp_elx}]
    msr     sp_el1, x2
    .endif
3:
    ldp     x2, x3, [\base, #16]
    ldp     x4, x5, [\base, #32]
    ldp     x6, x7, [\base, #48]
    ldp     x8, x9, [\base, #64]
    ldp     x10, x11, [\base, #80]
    ldp     x12, x13, [\base, #96]
    ldp     x14, x15, [\base, #112]
    ldp     x16, x17, [\base, #128]
    ldp     x18, x19, [\base, #144]
    ldp     x20, x21, [\base, #160]
    ldp     x22, x23, [\base, #176]
    ldp     x24, x25, [\base, #192]
    ldp     x26, x27, [\base, #208]
    ldp     x28, x29, [\base, #224]
    ldr     x30, [\base, #240]
    ldp     x0, x1, [\base, #0]
.endm

.macro common_save_and_dispatch el
common_el\el\()_save:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x1, sp_el0
    str     x1, [sp, #{off_sp_el0}]
    .if \el == 2
    cmp     x0, #8
    b.hs    1f
    .endif
    add     x1, sp, #{frame_size}
    .if \el == 2
    b       2f
1:
    mrs     x1, sp_el1
2:
    .endif
    str     x1, [sp, #{off_sp_elx}]
    mrs     x1, elr_el\el
    mrs     x2, spsr_el\el
    stp     x1, x2, [sp, #{off_elr}]
    mrs     x1, esr_el\el
    mrs     x2, far_el\el
    stp     x1, x2, [sp, #{off_esr}]
    mrs     x1, fpsr
    mrs     x2, fpcr
    stp     x1, x2, [sp, #{off_fpsr}]
    stp     q0, q1, [sp, #({off_q} + 0)]
    stp     q2, q3, [sp, #({off_q} + 32)]
    stp     q4, q5, [sp, #({off_q} + 64)]
    stp     q6, q7, [sp, #({off_q} + 96)]
    stp     q8, q9, [sp, #({off_q} + 128)]
    stp     q10, q11, [sp, #({off_q} + 160)]
    stp     q12, q13, [sp, #({off_q} + 192)]
    stp     q14, q15, [sp, #({off_q} + 224)]
    stp     q16, q17, [sp, #({off_q} + 256)]
    stp     q18, q19, [sp, #({off_q} + 288)]
    stp     q20, q21, [sp, #({off_q} + 320)]
    stp     q22, q23, [sp, #({off_q} + 352)]
    stp     q24, q25, [sp, #({off_q} + 384)]
    stp     q26, q27, [sp, #({off_q} + 416)]
    stp     q28, q29, [sp, #({off_q} + 448)]
    stp     q30, q31, [sp, #({off_q} + 480)]
    mov     x19, x0
    mov     x1, x0
    mov     x0, sp
    bl      common_el\el\()_dispatch
    common_restore \el, sp, 2
    add     sp, sp, #{frame_size}
    eret
.endm

.section .text.common_el2_vectors, "ax"
.balign 2048
.global common_el2_vectors
common_el2_vectors:
    common_vec_entry 2, 0
    common_vec_entry 2, 1
    common_vec_entry 2, 2
    common_vec_entry 2, 3
    common_vec_entry 2, 4
    common_vec_entry 2, 5
    common_vec_entry 2, 6
    common_vec_entry 2, 7
    common_vec_entry 2, 8
    common_vec_entry 2, 9
    common_vec_entry 2, 10
    common_vec_entry 2, 11
    common_vec_entry 2, 12
    common_vec_entry 2, 13
    common_vec_entry 2, 14
    common_vec_entry 2, 15
    common_save_and_dispatch 2

.section .text.common_el1_vectors, "ax"
.balign 2048
.global common_el1_vectors
common_el1_vectors:
    common_vec_entry 1, 0
    common_vec_entry 1, 1
    common_vec_entry 1, 2
    common_vec_entry 1, 3
    common_vec_entry 1, 4
    common_vec_entry 1, 5
    common_vec_entry 1, 6
    common_vec_entry 1, 7
    common_vec_entry 1, 8
    common_vec_entry 1, 9
    common_vec_entry 1, 10
    common_vec_entry 1, 11
    common_vec_entry 1, 12
    common_vec_entry 1, 13
    common_vec_entry 1, 14
    common_vec_entry 1, 15
    common_save_and_dispatch 1

.section .text.common_vcpu, "ax"
// u64 common_vcpu_enter(HostContext *host, const Frame *guest)
//
// Saves the host's callee-saved state and DAIF in *host, loads the whole guest frame (as an
// exception from a lower level would be restored) and erets into the guest. The call
// "returns" when the hyp calls common_vcpu_exit_to_host(host, value).
.global common_vcpu_enter
common_vcpu_enter:
    mov     x9, sp
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    stp     d8, d9, [x0, #96]
    stp     d10, d11, [x0, #112]
    stp     d12, d13, [x0, #128]
    stp     d14, d15, [x0, #144]
    mrs     x10, daif
    stp     x9, x10, [x0, #160]
    msr     daifset, #0xf
    mov     x0, x1
    common_restore 2, x0, 1
    eret

// ! common_vcpu_exit_to_host(const HostContext *host, u64 value)
.global common_vcpu_exit_to_host
common_vcpu_exit_to_host:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldp     d8, d9, [x0, #96]
    ldp     d10, d11, [x0, #112]
    ldp     d12, d13, [x0, #128]
    ldp     d14, d15, [x0, #144]
    ldp     x9, x10, [x0, #160]
    mov     sp, x9
    msr     daif, x10
    mov     x0, x1
    ret
"#,
    frame_size = const FRAME_SIZE,
    off_sp_el0 = const OFF_SP_EL0,
    off_sp_elx = const OFF_SP_ELX,
    off_elr = const OFF_ELR,
    off_esr = const OFF_ESR,
    off_fpsr = const OFF_FPSR,
    off_q = const OFF_Q,
);

/// Callee-saved host state kept while a guest runs (see [`vcpu_enter`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HostContext {
    x19_x30: [u64; 12],
    d8_d15: [u64; 8],
    sp: u64,
    daif: u64,
}

const _: () = {
    assert!(core::mem::offset_of!(HostContext, d8_d15) == 96);
    assert!(core::mem::offset_of!(HostContext, sp) == 160);
    assert!(core::mem::offset_of!(HostContext, daif) == 168);
};

unsafe extern "C" {
    #[link_name = "common_vcpu_enter"]
    fn vcpu_enter_raw(host: *mut HostContext, guest: *const Frame) -> u64;
    #[link_name = "common_vcpu_exit_to_host"]
    fn vcpu_exit_raw(host: *const HostContext, value: u64) -> !;
}

/// Enters a lower exception level with the full context in `guest` (as if returning from an
/// exception taken from it), saving the caller's state in `host`. Returns the `value` passed
/// to [`vcpu_exit_to_host`].
///
/// # Safety
///
/// EL2 only. `guest` must describe a valid lower-level context (SPSR.M an EL1 or EL0 mode) and
/// the EL2 vectors must be installed with a handler that eventually calls
/// [`vcpu_exit_to_host`] with this same `host`, from an exception taken from that lower level
/// (so the stack below the caller's frame is the only stack used in between).
pub unsafe fn vcpu_enter(host: &mut HostContext, guest: &Frame) -> u64 {
    // SAFETY: the caller promised the guest context and the way back; `host` and `guest` are
    // valid references for the duration of the call.
    unsafe { vcpu_enter_raw(host, guest) }
}

/// Returns from [`vcpu_enter`] with `value`, abandoning the current exception frame.
///
/// # Safety
///
/// Called at EL2 from a handler of an exception taken from the lower level that
/// [`vcpu_enter`] entered with `host`, on the same CPU, before that `vcpu_enter` returned.
/// The exception frame is abandoned: save what is needed from it first.
pub unsafe fn vcpu_exit_to_host(host: &HostContext, value: u64) -> ! {
    // SAFETY: the caller promised `host` holds the state of a `vcpu_enter` still in progress on
    // this CPU, whose stack frame lies above the exception frame being abandoned.
    unsafe { vcpu_exit_raw(host, value) }
}
