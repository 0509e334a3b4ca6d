// SPDX-License-Identifier: MIT OR Apache-2.0
//! vCPUs trading CPUs: vCPUs 0 and 1 swap their physical CPUs while the guest does I/O.
//!
//! One vCPU per CPU still holds: a swap exchanges the two vCPUs' CPUs at once, so no CPU ever
//! runs two. The design, kept simple:
//!
//! 1. **Request** ([`SwapState::maybe_request`]): vCPU 0's CPU, at an exit in phase 1 (the
//!    guest's measured I/O), at most [`Options::swaps`](super::Options::swaps) times and
//!    [`SWAP_INTERVAL`] apart, bumps the request number and kicks vCPUs 0 and 1.
//! 2. **Put** (`LinuxVcpu::put_for_swap`, on the old CPU): the run loop sees the request at
//!    its next turn and stops. The vPE goes non-resident there (no doorbell: the vCPU is not
//!    waiting, it is moving), the virtual timer is put (`fwd-irq`: its PPI's active state
//!    saved and cleared), the virtual CPU interface state saved (ICH_VMCR_EL2, ICH_AP*R),
//!    and the EL1 system registers, pointer-authentication keys included, saved
//!    ([`El1State`]). The list registers were folded at the exit, so the vCPU's interrupts
//!    are all in its `VgicCpu`.
//! 3. **Exchange** ([`exchange`]): each of the two CPUs leaves its vCPU in its own slot and
//!    takes the other's (waiting at most [`EXCHANGE_TIMEOUT`]). The `LinuxVcpu` moves by
//!    value with everything that is per vCPU: registers, `VgicCpu`, `VtimerFwd`, the
//!    doorbell `Waiter`, its exit counts.
//! 4. **Load** (`LinuxVcpu::load_after_swap`, on the new CPU): [`Vm::cpu_of`](super::Vm) says
//!    where the vCPU is now (kicks and the physical routing of its SPIs follow it: every
//!    forwarded SPI the `Vgic` targets at it is routed to the new CPU), the EL1 registers,
//!    the CPU interface and the timer are loaded, and the next guest entry makes the vPE
//!    resident on the new CPU's redistributor: `GicV4::make_resident` issues VMOVP (and moves
//!    the doorbell) first, because the VTE still names the old CPU.
//!
//! A vLPI that arrives between the put and the load finds the vPE non-resident with its
//! doorbell disabled: it waits in the vPE's pending table and is delivered at the residency
//! on the new CPU. The guest sees nothing but time passing.
//!
//! Not moved: SVE predicate registers and FFR (the guest's programs do not use SVE; the
//! kernel itself does not), PMU counters (the guest does not use perf).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use common::sync::SpinLock;
use common::{read_sysreg, write_sysreg};

use super::vcpu::LinuxVcpu;
use super::{LinuxError, Vm};
use crate::fwd::el1::El1Context;

/// Time between two swaps.
pub const SWAP_INTERVAL: Duration = Duration::from_millis(300);
/// How long a CPU waits for the other one's vCPU.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// The vCPUs that swap.
pub const PAIR: [usize; 2] = [0, 1];

/// The swaps of a VM.
pub struct SwapState {
    /// Swaps requested so far (the request number).
    requested: AtomicU32,
    /// Swaps each vCPU of the pair has done.
    done: [AtomicU32; 2],
    /// When the last request was made (timer ticks).
    last: AtomicU64,
    /// The vCPU each vCPU of the pair leaves for the other (by its place in [`PAIR`]), boxed:
    /// a `LinuxVcpu` is a few KiB.
    slots: [SpinLock<Option<Box<LinuxVcpu>>>; 2],
}

impl Default for SwapState {
    fn default() -> Self {
        Self::new()
    }
}

impl SwapState {
    /// No swap yet.
    pub const fn new() -> Self {
        Self {
            requested: AtomicU32::new(0),
            done: [const { AtomicU32::new(0) }; 2],
            last: AtomicU64::new(0),
            slots: [const { SpinLock::new(None) }; 2],
        }
    }

    /// Swaps completed (by both vCPUs).
    pub fn done(&self) -> u32 {
        self.done[0]
            .load(Ordering::Acquire)
            .min(self.done[1].load(Ordering::Acquire))
    }

    /// Whether vCPU `vcpu` has a swap to do.
    pub fn pending_for(&self, vcpu: usize) -> bool {
        let Some(k) = PAIR.iter().position(|&v| v == vcpu) else {
            return false;
        };
        self.done[k].load(Ordering::Acquire) < self.requested.load(Ordering::Acquire)
    }

    /// Called by vCPU 0's run loop at each turn: requests the next swap if the VM asks for
    /// swaps, the guest is in phase 1, the previous swap is complete and
    /// [`SWAP_INTERVAL`] has passed since it was requested.
    pub fn maybe_request(&self, vm: &Vm, vcpu: usize) {
        let opts = vm.opts();
        if vcpu != PAIR[0] || opts.swaps == 0 || vm.vcpus < 2 || vm.phase() != 1 {
            return;
        }
        let req = self.requested.load(Ordering::Acquire);
        if req >= opts.swaps || self.done() < req {
            return;
        }
        let now = common::timer::ticks();
        let last = self.last.load(Ordering::Acquire);
        if req > 0 && now.saturating_sub(last) < common::timer::duration_to_ticks(SWAP_INTERVAL) {
            return;
        }
        if req == 0 && last == 0 {
            // The first turn in phase 1 starts the clock.
            self.last.store(now, Ordering::Release);
            return;
        }
        self.last.store(now, Ordering::Release);
        self.requested.store(req + 1, Ordering::Release);
        for v in PAIR {
            vm.kick(v);
        }
    }

    fn finished(&self, vcpu: usize) {
        if let Some(k) = PAIR.iter().position(|&v| v == vcpu) {
            self.done[k].fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Leaves `v` (put for the swap) for the other CPU of the pair and takes that CPU's vCPU.
/// If the other CPU never brings its vCPU, the VM fails and `v` comes back; `None` only if
/// the other CPU took `v` and left nothing (the VM has stopped or failed: this CPU then
/// leaves its loop).
pub fn exchange(vm: &Vm, v: Box<LinuxVcpu>) -> Option<Box<LinuxVcpu>> {
    let mine = PAIR.iter().position(|&p| p == v.index())?;
    let theirs = 1 - mine;
    let s = &vm.swap;
    s.finished(PAIR[mine]);
    *s.slots[mine].lock() = Some(v);
    let mut got = None;
    let came = common::timer::poll_until(EXCHANGE_TIMEOUT, || {
        got = s.slots[theirs].lock().take();
        got.is_some() || vm.stopped()
    });
    if got.is_some() {
        return got;
    }
    if !came {
        vm.fail(LinuxError::Migrate("the other CPU did not bring its vCPU"));
    }
    s.slots[mine].lock().take()
}

/// The EL1 state a vCPU takes along: [`El1Context`] plus the pointer-authentication keys
/// (Linux signs return addresses with a key per task, kept in these registers) and ZCR_EL1.
#[derive(Clone, Copy, Debug, Default)]
pub struct El1State {
    el1: El1Context,
    keys: Option<[u64; 10]>,
    zcr: Option<u64>,
}

/// Whether this CPU has pointer authentication (ID_AA64ISAR1_EL1.APA/API/GPA/GPI or
/// ID_AA64ISAR2_EL1.APA3/GPA3).
fn has_pauth() -> bool {
    let isar1 = read_sysreg!(id_aa64isar1_el1);
    // ID_AA64ISAR2_EL1 is S3_0_C0_C6_2.
    let isar2 = read_sysreg!(S3_0_C0_C6_2);
    (isar1 >> 4) & 0xff != 0 || (isar1 >> 24) & 0xff != 0 || (isar2 >> 8) & 0xff != 0
}

/// ID_AA64PFR0_EL1.SVE.
fn has_sve() -> bool {
    (read_sysreg!(id_aa64pfr0_el1) >> 32) & 0xf != 0
}

impl El1State {
    /// Reads the registers of this CPU (the vCPU is not running).
    pub fn save() -> Self {
        let keys = has_pauth().then(|| {
            [
                read_sysreg!(S3_0_C2_C1_0), // APIAKeyLo_EL1
                read_sysreg!(S3_0_C2_C1_1), // APIAKeyHi_EL1
                read_sysreg!(S3_0_C2_C1_2), // APIBKeyLo_EL1
                read_sysreg!(S3_0_C2_C1_3), // APIBKeyHi_EL1
                read_sysreg!(S3_0_C2_C2_0), // APDAKeyLo_EL1
                read_sysreg!(S3_0_C2_C2_1), // APDAKeyHi_EL1
                read_sysreg!(S3_0_C2_C2_2), // APDBKeyLo_EL1
                read_sysreg!(S3_0_C2_C2_3), // APDBKeyHi_EL1
                read_sysreg!(S3_0_C2_C3_0), // APGAKeyLo_EL1
                read_sysreg!(S3_0_C2_C3_1), // APGAKeyHi_EL1
            ]
        });
        // ZCR_EL1 is S3_0_C1_C2_0.
        let zcr = has_sve().then(|| read_sysreg!(S3_0_C1_C2_0));
        Self {
            el1: El1Context::save(),
            keys,
            zcr,
        }
    }

    /// Writes them to this CPU (the vCPU is about to run here), then drops this CPU's
    /// EL1&0 TLB entries and instruction cache (`El1Context::restore`).
    pub fn restore(&self) {
        if let Some(k) = self.keys {
            // SAFETY: the keys only change how EL1/EL0 sign and check pointers; the guest
            // that owns them is the one about to run here, and the hyp at EL2 does not use
            // them (HCR_EL2.API/APK: no trap; EL2 code is not signed with EL1 keys).
            unsafe {
                write_sysreg!(S3_0_C2_C1_0, k[0]);
                write_sysreg!(S3_0_C2_C1_1, k[1]);
                write_sysreg!(S3_0_C2_C1_2, k[2]);
                write_sysreg!(S3_0_C2_C1_3, k[3]);
                write_sysreg!(S3_0_C2_C2_0, k[4]);
                write_sysreg!(S3_0_C2_C2_1, k[5]);
                write_sysreg!(S3_0_C2_C2_2, k[6]);
                write_sysreg!(S3_0_C2_C2_3, k[7]);
                write_sysreg!(S3_0_C2_C3_0, k[8]);
                write_sysreg!(S3_0_C2_C3_1, k[9]);
            }
        }
        if let Some(z) = self.zcr {
            // SAFETY: ZCR_EL1 only sets the vector length EL1/EL0 ask for (capped by
            // ZCR_EL2); the value is the guest's own.
            unsafe { write_sysreg!(S3_0_C1_C2_0, z) };
        }
        self.el1.restore();
    }
}
