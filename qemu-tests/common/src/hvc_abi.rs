// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypercall ABI between the guest and the hyp.
//!
//! `hvc #0` with x0 = call number, x1..x3 = arguments; the hyp returns a value in x0.
//! Add new calls here, with the hyp side in `hyp/src/vcpu.rs` (or a scenario's own exit
//! handler) and the guest side in `guest/src/hvc.rs`.

/// The guest program is finished: x1 = number of failed checks (0 = success). Does not return.
pub const HVC_DONE: u64 = 0;
/// Print x1 as a number on the hyp's console; returns x1 + 1 (so the guest can check the
/// round trip).
pub const HVC_PRINT_NUM: u64 = 1;
/// First call number free for scenario-specific hypercalls.
pub const HVC_SCENARIO_BASE: u64 = 0x100;
/// The fwd-irq scenarios' one hypercall (`hyp/src/scenarios/fwd.rs`,
/// `guest/src/programs/fwd.rs`): x1 = a [`fwd_step`] number, x2, x3 = its arguments; returns a
/// step-specific value.
pub const HVC_FWD_STEP: u64 = HVC_SCENARIO_BASE + 0x40;

/// The vLPI scenarios' one hypercall (`hyp/src/scenarios/vlpi.rs`, `hyp/src/v4/guest.rs`,
/// `guest/src/programs/vlpi.rs`): x1 = a [`vlpi_step`] number, x2, x3 = its arguments. The hyp
/// answers with an order: x0 = a [`vlpi_order`] number, x1, x2 = its arguments.
pub const HVC_VLPI_STEP: u64 = HVC_SCENARIO_BASE + 0x50;

/// The steps of [`HVC_VLPI_STEP`].
pub mod vlpi_step {
    /// The guest is ready: x2 = address of its receive counters (one `u16` per vINTID from
    /// 8192), x3 = how many. Answered with the first order.
    pub const HELLO: u64 = 1;
    /// The last order is carried out: x2 = vLPIs received so far, x3 = the guest's own
    /// anomalies so far (waits that timed out, vINTIDs outside its counters). Answered with
    /// the next order.
    pub const NEXT: u64 = 2;
}

/// The orders the hyp gives the vLPI guest (x0 of the answer to [`HVC_VLPI_STEP`]).
pub mod vlpi_order {
    /// Finish: report, then DONE.
    pub const STOP: u64 = 0;
    /// Spin, with no exit, until x1 vLPIs were received in total, then x2 more microseconds.
    pub const WAIT: u64 = 1;
    /// WFI until x1 vLPIs were received in total (with nothing pending, each WFI traps).
    pub const WFI: u64 = 2;
    /// x2 times: raise the `edu` interrupt (its BAR0 at x1), wait for the next vLPI,
    /// acknowledge the device.
    pub const EDU: u64 = 3;
}

/// The benchmark scenarios' one hypercall (`hyp/src/scenarios/bench.rs`,
/// `guest/src/programs/bench.rs`): x1 = a [`bench_step`] number, x2, x3 = its arguments. The
/// hyp answers with an order: x0 = a [`bench_order`] number, x1, x2 = its arguments.
pub const HVC_BENCH_STEP: u64 = HVC_SCENARIO_BASE + 0x60;

/// The steps of [`HVC_BENCH_STEP`].
pub mod bench_step {
    /// The guest is ready: x2 = address of its sample table (`[[u64; 2]; n]`: the counter
    /// value before each trigger, then at the first instruction of the handler), x3 = n.
    /// Answered with the first order.
    pub const HELLO: u64 = 1;
    /// The last order is carried out: x2 = interrupts taken so far, x3 = anomalies so far.
    /// Answered with the next order.
    pub const NEXT: u64 = 2;
}

/// The orders the hyp gives the benchmark guest (x0 of the answer to [`HVC_BENCH_STEP`]).
pub mod bench_order {
    /// Finish: DONE.
    pub const STOP: u64 = 0;
    /// x2 times: read the instruction counter, store x1 to GITS_TRANSLATER (an MSI with
    /// EventID x1), wait for the interrupt it causes.
    pub const MSI: u64 = 1;
    /// x1 times: WFI until one more interrupt arrived (each WFI with nothing pending traps).
    pub const WFI: u64 = 2;
}

/// The steps of [`HVC_FWD_STEP`] (their meaning is documented in `hyp/src/scenarios/fwd.rs`).
pub mod fwd_step {
    /// Returns the SGI_base frame address of the physical redistributor the vCPU runs on.
    pub const PHYS_GICR: u64 = 1;
    /// x2 = phase: starts a measured phase; returns its iteration count (0 = no more phases).
    pub const BEGIN: u64 = 2;
    /// x2 = interrupts handled, x3 = failures: ends the measured phase.
    pub const END: u64 = 3;
    /// A scenario-specific checkpoint: x2 = which one; returns a scenario-specific value.
    pub const SYNC: u64 = 4;
    /// Move the vCPU to the other CPU; returns the CPU it now runs on.
    pub const MIGRATE: u64 = 5;
}

/// Guest program numbers: what the guest does after it boots (x0 at guest entry).
pub mod program {
    /// Boot, print, one hypercall round trip, one trapped WFI, done.
    pub const SMOKE: u64 = 0;
    /// fwd-irq: the virtual timer through an HW list register, measured (`fwd_vtimer`).
    pub const FWD_VTIMER: u64 = 0x40;
    /// fwd-irq: the virtual timer while the guest idles in WFI (`fwd_vtimer_wfi`).
    pub const FWD_VTIMER_WFI: u64 = 0x41;
    /// fwd-irq: a level interrupt whose line drops while masked (`fwd_level_lowered`).
    pub const FWD_LEVEL_LOWERED: u64 = 0x42;
    /// fwd-irq: a level interrupt whose line stays high after EOI (`fwd_level_reassert`).
    pub const FWD_LEVEL_REASSERT: u64 = 0x43;
    /// fwd-irq: more pending interrupts than list registers (`fwd_lr_overflow`).
    pub const FWD_LR_OVERFLOW: u64 = 0x44;
    /// fwd-irq: the virtual timer follows the vCPU to another CPU (`fwd_vtimer_migrate`).
    pub const FWD_VTIMER_MIGRATE: u64 = 0x45;
    /// vLPI scenarios: the receiver that counts vLPIs and carries out the hyp's orders.
    pub const VLPI: u64 = 0x50;
    /// Benchmarks: interrupt latency in instructions (`bench_vlpi_latency`).
    pub const BENCH: u64 = 0x60;
}
