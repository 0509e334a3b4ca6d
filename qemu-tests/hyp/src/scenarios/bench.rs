// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmarks on QEMU, run by `cargo xtask bench` (kept out of the default suite; the runner
//! boots them with `-icount shift=0`, so every count is deterministic):
//!
//! | Scenario | What it measures |
//! |---|---|
//! | `bench_vlpi_latency` | instructions from an MSI (a store to GITS_TRANSLATER) to the first instruction of the guest's handler, and EL2 exits per interrupt, for (i) a resident vPE (direct injection), (ii) a vCPU blocked in WFI (doorbell, wake-up, schedule), (iii) software injection (physical LPI at EL2, list register) |
//! | `bench_vpe_counts` | GICR accesses and ITS commands per vPE schedule and deschedule (a counting `RedistRegisters` wrapper); ITS commands and GITS_CWRITER writes to map N vLPIs, `map_vlpis` beside Linux's VMAPTI + VSYNC per vLPI |
//!
//! # How instructions are counted
//! PMU event counter 0 counts INST_RETIRED (event 0x08) at EL1 and EL2 (PMEVTYPER0_EL0.NSH).
//! QEMU implements that event only under `-icount`, where it is exact; with `shift=0` every
//! instruction also advances virtual time by 1 ns. MDCR_EL2.HPMN gives every counter to EL1 and
//! TPM = 0 lets the guest read it, so the guest reads it right before its store to
//! GITS_TRANSLATER and as the first action of its IRQ handler (after the vector's fixed-length
//! register save). For (ii) the hyp reads it right before it makes the MSI, with the vCPU
//! blocked. Each path runs [`REPS`] times; `@@M` lines give min, median and max.

use core::cell::Cell;

use common::hvc_abi::{HVC_BENCH_STEP, bench_order, bench_step, program};
use common::platform::{GUEST_BASE, GUEST_SIZE};
use common::{check, println, require, write_sysreg};
use doorbell::Waiter;
use its_cmdq::{LpiRange, QueueStats, SyncTarget};
use its_core::cmd::Command;
use its_core::ids::{EventId, IntId};
use its_core::mmio::RedistRegisters;
use its_core::regs::{
    GicrCtlr, GicrInvallr, GicrInvlpir, GicrLpir, GicrPendbaser, GicrPropbaser, GicrSyncr,
    GicrTyper, GicrWaker,
};
use vpe_sched::VlpiConfig;

use super::Ctx;
use super::support::v4::{
    WAKE_TIMEOUT, cfg, create_vm, deschedule, destroy_vm, schedule, unmap_device, unmap_vlpis,
};
use super::support::{LPI_TIMEOUT, MemMark, map_device, need, queue_delta, up_default};
use crate::exits::{self, ExitCounts};
use crate::gic;
use crate::v4::{self, V4};
use crate::vcpu::{Exit, Flow, Vcpu};

/// Interrupts per path.
const REPS: usize = 100;

// ---------------------------------------------------------------------------------------------
// The instruction counter.

/// PMU event counter 0 as an instruction counter (see the module documentation).
mod pmu {
    use common::{read_sysreg, write_sysreg};

    /// INST_RETIRED.
    const INST_RETIRED: u64 = 0x08;
    /// PMEVTYPER<n>_EL0.NSH: count at EL2 too.
    const NSH: u64 = 1 << 27;
    /// MDCR_EL2.HPMN (bits 4:0), TPMCR (5), TPM (6), HPME (7).
    const MDCR_PMU_BITS: u64 = 0xff;

    /// Starts counter 0. Fails when QEMU does not implement INST_RETIRED (it does only under
    /// `-icount`) or there is no event counter.
    pub fn start() -> Result<(), &'static str> {
        if read_sysreg!(pmceid0_el0) & (1 << INST_RETIRED) == 0 {
            return Err("PMU event INST_RETIRED not implemented: QEMU needs -icount shift=0");
        }
        let pmcr = read_sysreg!(pmcr_el0);
        let counters = (pmcr >> 11) & 0x1f;
        if counters == 0 {
            return Err("no PMU event counter");
        }
        let mdcr = read_sysreg!(mdcr_el2);
        // SAFETY: the PMU is used by nothing else in these images. MDCR_EL2: HPMN = every
        // counter is EL1's (so the guest may read counter 0), TPM = TPMCR = 0 (no PMU traps),
        // HPME = 0; the other bits (debug traps) are kept. Then counter 0 counts INST_RETIRED
        // at EL1 and EL2, enabled and reset with PMCR_EL0.E and .P. Counting changes no state
        // but the counters.
        unsafe {
            write_sysreg!(mdcr_el2, (mdcr & !MDCR_PMU_BITS) | counters);
            write_sysreg!(pmevtyper0_el0, INST_RETIRED | NSH);
            write_sysreg!(pmcntenset_el0, 1u64);
            write_sysreg!(pmcr_el0, pmcr | 0b11);
        }
        common::sysreg::isb();
        Ok(())
    }

    /// Instructions counted so far (32 bits wide unless PMCR_EL0.LP: differences are taken
    /// modulo 2^32).
    #[inline(always)]
    pub fn now() -> u64 {
        read_sysreg!(pmevcntr0_el0)
    }

    /// Stops and disables counter 0.
    pub fn stop() {
        // SAFETY: only disables the counter `start` enabled.
        unsafe { write_sysreg!(pmcntenclr_el0, 1u64) };
        common::sysreg::isb();
    }
}

/// Instructions from `start` to `end` (a 32-bit counter may have wrapped once).
fn span(start: u64, end: u64) -> u64 {
    end.wrapping_sub(start) & 0xffff_ffff
}

/// min, median, max of `v` (sorted in place); zeros for an empty slice.
fn summary(v: &mut [u64]) -> (u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    v.sort_unstable();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

// ---------------------------------------------------------------------------------------------
// The guest.

/// The benchmark guest (program BENCH) on this CPU, waiting at its HELLO.
struct BenchGuest {
    vcpu: Vcpu,
    table: usize,
    len: usize,
}

/// What an order cost.
#[derive(Clone, Copy, Debug)]
struct Done {
    /// Interrupts the guest took so far.
    taken: u64,
    /// EL2 exits while it carried the order out (its NEXT hypercall not counted).
    exits: ExitCounts,
}

impl BenchGuest {
    /// Loads the virtual CPU interface (reset state, ICH_HCR_EL2.En) and runs the guest to its
    /// HELLO.
    fn start() -> Option<Self> {
        // SAFETY: at EL2 with no guest running; these only configure the virtual CPU
        // interface EL1 sees (reset values) and let it signal virtual interrupts.
        unsafe {
            write_sysreg!(ich_vmcr_el2, 0u64);
            write_sysreg!(ich_ap1r0_el2, 0u64);
            write_sysreg!(ich_hcr_el2, 1u64);
        }
        common::sysreg::isb();
        let mut vcpu = Vcpu::new(program::BENCH);
        let mut hello = None;
        let r = vcpu.run_until_done(|_, exit| match *exit {
            Exit::Hvc {
                nr: HVC_BENCH_STEP,
                args: [bench_step::HELLO, addr, len],
            } => {
                hello = Some((addr as usize, len as usize));
                Some(Flow::Done(0))
            }
            _ => None,
        });
        let Some((table, len)) = hello else {
            check!(false, "the bench guest did not reach its HELLO: {r:x?}");
            return None;
        };
        let end = table.saturating_add(len.saturating_mul(16));
        if table % 8 != 0 || table < GUEST_BASE || end > GUEST_BASE + GUEST_SIZE {
            check!(false, "bad sample table {table:#x} x {len}");
            return None;
        }
        Some(Self { vcpu, table, len })
    }

    /// Gives the guest an order and runs it until it reports it carried out; `hook` sees
    /// every other exit first.
    fn order(
        &mut self,
        what: u64,
        a: u64,
        b: u64,
        mut hook: impl FnMut(&mut Vcpu, &Exit) -> Option<Flow>,
    ) -> Option<Done> {
        self.vcpu.regs.x[0] = what;
        self.vcpu.regs.x[1] = a;
        self.vcpu.regs.x[2] = b;
        let mut next = None;
        let before = exits::snapshot();
        let r = self.vcpu.run_until_done(|vcpu, exit| match *exit {
            Exit::Hvc {
                nr: HVC_BENCH_STEP,
                args: [bench_step::NEXT, taken, anomalies],
            } => {
                next = Some((taken, anomalies));
                Some(Flow::Done(0))
            }
            _ => hook(vcpu, exit),
        });
        let mut exits = exits::snapshot().since(&before);
        let Some((taken, anomalies)) = next else {
            check!(false, "the bench guest stopped during order {what}: {r:x?}");
            return None;
        };
        exits.hvc -= 1;
        check!(
            anomalies == 0,
            "the bench guest reports {anomalies} anomalies"
        );
        Some(Done { taken, exits })
    }

    /// Sample `k`: (counter before the trigger, counter at the handler).
    fn sample(&self, k: usize) -> (u64, u64) {
        if k >= self.len {
            return (0, 0);
        }
        // `start` checked the table lies in guest RAM; the guest stores whole u64s there, and
        // not while the hyp runs.
        let read = |i: usize| crate::rawmem::read_guest_u64(self.table + 8 * i).unwrap_or(0);
        (read(2 * k), read(2 * k + 1))
    }

    /// Tells the guest to finish and checks it passed; disables the virtual CPU interface.
    fn stop(mut self) {
        self.vcpu.regs.x[0] = bench_order::STOP;
        let r = self.vcpu.run_until_done(|_, _| None);
        check!(matches!(r, Ok(0)), "the bench guest finished with {r:x?}");
        // SAFETY: at EL2 with no guest running; disabling the virtual CPU interface only stops
        // it signalling virtual interrupts.
        unsafe { write_sysreg!(ich_hcr_el2, 0u64) };
        common::sysreg::isb();
    }
}

/// Prints one path's figures and checks its exit count.
fn report_path(name: &str, spans: &mut [u64], done: &Done, exits_per: u64) {
    let n = spans.len() as u64;
    let (min, median, max) = summary(spans);
    let exits = done.exits.exits();
    println!(
        "@@M bench_latency path={name} reps={n} insns_min={min} insns_median={median} \
         insns_max={max} el2_exits={exits} el2_exits_per_irq={} wfi_exits={} irq_exits={} \
         el2_irqs={}",
        super::support::v4::Ratio(exits, n),
        done.exits.wfi,
        done.exits.irq,
        done.exits.el2_irqs,
    );
    check!(
        exits == exits_per * n,
        "{name}: {exits} EL2 exits for {n} interrupts ({:?})",
        done.exits
    );
    check!(min > 0, "{name}: the instruction counter did not move");
}

// ---------------------------------------------------------------------------------------------
// bench_vlpi_latency

/// `bench_vlpi_latency` (1 CPU, `-icount shift=0`): instructions from an MSI to the guest's
/// handler, and EL2 exits per interrupt, on the three paths of the module documentation. One
/// device (DeviceID 0, what a CPU store to GITS_TRANSLATER carries): event 0 is forwarded to
/// vINTID 8192 of a one-vPE VM (with the vPE's doorbell), event 1 is a physical LPI on CPU0.
pub fn bench_vlpi_latency(_ctx: &mut Ctx) {
    if let Err(e) = pmu::start() {
        check!(false, "{e}");
        return;
    }
    let Some(gic) = up_default() else { return };
    if let Err(e) = v4::with_v4(&gic, latency) {
        check!(false, "{e}");
    }
    pmu::stop();
}

fn latency(v: &V4<'_>) {
    let mark = MemMark::now(v.gic);
    let Some(vm) = create_vm(v, &[0]) else { return };
    let Some(mut dev) = map_device(v.gic, 0, 2) else {
        return;
    };
    let r =
        v.g4.map_vlpi(v.gic.its(), &mut dev, 0, &vm, 0, cfg(8192, true));
    require!(r.is_ok(), "map_vlpi: {r:?}");
    let lpi = match v.gic.map_new_lpi(&mut dev, 1, 0) {
        Ok(l) => l,
        Err(e) => {
            check!(false, "host LPI: {e}");
            return;
        }
    };
    let Some(mut g) = BenchGuest::start() else {
        return;
    };
    let reps = REPS as u64;
    let mut spans = [0u64; REPS];

    // (i) Resident: the guest's MSI becomes a vLPI at its virtual CPU interface, no exit.
    require!(schedule(v, &vm, 0, 0));
    let Some(d) = g.order(bench_order::MSI, 0, reps, |_, _| None) else {
        return;
    };
    check!(d.taken == reps, "direct: {} interrupts taken", d.taken);
    for (k, s) in spans.iter_mut().enumerate() {
        let (a, b) = g.sample(k);
        *s = span(a, b);
    }
    report_path("direct", &mut spans, &d, 0);

    // (ii) Blocked: at each WFI exit the vPE goes non-resident with its doorbell armed; the
    // hyp records the counter, makes the MSI itself (the vCPU is blocked) and sleeps until the
    // doorbell wakes the vCPU; then schedules the vPE and resumes the guest.
    // The vCPU's waiter: a plain value, attached to its vPE's doorbell once the VM exists.
    let waiter = Waiter::new();
    let db = need!(vm.vpe(0).ok().map(|p| p.doorbell()), "vPE 0 of the VM");
    require!(v.dbs.attach(&waiter, db).is_ok());
    let starts: [Cell<u64>; REPS] = [const { Cell::new(0) }; REPS];
    let k = Cell::new(0usize);
    let wakeups = Cell::new(0u64);
    let on_wfi = |vcpu: &mut Vcpu, exit: &Exit| -> Option<Flow> {
        let Exit::Wfx { .. } = exit else { return None };
        vcpu.regs.elr += 4;
        // Armed before the doorbell is enabled, so no ring can come between.
        check!(v.dbs.arm(&waiter).is_ok(), "arm the waiter");
        let d = deschedule(v, &vm, 0, true)?;
        check!(!d.pending_last, "PendingLast before the MSI");
        let t0 = pmu::now();
        gic::translater_write(0);
        if v4::block_on(v.dbs, &waiter, WAKE_TIMEOUT) {
            v.g4.doorbell_rang(&vm, 0);
            wakeups.set(wakeups.get() + 1);
        } else {
            check!(false, "no doorbell");
        }
        if let Some(s) = starts.get(k.get()) {
            s.set(t0);
        }
        k.set(k.get() + 1);
        schedule(v, &vm, 0, 0).then_some(Flow::Continue)
    };
    let Some(d) = g.order(bench_order::WFI, reps, 0, on_wfi) else {
        return;
    };
    check!(
        wakeups.get() == reps && k.get() == REPS,
        "doorbell: {} wake-ups in {} blocks",
        wakeups.get(),
        k.get()
    );
    for (k, s) in spans.iter_mut().enumerate() {
        *s = span(starts[k].get(), g.sample(k).1);
    }
    report_path("doorbell", &mut spans, &d, 1);

    // (iii) Software injection, the baseline without GICv4: the guest's MSI is a physical LPI,
    // taken at EL2 (an IRQ exit); the hyp lists vINTID 8193 in ICH_LR0_EL2 and resumes the
    // guest, which takes it from the list register.
    require!(deschedule(v, &vm, 0, false).is_some());
    let lpi_id = lpi.get();
    let listed = Cell::new(0u64);
    let on_irq = |_: &mut Vcpu, exit: &Exit| -> Option<Flow> {
        let Exit::Irq { intid } = *exit else {
            return None;
        };
        if intid == lpi_id {
            // ICH_LR<n>_EL2: State = pending (62), Group 1 (60), priority 0xa0 (55:48), HW = 0,
            // vINTID 8193.
            let lr = (1u64 << 62) | (1 << 60) | (0xa0 << 48) | 8193;
            // SAFETY: at EL2 with the guest stopped; LR0 is free (nothing else lists
            // interrupts in this scenario) and a pending entry only signals a virtual
            // interrupt to the guest.
            unsafe { write_sysreg!(ich_lr0_el2, lr) };
            listed.set(listed.get() + 1);
        }
        Some(Flow::Continue)
    };
    let taken_before = d.taken;
    let Some(d) = g.order(bench_order::MSI, 1, reps, on_irq) else {
        return;
    };
    check!(
        d.taken - taken_before == reps && listed.get() == reps,
        "software injection: {} taken, {} listed",
        d.taken - taken_before,
        listed.get()
    );
    for (k, s) in spans.iter_mut().enumerate() {
        let (a, b) = g.sample(k);
        *s = span(a, b);
    }
    report_path("software", &mut spans, &d, 1);
    println!(
        "@@M bench_latency_method counter=pmu_inst_retired event=0x08 els=el1+el2 \
         resolution_insns=1 reps={REPS}"
    );

    g.stop();
    unmap_vlpis(v, &mut dev, &vm, 1);
    unmap_device(v.gic, dev);
    check!(
        v.gic
            .lpis()
            .free(LpiRange {
                base: lpi,
                count: 1
            })
            .is_ok(),
        "LPI {} not freed",
        lpi.get()
    );
    destroy_vm(v, vm);
    mark.check_no_leak(v.gic);
}

// ---------------------------------------------------------------------------------------------
// bench_vpe_counts

/// A redistributor that counts the register accesses made through it.
struct Counting<'r, D> {
    rd: &'r mut D,
    reads: Cell<u32>,
    writes: u32,
}

impl<'r, D: RedistRegisters> Counting<'r, D> {
    fn new(rd: &'r mut D) -> Self {
        Self {
            rd,
            reads: Cell::new(0),
            writes: 0,
        }
    }

    fn read<T>(&self, v: T) -> T {
        self.reads.set(self.reads.get() + 1);
        v
    }

    /// (reads, writes) so far.
    fn counts(&self) -> (u32, u32) {
        (self.reads.get(), self.writes)
    }
}

impl<D: RedistRegisters> RedistRegisters for Counting<'_, D> {
    fn ctlr(&self) -> GicrCtlr {
        self.read(self.rd.ctlr())
    }
    fn set_ctlr(&mut self, v: GicrCtlr) {
        self.writes += 1;
        self.rd.set_ctlr(v);
    }
    fn typer(&self) -> GicrTyper {
        self.read(self.rd.typer())
    }
    fn waker(&self) -> GicrWaker {
        self.read(self.rd.waker())
    }
    fn set_waker(&mut self, v: GicrWaker) {
        self.writes += 1;
        self.rd.set_waker(v);
    }
    fn propbaser(&self) -> GicrPropbaser {
        self.read(self.rd.propbaser())
    }
    fn set_propbaser(&mut self, v: GicrPropbaser) {
        self.writes += 1;
        self.rd.set_propbaser(v);
    }
    fn pendbaser(&self) -> GicrPendbaser {
        self.read(self.rd.pendbaser())
    }
    fn set_pendbaser(&mut self, v: GicrPendbaser) {
        self.writes += 1;
        self.rd.set_pendbaser(v);
    }
    fn vpropbaser(&self) -> u64 {
        self.read(self.rd.vpropbaser())
    }
    fn set_vpropbaser(&mut self, v: u64) {
        self.writes += 1;
        self.rd.set_vpropbaser(v);
    }
    fn vpendbaser(&self) -> u64 {
        self.read(self.rd.vpendbaser())
    }
    fn set_vpendbaser(&mut self, v: u64) {
        self.writes += 1;
        self.rd.set_vpendbaser(v);
    }
    fn set_invlpir(&mut self, v: GicrInvlpir) {
        self.writes += 1;
        self.rd.set_invlpir(v);
    }
    fn set_invallr(&mut self, v: GicrInvallr) {
        self.writes += 1;
        self.rd.set_invallr(v);
    }
    fn set_clrlpir(&mut self, v: GicrLpir) {
        self.writes += 1;
        self.rd.set_clrlpir(v);
    }
    fn syncr(&self) -> GicrSyncr {
        self.read(self.rd.syncr())
    }
}

/// What one residency change cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct OpCost {
    gicr_reads: u32,
    gicr_writes: u32,
    its_cmds: u64,
    cwriter_writes: u64,
    creadr_reads: u64,
}

impl OpCost {
    fn new((gicr_reads, gicr_writes): (u32, u32), a: QueueStats, b: QueueStats) -> Self {
        let d = queue_delta(a, b);
        Self {
            gicr_reads,
            gicr_writes,
            its_cmds: d.commands,
            cwriter_writes: d.cwriter_writes,
            creadr_reads: d.creadr_reads,
        }
    }

    fn print(&self, op: &str, suffix: &str, rounds: u32, constant: bool) {
        println!(
            "@@M bench_vpe_mmio op={op}{suffix} rounds={rounds} constant={} gicr_reads={} \
             gicr_writes={} its_cmds={} cwriter_writes={} creadr_reads={}",
            u8::from(constant),
            self.gicr_reads,
            self.gicr_writes,
            self.its_cmds,
            self.cwriter_writes,
            self.creadr_reads
        );
    }
}

/// Residency changes measured per kind.
const MMIO_ROUNDS: u32 = 8;
/// vLPI batch sizes mapped on QEMU.
const MAP_SIZES: [u32; 4] = [1, 8, 64, 256];

/// `bench_vpe_counts` (1 CPU): what the driver costs per vPE residency change, in GICR
/// accesses (a counting wrapper around the redistributor handed to `vpe-sched`) and ITS
/// commands, and what mapping N vLPIs costs in ITS commands and GITS_CWRITER writes, with
/// `map_vlpis` and with Linux's sequence (VMAPTI + VSYNC per vLPI, each its own GITS_CWRITER
/// write and completion wait), both through this driver's queue on QEMU's ITS.
pub fn bench_vpe_counts(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    if let Err(e) = v4::with_v4(&gic, |v| {
        residency_costs(v);
        map_costs(v);
    }) {
        check!(false, "{e}");
    }
}

/// The kinds of residency change measured, in the order one round makes them.
const OPS: [&str; 4] = [
    "schedule",
    "deschedule_doorbell",
    "schedule_after_doorbell",
    "deschedule",
];

fn residency_costs(v: &V4<'_>) {
    let its = v.gic.its();
    let mark = MemMark::now(v.gic);
    let Some(vm) = create_vm(v, &[0]) else { return };
    let Some(mut dev) = map_device(v.gic, 0x50, 1) else {
        return;
    };
    require!(
        v.g4.map_vlpi(its, &mut dev, 0, &vm, 0, cfg(8192, true))
            .is_ok()
    );
    // One residency change through the counting wrapper, ITS statistics around it.
    let measure = |op: usize| -> Option<OpCost> {
        let q0 = its.queue().stats();
        let r = v.gic.with_redist(0, |rd| {
            let mut c = Counting::new(rd);
            let ok = match op {
                0 | 2 => {
                    let r =
                        v.g4.make_resident(&vm, 0, 0, &mut c)
                            .and_then(|()| v.g4.commit(&mut c));
                    check!(r.is_ok(), "make_resident + commit: {r:?}")
                }
                _ => {
                    let r = v.g4.make_non_resident(&vm, 0, &mut c, op == 1);
                    check!(r.is_ok(), "make_non_resident: {r:?}")
                }
            };
            ok.then(|| c.counts())
        });
        let q1 = its.queue().stats();
        match r {
            Some(Some(counts)) => Some(OpCost::new(counts, q0, q1)),
            _ => None,
        }
    };
    // A round: schedule (after a preemption), deschedule with the doorbell armed (a vCPU
    // blocking in WFI), an MSI rings the doorbell (not measured), schedule after the
    // doorbell, deschedule without the doorbell (preemption).
    let mut costs = [[OpCost::default(); MMIO_ROUNDS as usize]; 4];
    for round in 0..MMIO_ROUNDS as usize {
        for (op, per_round) in costs.iter_mut().enumerate() {
            let c = need!(measure(op), "the cost of residency change {op}");
            per_round[round] = c;
            if op == 1 {
                let before = gic::total_taken();
                require!(its.int_event(&dev, 0).is_ok(), "INT");
                let got = gic::take_irqs(before + 1, LPI_TIMEOUT) - before;
                require!(got == 1, "{got} doorbells for one MSI");
                v.g4.doorbell_rang(&vm, 0);
            }
        }
    }
    // Round 0 also settles what VM creation left: the steady state is the last round.
    for (op, name) in OPS.into_iter().enumerate() {
        let last = costs[op][MMIO_ROUNDS as usize - 1];
        let constant = costs[op][1..].iter().all(|c| *c == last);
        last.print(name, "", MMIO_ROUNDS - 1, constant);
        if costs[op][0] != last {
            costs[op][0].print(name, "_first", 1, true);
        }
    }
    unmap_vlpis(v, &mut dev, &vm, 1);
    unmap_device(v.gic, dev);
    destroy_vm(v, vm);
    mark.check_no_leak(v.gic);
}

fn map_costs(v: &V4<'_>) {
    let its = v.gic.its();
    let mark = MemMark::now(v.gic);
    let Some(vm) = create_vm(v, &[0]) else { return };
    let vpe = need!(vm.vpe(0).ok().map(|p| p.id()), "vPE 0 of the VM");
    for (k, &n) in MAP_SIZES.iter().enumerate() {
        // This driver: one map_vlpis batch.
        let Some(mut dev) = map_device(v.gic, 0x60 + k as u32, n) else {
            return;
        };
        let items: [(u32, usize, VlpiConfig); 256] =
            core::array::from_fn(|e| (e as u32, 0, cfg(8192 + e as u32, false)));
        let q0 = its.queue().stats();
        let r = v.g4.map_vlpis(its, &mut dev, &vm, &items[..n as usize]);
        let ours = queue_delta(q0, its.queue().stats());
        require!(r.is_ok(), "map_vlpis({n}): {r:?}");
        unmap_vlpis(v, &mut dev, &vm, n);
        unmap_device(v.gic, dev);

        // Linux's sequence on the same queue: VMAPTI, then VSYNC, one post and one wait each.
        let Some(dev) = map_device(v.gic, 0x70 + k as u32, n) else {
            return;
        };
        let q0 = its.queue().stats();
        for e in 0..n {
            let vmapti = Command::Vmapti {
                device: dev.id(),
                event: EventId::new(e),
                vpe,
                vintid: IntId::new(8192 + e),
                db: IntId::NONE,
            };
            let r = its
                .queue()
                .post(&[vmapti], &[SyncTarget::Vpe(vpe)])
                .and_then(|t| its.queue().wait(t));
            require!(r.is_ok(), "VMAPTI + VSYNC: {r:?}");
        }
        let linux = queue_delta(q0, its.queue().stats());
        // Those mappings are not the driver's: DISCARD them before the device goes.
        let r = its.execute(
            n as usize,
            |e| Command::Discard {
                device: dev.id(),
                event: EventId::new(e as u32),
            },
            &[SyncTarget::Vpe(vpe)],
        );
        check!(r.is_ok_and(|o| o.error().is_none()), "DISCARD batch");
        unmap_device(v.gic, dev);
        println!(
            "@@M bench_vlpi_map n={n} ours_cmds={} ours_cwriter_writes={} ours_waits={} \
             linux_cmds={} linux_cwriter_writes={} linux_waits={}",
            ours.commands,
            ours.cwriter_writes,
            ours.waits,
            linux.commands,
            linux.cwriter_writes,
            linux.waits
        );
        // N VMAPTI, the vPE's VINVALL and its VSYNC, in one batch.
        check!(
            ours.commands == u64::from(n) + 2 && ours.cwriter_writes == 1 && ours.waits == 1,
            "map_vlpis({n}): {ours:?}"
        );
        check!(
            linux.commands == 2 * u64::from(n)
                && linux.cwriter_writes == u64::from(n)
                && linux.waits == u64::from(n),
            "Linux sequence ({n}): {linux:?}"
        );
    }
    destroy_vm(v, vm);
    mark.check_no_leak(v.gic);
}
