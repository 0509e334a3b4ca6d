// SPDX-License-Identifier: MIT OR Apache-2.0
//! Running the EL1 guest: a vCPU whose `run` returns on every EL2 exit (KVM style).
//!
//! [`Vcpu::run`] saves the host's callee-saved state, loads the guest's full context and
//! `eret`s. Every exception from the guest lands in [`exits`](crate::exits), which counts it and
//! calls [`exit_to_host`]: that copies the guest context back into the `Vcpu` and returns from
//! `run` with the [`Exit`]. The host handles it (or not) and calls `run` again.
//! [`Vcpu::run_until_done`] is that loop with the default handling of the basic hypercalls.
//!
//! No stage 2 (HCR_EL2.VM = 0): the guest sees physical memory through its own identity map.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use common::exceptions::{Frame, HostContext, vcpu_enter, vcpu_exit_to_host};
use common::hvc_abi::{HVC_DONE, HVC_PRINT_NUM};
use common::platform::{GUEST_BASE, GUEST_MAGIC, GUEST_SIZE, MAX_CPUS, cpu_index};
use common::{entry, mmu, println, write_sysreg};

/// HCR_EL2 while the guest runs: the host value plus TWI (bit 13), so a WFI with nothing
/// pending traps to EL2. VM = 0: no stage 2.
pub const HCR_EL2_GUEST: u64 = entry::HCR_EL2_HOST | (1 << 13);
/// SPSR for entering EL1h with D, A, I and F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// No run loop needs more exits than this: more means an exit storm, recorded as a failure.
pub const MAX_EXITS: u32 = 20_000;

/// Why the guest stopped running.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Exit {
    /// `hvc #0`: x0 = call number, x1..x3 = arguments. ELR already points after the HVC.
    Hvc {
        /// x0.
        nr: u64,
        /// x1, x2, x3.
        args: [u64; 3],
    },
    /// A trapped WFI (or WFE). ELR points at the instruction.
    Wfx {
        /// WFE rather than WFI.
        wfe: bool,
    },
    /// A data abort taken to EL2 (MMIO emulation would go here).
    DataAbort {
        /// ESR_EL2.
        esr: u64,
        /// FAR_EL2.
        far: u64,
        /// HPFAR_EL2 (the faulting IPA's page, for a stage 2 fault).
        hpfar: u64,
        /// ELR_EL2.
        elr: u64,
    },
    /// A physical IRQ arrived while the guest ran; already acknowledged and EOIed at EL2.
    Irq {
        /// Its INTID.
        intid: u32,
    },
    /// Any other synchronous exception.
    Other {
        /// ESR_EL2.
        esr: u64,
        /// ELR_EL2.
        elr: u64,
    },
}

/// What a scenario's exit hook tells [`Vcpu::run_until_done`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Flow {
    /// Resume the guest.
    Continue,
    /// Stop: the guest is done with this status.
    Done(u64),
    /// Stop: the exit is a failure.
    Fail(Exit),
}

/// The guest vCPU state.
pub struct Vcpu {
    /// The guest's general, SIMD and return-state registers.
    pub regs: Frame,
    /// HCR_EL2 while this vCPU runs.
    pub hcr: u64,
    host: HostContext,
    exit: Option<Exit>,
    started: bool,
    /// Entered at the test guest image's entry, which must be loaded.
    test_image: bool,
}

/// The vCPU running on each CPU (null if none).
static CURRENT: [AtomicPtr<Vcpu>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];

/// Whether QEMU's loader placed the guest image (its header carries [`GUEST_MAGIC`]).
pub fn guest_image_present() -> bool {
    crate::rawmem::read_guest_u64(GUEST_BASE + 8) == Some(GUEST_MAGIC)
}

impl Vcpu {
    /// A vCPU that starts the guest image at its entry (the link base) with `program` in x0.
    pub fn new(program: u64) -> Self {
        let mut regs = Frame::zeroed();
        regs.elr = GUEST_BASE as u64;
        regs.spsr = SPSR_EL1H_MASKED;
        regs.x[0] = program;
        // The guest's entry code sets its own stack; until then SP_EL1 points at the top of
        // its region rather than at address 0.
        regs.sp_elx = (GUEST_BASE + GUEST_SIZE - 16) as u64;
        Self {
            regs,
            hcr: HCR_EL2_GUEST,
            host: HostContext::default(),
            exit: None,
            started: false,
            test_image: true,
        }
    }

    /// A vCPU that starts at `entry` in EL1h (D, A, I, F masked, MMU off) with `x0` in x0 and
    /// x1-x3 zero, as the arm64 Linux boot protocol and PSCI CPU_ON want; any image, not
    /// only the test guest. Its stack pointer is 0 until the code sets one.
    pub fn at(entry: u64, x0: u64) -> Self {
        let mut regs = Frame::zeroed();
        regs.elr = entry;
        regs.spsr = SPSR_EL1H_MASKED;
        regs.x[0] = x0;
        Self {
            regs,
            hcr: HCR_EL2_GUEST,
            host: HostContext::default(),
            exit: None,
            started: false,
            test_image: false,
        }
    }

    /// Runs the guest until its next exit.
    ///
    /// # Panics
    ///
    /// For a vCPU made with [`Vcpu::new`], if the test guest image is not loaded (the runner
    /// passes `-device loader,file=guest.elf`).
    pub fn run(&mut self) -> Exit {
        assert!(
            !self.test_image || guest_image_present(),
            "guest image missing at 0x{GUEST_BASE:x}"
        );
        if !self.started {
            self.started = true;
            // SAFETY: EL1 is not running; these give it the reset-like state the guest's entry
            // code expects (MMU off, FP/SIMD usable). The I-cache invalidation makes the
            // image QEMU's loader wrote visible to instruction fetch.
            unsafe {
                write_sysreg!(sctlr_el1, mmu::SCTLR_EL1_RESET);
                write_sysreg!(cpacr_el1, entry::CPACR_EL1_FPEN);
                core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack));
            }
        }
        let cpu = cpu_index();
        let this: *mut Vcpu = self;
        CURRENT[cpu].store(this, Ordering::Release);
        // SAFETY: HCR_EL2 only changes how the (not running) guest is trapped. `regs` is a
        // valid EL1h context (SPSR set in `new`, ELR at the guest entry, or state saved at an
        // exit). Every exception from EL1 goes to `exits`, which calls `exit_to_host` with
        // this vCPU's `host` (found through CURRENT) on this CPU. The pointers derive from
        // `this` and `self` is not used until `vcpu_enter` returns.
        unsafe {
            write_sysreg!(hcr_el2, (*this).hcr);
            core::arch::asm!("isb", options(nostack));
            vcpu_enter(&mut (*this).host, &(*this).regs);
            write_sysreg!(hcr_el2, entry::HCR_EL2_HOST);
            core::arch::asm!("isb", options(nostack));
        }
        CURRENT[cpu].store(ptr::null_mut(), Ordering::Release);
        self.exit.take().unwrap_or(Exit::Other {
            esr: 0,
            elr: self.regs.elr,
        })
    }

    /// Runs the guest until it reports done (or an exit is not handled), handling the basic
    /// hypercalls and traps: `hook` sees every exit first and returns `None` for the default:
    ///
    /// - [`HVC_DONE`]: done with status x1;
    /// - [`HVC_PRINT_NUM`]: prints x1, returns x1 + 1;
    /// - trapped WFI/WFE: skipped (ELR += 4);
    /// - IRQ: resume (already handled at EL2);
    /// - anything else: [`Flow::Fail`].
    ///
    /// At most [`MAX_EXITS`] exits (see [`run_bounded`]).
    pub fn run_until_done(
        &mut self,
        mut hook: impl FnMut(&mut Vcpu, &Exit) -> Option<Flow>,
    ) -> Result<u64, Exit> {
        run_bounded(
            self,
            |vcpu| {
                let exit = vcpu.run();
                match hook(vcpu, &exit) {
                    Some(flow) => flow,
                    None => vcpu.default_exit(&exit),
                }
            },
            |vcpu| vcpu.regs.elr,
        )
    }

    /// The default handling of an exit (see [`run_until_done`](Self::run_until_done)).
    pub fn default_exit(&mut self, exit: &Exit) -> Flow {
        match *exit {
            Exit::Hvc { nr: HVC_DONE, args } => Flow::Done(args[0]),
            Exit::Hvc {
                nr: HVC_PRINT_NUM,
                args,
            } => {
                println!("hyp: guest says {}", args[0]);
                self.regs.x[0] = args[0].wrapping_add(1);
                Flow::Continue
            }
            Exit::Wfx { .. } => {
                self.regs.elr += 4;
                Flow::Continue
            }
            Exit::Irq { .. } => Flow::Continue,
            other => Flow::Fail(other),
        }
    }
}

/// A run loop: calls `step` (one entry into the guest, its exit and the handling of it) on `v`
/// until it says stop, at most [`MAX_EXITS`] times. More is an exit storm: recorded as a
/// failure, and the run stops with `Exit::Other` at the guest's ELR (`elr(v)`).
pub fn run_bounded<V>(
    v: &mut V,
    mut step: impl FnMut(&mut V) -> Flow,
    elr: impl FnOnce(&V) -> u64,
) -> Result<u64, Exit> {
    for _ in 0..MAX_EXITS {
        match step(v) {
            Flow::Continue => {}
            Flow::Done(status) => return Ok(status),
            Flow::Fail(exit) => return Err(exit),
        }
    }
    common::check!(false, "more than {MAX_EXITS} exits: exit storm");
    Err(Exit::Other {
        esr: 0,
        elr: elr(v),
    })
}

/// Called by the EL2 exit handlers: saves `frame` into the vCPU running on this CPU and
/// returns from its [`Vcpu::run`] with `exit`. With no vCPU running, the exception is
/// unexpected and ends the run.
pub fn exit_to_host(frame: &Frame, exit: Exit) -> ! {
    let vcpu = CURRENT[cpu_index()].load(Ordering::Acquire);
    if vcpu.is_null() {
        let kind = match exit {
            Exit::Irq { .. } => common::exceptions::VectorKind::IrqLowerA64,
            _ => common::exceptions::VectorKind::SyncLowerA64,
        };
        common::exceptions::unexpected(frame, kind, 2);
    }
    // SAFETY: CURRENT holds a pointer to the vCPU whose `run` is in progress on this CPU (set
    // before entering the guest, cleared after `vcpu_enter` returns), and `run` does not touch
    // it while the guest runs. `vcpu_exit_to_host` returns into that `run`, whose frame lies
    // above this exception frame on the same stack.
    unsafe {
        (*vcpu).regs = *frame;
        (*vcpu).exit = Some(exit);
        vcpu_exit_to_host(&(*vcpu).host, 0)
    }
}
