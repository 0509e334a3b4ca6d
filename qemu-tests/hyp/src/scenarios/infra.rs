// SPDX-License-Identifier: MIT OR Apache-2.0
//! Infrastructure scenarios: the test platform itself works (EL2, MMU, allocator, IRQs at EL2,
//! a second CPU, the EL1 guest and its exits).

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use common::hvc_abi::program;
use common::palloc::PALLOC;
use common::{check, mmu, println, read_sysreg, report, require, sysreg, timer};

use super::Ctx;
use crate::exits;
use crate::gic_hw;
use crate::smp;
use crate::vcpu::{Exit, Vcpu};

/// The SGI boot_smoke sends itself.
const TEST_SGI: u32 = 3;

/// EL2 reached, MMU and caches on, allocator round trip without a leak, an SGI taken at EL2
/// with the SIMD registers preserved across the interrupt.
pub fn boot_smoke(ctx: &mut Ctx) {
    check!(
        sysreg::current_el() == 2,
        "CurrentEL = {}",
        sysreg::current_el()
    );
    let sctlr = read_sysreg!(sctlr_el2);
    check!(
        mmu::el2_mmu_and_caches_on(),
        "SCTLR_EL2 = {sctlr:#x}: MMU/caches off"
    );
    println!(
        "{}: EL2, SCTLR_EL2={sctlr:#x}, CNTFRQ={} Hz",
        ctx.name,
        timer::frequency()
    );

    allocator_round_trip();
    sgi_at_el2(ctx.cpu);
}

fn allocator_round_trip() {
    let before = PALLOC.outstanding();
    let (total, free_before) = PALLOC.capacity();
    check!(total >= 256 << 20, "allocator manages only {total} bytes");
    let layouts = [
        (4096usize, 4096usize),
        (100, 256),
        (64 << 10, 64 << 10),
        (1 << 20, 2 << 20),
    ];
    let mut blocks = [None; 4];
    for (slot, &(size, align)) in blocks.iter_mut().zip(&layouts) {
        match PALLOC.alloc_zeroed(size, align) {
            Ok(p) => {
                let addr = p.as_ptr() as usize;
                check!(
                    addr.is_multiple_of(align),
                    "{addr:#x} not aligned to {align:#x}"
                );
                // SAFETY: a fresh allocation of `size` bytes, owned here.
                let bytes = unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), size) };
                check!(
                    bytes.iter().all(|&b| b == 0),
                    "allocation at {addr:#x} not zeroed"
                );
                bytes.fill(0xa5);
                *slot = Some((p, size));
            }
            Err(e) => {
                check!(false, "alloc({size:#x}, {align:#x}) failed: {e:?}");
            }
        }
    }
    check!(PALLOC.outstanding() > before, "outstanding did not grow");
    for (p, size) in blocks.iter().flatten() {
        // SAFETY: allocated above, not used any more.
        unsafe { PALLOC.free(*p, *size) };
    }
    let after = PALLOC.outstanding();
    check!(
        after == before,
        "leak: {} bytes outstanding after free",
        after - before
    );
    let (_, free_after) = PALLOC.capacity();
    check!(
        free_after == free_before,
        "free bytes {free_before} -> {free_after}"
    );
    // Freed memory comes back zeroed.
    if let Ok(p) = PALLOC.alloc_zeroed(4096, 4096) {
        // SAFETY: a fresh 4 KiB allocation, owned here.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), 4096) };
        check!(
            bytes.iter().all(|&b| b == 0),
            "reused allocation not zeroed"
        );
        // SAFETY: allocated just above, not used any more.
        unsafe { PALLOC.free(p, 4096) };
    }
    report::metrics(&[("palloc_outstanding", PALLOC.outstanding() as u64)]);
}

/// Loads q0-q31 with a pattern, takes an SGI at EL2 (whose handler runs Rust code), and reads
/// them back: they must be unchanged.
fn sgi_at_el2(cpu: usize) {
    if let Err(e) = gic_hw::get().enable_private_irq(cpu, TEST_SGI) {
        check!(false, "enable SGI: {e:?}");
        return;
    }
    static HOOKED: AtomicU32 = AtomicU32::new(0);
    /// The hook: records the INTID (plus one, so 0 means none).
    fn record(intid: u32) {
        HOOKED.store(intid + 1, Ordering::Relaxed);
    }
    exits::set_irq_hook(Some(&(record as fn(u32))));
    let before = exits::snapshot();
    let pattern: [u128; 32] =
        core::array::from_fn(|i| 0x0123_4567_89ab_cdef_u128 * (i as u128 + 1));
    let mut readback = [0u128; 32];
    gic_hw::send_sgi_to_self(TEST_SGI);
    // SAFETY: loads and stores the two 512-byte arrays; the IRQ taken while unmasked is handled
    // by the installed EL2 handler, which restores every register. All SIMD registers are
    // declared clobbered.
    unsafe {
        core::arch::asm!(
            "ldp q0, q1, [{src}, #0]", "ldp q2, q3, [{src}, #32]",
            "ldp q4, q5, [{src}, #64]", "ldp q6, q7, [{src}, #96]",
            "ldp q8, q9, [{src}, #128]", "ldp q10, q11, [{src}, #160]",
            "ldp q12, q13, [{src}, #192]", "ldp q14, q15, [{src}, #224]",
            "ldp q16, q17, [{src}, #256]", "ldp q18, q19, [{src}, #288]",
            "ldp q20, q21, [{src}, #320]", "ldp q22, q23, [{src}, #352]",
            "ldp q24, q25, [{src}, #384]", "ldp q26, q27, [{src}, #416]",
            "ldp q28, q29, [{src}, #448]", "ldp q30, q31, [{src}, #480]",
            "msr daifclr, #2",
            "isb",
            "mov {n}, #10000",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "msr daifset, #2",
            "stp q0, q1, [{dst}, #0]", "stp q2, q3, [{dst}, #32]",
            "stp q4, q5, [{dst}, #64]", "stp q6, q7, [{dst}, #96]",
            "stp q8, q9, [{dst}, #128]", "stp q10, q11, [{dst}, #160]",
            "stp q12, q13, [{dst}, #192]", "stp q14, q15, [{dst}, #224]",
            "stp q16, q17, [{dst}, #256]", "stp q18, q19, [{dst}, #288]",
            "stp q20, q21, [{dst}, #320]", "stp q22, q23, [{dst}, #352]",
            "stp q24, q25, [{dst}, #384]", "stp q26, q27, [{dst}, #416]",
            "stp q28, q29, [{dst}, #448]", "stp q30, q31, [{dst}, #480]",
            src = in(reg) pattern.as_ptr(),
            dst = in(reg) readback.as_mut_ptr(),
            n = out(reg) _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
        );
    }
    // The SGI may also arrive a little later on a slow host: wait for it, bounded.
    if exits::snapshot().el2_irqs == before.el2_irqs {
        sysreg::unmask_irqs();
        timer::poll_until(Duration::from_millis(100), || {
            exits::snapshot().el2_irqs != before.el2_irqs
        });
        sysreg::mask_irqs();
    }
    exits::set_irq_hook(None);
    let taken = exits::snapshot().since(&before);
    let hooked = HOOKED.load(Ordering::Relaxed);
    check!(
        hooked == TEST_SGI + 1,
        "IRQ hook saw {}",
        hooked.wrapping_sub(1)
    );
    check!(
        taken.el2_irqs == 1,
        "SGI taken {} times at EL2",
        taken.el2_irqs
    );
    check!(
        exits::last_intid() == TEST_SGI,
        "last INTID {}",
        exits::last_intid()
    );
    check!(taken.exits() == 0, "EL2 exits without a guest: {taken:?}");
    check!(
        readback == pattern,
        "SIMD registers changed across the interrupt"
    );
}

/// CPU1 comes up through PSCI CPU_ON at EL2 with its MMU on, checks in, and runs work posted
/// to it.
pub fn smp_smoke(_ctx: &mut Ctx) {
    if let Err(e) = smp::start(1, Duration::from_secs(1)) {
        check!(false, "cpu1 did not start: {e:?}");
        return;
    }
    let (mpidr, sctlr) = smp::checkin_regs(1);
    println!("smp_smoke: cpu1 checked in, MPIDR={mpidr:#x}, SCTLR_EL2={sctlr:#x}");
    check!(mpidr & 0xff_ffff == 1, "cpu1 MPIDR {mpidr:#x}");
    check!(
        sctlr & 0x1005 == 0x1005,
        "cpu1 SCTLR_EL2 {sctlr:#x}: MMU/caches off"
    );
    let r = smp::run_on(
        1,
        |cpu| (cpu as u64) << 8 | sysreg::current_el(),
        Duration::from_secs(1),
    );
    check!(r == Ok(0x102), "work on cpu1 returned {r:?}");
}

/// Enters the EL1 guest (program `SMOKE`): it turns its MMU on, prints, makes a hypercall
/// round trip, executes one trapped WFI, and reports done. Every exit is counted.
pub fn guest_smoke(_ctx: &mut Ctx) {
    let before = exits::snapshot();
    let mut vcpu = Vcpu::new(program::SMOKE);
    let mut numbers = 0;
    let result = vcpu.run_until_done(|_, exit| {
        if let Exit::Hvc {
            nr: common::hvc_abi::HVC_PRINT_NUM,
            ..
        } = exit
        {
            numbers += 1;
        }
        None
    });
    let counts = exits::snapshot().since(&before);
    counts.report();
    require!(result == Ok(0), "guest ended with {result:?}");
    check!(numbers == 1, "{numbers} print hypercalls");
    check!(
        counts.hvc == 2,
        "hvc exits = {} (print + done expected)",
        counts.hvc
    );
    check!(counts.wfi == 1, "wfi exits = {}", counts.wfi);
    check!(
        counts.exits() == 3,
        "exits = {} ({counts:?})",
        counts.exits()
    );
}
