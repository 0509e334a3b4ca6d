// SPDX-License-Identifier: MIT OR Apache-2.0
//! A small hypervisor that boots an unmodified arm64 Linux at EL1: the worked example of
//! embedding the workspace's crates.
//!
//! One vCPU per physical CPU (vCPU n on CPU n), an identity stage 2 that maps guest RAM and
//! the devices the guest drives, a guest-facing GICv3 emulated by `vgic` whose interrupts
//! reach the guest through `fwd-irq`'s list registers, and PSCI. The steps, in the order
//! [`boot`] takes them:
//!
//! 1. **Boot parameters** ([`params`]): what xtask loaded into guest RAM (kernel, initramfs)
//!    and the kernel command line, checked against the [`layout`].
//! 2. **The machine** ([`fdt`]): QEMU's device tree says where its RAM and GIC are; the
//!    guest's RAM is QEMU's minus the hypervisor's, and the guest's device tree is QEMU's,
//!    changed where the guest's machine differs (`guest-fdt`), written into guest RAM.
//! 3. **Stage 2** ([`stage2`]): the guest's physical address space. Guest RAM and the UART
//!    and PCIe windows are mapped; the hypervisor's RAM, the GIC and everything else are not,
//!    so the guest reaches them only through the hypervisor.
//! 4. **The virtual GIC** (`vgic::Vgic`): the distributor and redistributors the guest
//!    programs, at the addresses of QEMU's; the UART's SPI and the four PCIe INTx SPIs are
//!    *forwarded*: the physical SPI fires at EL2, is listed for the guest with the HW bit, and
//!    the guest's deactivation reaches the physical GIC. The host side of each vCPU is
//!    `fwd-irq` (`VgicCpu`, `VtimerFwd`: the virtual timer, forwarded the same way).
//! 5. **CPUs** ([`el2`], [`vcpu`]): each CPU sets up its EL2 registers and stage 2, attaches
//!    its vCPU to the `Vgic`, and waits for PSCI to start it. vCPU 0 starts at the kernel's
//!    entry with x0 = the device tree (the arm64 boot protocol); the others when the guest
//!    calls CPU_ON ([`psci`]).
//! 6. **The run loop** ([`vcpu`]): enter, exit, handle (GIC register emulation, SGIs, PSCI,
//!    forwarded interrupts, refused accesses ([`inject`])), counted by cause ([`stats`]).
//! 7. **The end**: SYSTEM_OFF (or SYSTEM_RESET) from any vCPU stops the VM; every CPU leaves
//!    its loop, and the boot CPU reports.
//!
//! Kicks: when a `Vgic` call leaves work for vCPU n on another CPU (an SGI, an interrupt
//! routed to it, a configuration change), the caller sets n's kick flag and sends CPU n the
//! physical SGI [`KICK_SGI`]; the guest there exits, and its loop syncs with the `Vgic`
//! before re-entering.
//!
//! # The guest's ITS ([`its`], [`Options::msi`])
//! With [`Msi::Direct`] or [`Msi::Soft`] the guest also gets QEMU's ITS (emulated by `vits`,
//! the translation frame mapped through) and LPIs in its GIC; its PCIe devices then use MSIs.
//! With [`Msi::Direct`] they are vLPIs: each vCPU's vPE is resident on its CPU while the vCPU
//! is loaded there, and with [`Options::trap_wfi`] a vCPU that waits in WFI is blocked at EL2
//! until its vPE's doorbell (or any of its interrupts) wakes it. With [`Options::swaps`] the
//! first two vCPUs trade CPUs a few times while the guest does I/O ([`migrate`]).
//!
//! # Phases
//! The test `/init` writes 1 and then 2 to [`layout::PHASE_MARKER`] around the I/O it
//! measures; each vCPU records its exit counts when it first sees each phase (at its next
//! exit: counts cannot change without one), so the report has the counts of that window
//! alone ([`Report::window`]).
//!
//! # Limits
//! - No SMMU: the PCIe devices the guest drives (NVMe) do DMA to physical addresses
//!   untranslated, so a guest that programs one maliciously reaches memory stage 2 keeps from
//!   its CPUs. Stage 2 confines the guest's CPU accesses only.
//! - The ITS translation frame is mapped through: the guest's CPUs can write
//!   GITS_TRANSLATER themselves, with whatever requester ID QEMU gives a CPU store, and so
//!   raise that DeviceID's events if it is mapped.
//! - One vCPU per CPU; vCPUs move only in the swaps of [`Options::swaps`]. WFI and WFE do not
//!   trap unless [`Options::trap_wfi`].
//! - SYSTEM_RESET ends the run like SYSTEM_OFF (no reboot); CPU_SUSPEND is not offered; SME
//!   traps (CPTR_EL2.TSM) and, like any exit nobody handles, gets UNDEFINED.
//! - The PL011 is shared: the hypervisor prints nothing while the guest runs.

mod el2;
mod fdt;
mod inject;
pub mod its;
#[allow(
    dead_code,
    reason = "shared with xtask, which places the files it names"
)]
pub mod layout;
pub mod migrate;
pub mod params;
mod pmu;
pub mod psci;
mod stage2;
pub mod stats;
pub mod vcpu;

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use alloc::boxed::Box;
use alloc::vec::Vec;

use common::platform::{GITS_BASE, MAX_CPUS, PCIE_ECAM_BASE, PCIE_MMIO_BASE, UART_BASE, cpu_index};
use common::sync::SpinLock;
use fwd_irq::{Forward, FwdMode, PIntId, Trigger, VIntId};
use spin::Once;
use vgic::{Effect, Effects, Vgic, VgicConfig, VgicError};

pub use self::its::Msi;
use self::its::{GuestIts, Host};
use self::layout::{GUEST_DTB_MAX, GUEST_DTB_OFFSET, GUEST_RAM_BASE, GUEST_RAM_SIZE};
use self::params::{Blob, BootParams, ParamsError};
use self::psci::{Psci, PsciCounts};
use self::stage2::{Kind, Region, Stage2, Stage2Error};
use self::stats::ExitStats;
use self::vcpu::{End, LinuxVcpu};
use crate::fwd::pe_setup;
use crate::gic_hw::{self, GicError};
use crate::smp;

/// SPIs the guest's GIC has: INTIDs 32 to 95 (QEMU `virt`'s UART, RTC, GPIO and PCIe INTx are
/// all below 40).
pub const SPIS: usize = 64;
/// The physical SGI one CPU sends another to make its vCPU exit and sync with the `Vgic`.
pub const KICK_SGI: u32 = 8;
/// The SPIs forwarded to the guest (same INTID on both sides, level-sensitive): the PL011
/// (SPI 1) and PCIe INTA-INTD (SPIs 3-6).
pub const FORWARDED_SPIS: [u32; 5] = [33, 35, 36, 37, 38];
/// How long the boot CPU waits for the others to leave their loops once the VM stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a secondary CPU may take to come up.
const CPU_START_TIMEOUT: Duration = Duration::from_secs(2);

/// QEMU `virt`'s PCIe windows (its device tree's `pcie` node): ECAM, 32-bit MMIO, I/O ports,
/// 64-bit MMIO.
const PCIE_ECAM_SIZE: u64 = 256 << 20;
const PCIE_MMIO_SIZE: u64 = 0x2eff_0000;
const PCIE_PIO_BASE: u64 = 0x3eff_0000;
const PCIE_PIO_SIZE: u64 = 64 << 10;
const PCIE_MMIO64_BASE: u64 = 0x80_0000_0000;
const PCIE_MMIO64_SIZE: u64 = 0x80_0000_0000;

/// The devices stage 2 maps for the guest to drive itself (guest RAM comes from QEMU's device
/// tree).
const DEVICE_REGIONS: [Region; 5] = [
    Region {
        name: "PL011",
        base: UART_BASE as u64,
        size: 4096,
        kind: Kind::Device,
    },
    Region {
        name: "PCIe ECAM",
        base: PCIE_ECAM_BASE as u64,
        size: PCIE_ECAM_SIZE,
        kind: Kind::Device,
    },
    Region {
        name: "PCIe MMIO",
        base: PCIE_MMIO_BASE as u64,
        size: PCIE_MMIO_SIZE,
        kind: Kind::Device,
    },
    Region {
        name: "PCIe I/O",
        base: PCIE_PIO_BASE,
        size: PCIE_PIO_SIZE,
        kind: Kind::Device,
    },
    Region {
        name: "PCIe MMIO 64-bit",
        base: PCIE_MMIO64_BASE,
        size: PCIE_MMIO64_SIZE,
        kind: Kind::Device,
    },
];

/// The ITS control frame the guest's ITS is trapped at (QEMU's: 64 KiB).
pub const ITS_CONTROL_SIZE: u64 = 0x1_0000;
/// The ITS translation frame, mapped through (64 KiB above the control frame).
const ITS_TRANSLATION: Region = Region {
    name: "ITS translation frame",
    base: GITS_BASE as u64 + ITS_CONTROL_SIZE,
    size: 0x1_0000,
    kind: Kind::Device,
};

/// What the hypervisor gives the guest beyond the plain boot.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Options {
    /// How device MSIs reach the guest (no ITS: INTx).
    pub msi: Msi,
    /// Trap WFI (HCR_EL2.TWI): a waiting vCPU blocks at EL2 until an interrupt of its own
    /// (with [`Msi::Direct`]: its vPE's doorbell) wakes it.
    pub trap_wfi: bool,
    /// How many times vCPUs 0 and 1 trade CPUs while the guest is in phase 1 (see the
    /// module documentation); 0: never.
    pub swaps: u32,
    /// Count instructions per phase with the PMU (EL0 + EL1 and EL2, counters kept from the
    /// guest), for the benchmarks (QEMU counts INST_RETIRED only under `-icount`).
    pub pmu: bool,
}

impl Options {
    /// No ITS, WFI not trapped, no swaps, no PMU counting.
    pub const INTX: Self = Self {
        msi: Msi::Intx,
        trap_wfi: false,
        swaps: 0,
        pmu: false,
    };

    /// The guest's ITS over `msi`, the rest as [`Options::INTX`].
    pub const fn with_msi(msi: Msi) -> Self {
        Self { msi, ..Self::INTX }
    }
}

/// Why the guest could not be booted or run.
#[derive(Clone, Debug)]
pub enum LinuxError {
    /// The boot parameter block.
    Params(ParamsError),
    /// No device tree from QEMU at the start of RAM (or no GIC redistributor region in it).
    NoHostDtb,
    /// QEMU's device tree does not describe a GIC this module can read.
    Discover(its_core::discover::DiscoverError),
    /// The guest's device tree could not be derived.
    Fdt(guest_fdt::Error),
    /// QEMU's RAM minus the hypervisor's does not hold the guest RAM xtask placed files in
    /// (QEMU started with less than `-m 1G`?).
    NoGuestRam,
    /// The guest's device tree is too large, or the kernel or initramfs lies where it goes.
    DtbPlacement,
    /// Building stage 2.
    Stage2(Stage2Error),
    /// The virtual GIC refused a call.
    Vgic(VgicError),
    /// `fwd-irq` refused a call.
    Fwd(fwd_irq::FwdError),
    /// The physical GIC.
    Gic(GicError),
    /// A secondary CPU.
    Smp(usize, smp::SmpError),
    /// More vCPUs than CPUs (or than the hyp supports).
    TooManyVcpus(usize),
    /// A CPU did not leave its run loop after the VM stopped.
    StuckCpu(usize),
    /// The guest's ITS or the physical GICv4 layer under it.
    Its(alloc::string::String),
    /// Two vCPUs could not trade CPUs.
    Migrate(&'static str),
}

impl core::fmt::Display for LinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Params(e) => write!(f, "boot parameter block: {e:?}"),
            Self::NoHostDtb => write!(f, "no device tree from QEMU at the start of RAM"),
            Self::Discover(e) => write!(f, "QEMU's device tree: {e}"),
            Self::Fdt(e) => write!(f, "the guest's device tree: {e}"),
            Self::NoGuestRam => write!(
                f,
                "QEMU's RAM minus the hypervisor's does not hold guest RAM {GUEST_RAM_BASE:#x} + {} \
                 MiB",
                GUEST_RAM_SIZE >> 20
            ),
            Self::DtbPlacement => write!(f, "no room for the guest's device tree"),
            Self::Stage2(e) => write!(f, "stage 2: {e:?}"),
            Self::Vgic(e) => write!(f, "vgic: {e}"),
            Self::Fwd(e) => write!(f, "fwd-irq: {e}"),
            Self::Gic(e) => write!(f, "physical GIC: {e:?}"),
            Self::Smp(cpu, e) => write!(f, "cpu{cpu}: {e:?}"),
            Self::TooManyVcpus(n) => write!(f, "{n} vCPUs: more than CPUs (or {MAX_CPUS})"),
            Self::StuckCpu(cpu) => write!(f, "cpu{cpu} did not leave its run loop"),
            Self::Its(e) => write!(f, "the guest's ITS: {e}"),
            Self::Migrate(e) => write!(f, "vCPU swap: {e}"),
        }
    }
}

/// How the VM stopped.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u8)]
pub enum Stop {
    /// PSCI SYSTEM_OFF.
    PowerOff = 1,
    /// PSCI SYSTEM_RESET.
    Reset = 2,
    /// The hypervisor failed (see [`Report::error`]).
    Failed = 3,
}

/// What a run left to report.
#[derive(Clone, Debug)]
pub struct Report {
    /// How it stopped.
    pub stop: Option<Stop>,
    /// The first failure, if any.
    pub error: Option<LinuxError>,
    /// Exits by cause, all vCPUs.
    pub exits: ExitStats,
    /// PSCI calls.
    pub psci: PsciCounts,
    /// The `Vgic`'s counters.
    pub vgic: vgic::VgicStats,
    /// Boot parameters used.
    pub params: Option<BootParams>,
    /// Where the guest's device tree went.
    pub dtb: Option<Blob>,
    /// The first refused data access, if any.
    pub first_refused: Option<Refused>,
    /// Unexpected exits (exception classes injected as UNDEFINED), the first one's ESR_EL2 and
    /// ELR.
    pub first_unexpected: Option<(u64, u64)>,
    /// Time from the first guest entry to the stop, in microseconds.
    pub run_us: u64,
    /// Exits by cause between phases 1 and 2 (see the module documentation), all vCPUs;
    /// `None` if the guest never marked both.
    pub window: Option<ExitStats>,
    /// The guest's ITS, if it had one.
    pub its: Option<its::ItsReport>,
    /// vCPU swaps done.
    pub swaps: u32,
    /// ITS commands between phases 1 and 2; `None` without the guest's ITS or both marks.
    pub window_its: Option<WindowIts>,
}

/// The ITS commands of the I/O window (between phases 1 and 2).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct WindowIts {
    /// Physical commands the hypervisor wrote before the window: the sequence number of the
    /// window's first (QEMU processes them in order, so its trace of the window starts at
    /// this line).
    pub first: u64,
    /// Physical commands the hypervisor wrote in the window.
    pub physical: u64,
    /// Commands the guest issued to its ITS in the window.
    pub guest: u64,
}

/// A data access the guest was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Refused {
    /// The vCPU that made it.
    pub vcpu: usize,
    /// The guest's virtual address (FAR_EL2).
    pub va: u64,
    /// The guest physical address, when the syndrome gave it.
    pub ipa: Option<u64>,
    /// ESR_EL2.
    pub esr: u64,
}

/// The VM: what every CPU shares.
pub struct Vm {
    vcpus: usize,
    opts: Options,
    stage2: Stage2,
    /// The physical side of the guest's ITS.
    pub host: Host,
    /// The guest's ITS (`None` with [`Msi::Intx`]); every trap holds this lock.
    pub its: SpinLock<Option<GuestIts>>,
    /// The CPU each vCPU runs on (vCPU `n` starts on CPU `n`; swaps change it).
    cpu_of: [AtomicUsize; MAX_CPUS],
    /// The phase the guest last marked (0 before the first mark).
    phase: AtomicU32,
    /// Each vCPU's exit counts at the start of each phase: (vCPU, phase, counts).
    phase_stats: SpinLock<Vec<(usize, u32, ExitStats)>>,
    /// At the start of each phase: (physical ITS commands the hypervisor issued, commands
    /// the guest issued to its ITS).
    phase_its: SpinLock<[Option<(u64, u64)>; 3]>,
    /// Swaps done, and the swap in progress (see [`migrate`]).
    pub swap: migrate::SwapState,
    /// The guest's GIC; every call holds this lock.
    pub vgic: SpinLock<Vgic<MAX_CPUS, SPIS>>,
    /// The vCPUs' power states.
    pub psci: SpinLock<Psci>,
    kicked: [AtomicBool; MAX_CPUS],
    stop: AtomicU8,
    error: SpinLock<Option<LinuxError>>,
    stats: [SpinLock<ExitStats>; MAX_CPUS],
    params: BootParams,
    dtb: Blob,
    first_refused: SpinLock<Option<Refused>>,
    first_unexpected: SpinLock<Option<(u64, u64)>>,
    finished: [AtomicBool; MAX_CPUS],
    started_ticks: AtomicU64,
}

static VM: Once<Vm> = Once::new();

impl Vm {
    fn new(vcpus: usize, opts: Options, params: BootParams) -> Result<Self, LinuxError> {
        // The machine, from QEMU's device tree: guest RAM, the GIC, the guest's own tree.
        let host = fdt::host_dtb()?;
        let (gicd, gicr) = fdt::gic_frames(host)?;
        let memory = fdt::guest_memory(host)?;
        let want = guest_fdt::MemRegion::new(GUEST_RAM_BASE, GUEST_RAM_SIZE);
        if !memory.iter().any(|m| m.contains(&want)) {
            return Err(LinuxError::NoGuestRam);
        }
        let its = opts.msi != Msi::Intx;
        let blob = fdt::guest_dtb(host, &memory, vcpus, &params, its, !opts.pmu)?;
        let dtb = Blob {
            addr: GUEST_RAM_BASE + GUEST_DTB_OFFSET,
            size: blob.len() as u64,
        };
        let clash = dtb.overlaps(&params.kernel_footprint())
            || params.initrd.is_some_and(|i| i.overlaps(&dtb));
        if dtb.size > GUEST_DTB_MAX || clash || !crate::rawmem::copy_to_guest(dtb.addr, &blob) {
            return Err(LinuxError::DtbPlacement);
        }
        drop(blob);

        let mut regions: Vec<Region> = memory
            .iter()
            .map(|m| Region {
                name: "guest RAM",
                base: m.base,
                size: m.size,
                kind: Kind::Ram,
            })
            .collect();
        regions.extend(DEVICE_REGIONS);
        if opts.msi != Msi::Intx {
            regions.push(ITS_TRANSLATION);
        }
        let stage2 = Stage2::build(&regions).map_err(LinuxError::Stage2)?;
        drop(regions);
        drop(memory);

        let prio_bits = fwd_irq::hw::IchRegs::vtr(&crate::fwd::ich()).pribits() + 1;
        let mut cfg = VgicConfig::new(gicd, gicr, vcpus).with_priority_bits(prio_bits);
        if opts.msi != Msi::Intx {
            cfg = cfg.with_lpis(its::VINTID_BITS);
        }
        let mut vgic = Vgic::new(cfg).map_err(LinuxError::Vgic)?;
        let hw = gic_hw::get();
        let mut fx = Effects::new();
        for intid in FORWARDED_SPIS {
            hw.configure_spi(intid, false, 0x80)
                .map_err(LinuxError::Gic)?;
            let (Ok(v), Ok(p)) = (VIntId::new(intid), PIntId::new(intid)) else {
                return Err(LinuxError::Gic(GicError::BadIntid(intid)));
            };
            let fwd = Forward {
                pintid: p,
                mode: FwdMode::Hw,
            };
            vgic.forward_spi(v, fwd, Trigger::Level, &mut fx)
                .map_err(LinuxError::Vgic)?;
            for e in fx.effects() {
                match *e {
                    Effect::SetPhysEnabled { pintid, enabled } => {
                        hw.set_spi_enabled(pintid.get(), enabled)
                    }
                    Effect::RoutePhys { pintid, vcpu } => hw.route_spi(pintid.get(), vcpu.index()),
                    _ => Ok(()),
                }
                .map_err(LinuxError::Gic)?;
            }
            fx.clear();
        }
        let (host, guest_its) = match opts.msi {
            Msi::Intx => (Host::None, None),
            Msi::Direct => {
                let (h, i) = its::direct(vcpus)?;
                (h, Some(i))
            }
            Msi::Soft => {
                let (h, i) = its::soft(vcpus)?;
                (h, Some(i))
            }
        };
        let mut psci = Psci::new(vcpus);
        psci.boot(0, params.kernel.addr, dtb.addr);
        Ok(Self {
            vcpus,
            opts,
            stage2,
            host,
            its: SpinLock::new(guest_its),
            cpu_of: core::array::from_fn(AtomicUsize::new),
            phase: AtomicU32::new(0),
            phase_stats: SpinLock::new(Vec::new()),
            phase_its: SpinLock::new([None; 3]),
            swap: migrate::SwapState::new(),
            vgic: SpinLock::new(vgic),
            psci: SpinLock::new(psci),
            kicked: [const { AtomicBool::new(false) }; MAX_CPUS],
            stop: AtomicU8::new(0),
            error: SpinLock::new(None),
            stats: [const { SpinLock::new(ExitStats::zero()) }; MAX_CPUS],
            params,
            dtb,
            first_refused: SpinLock::new(None),
            first_unexpected: SpinLock::new(None),
            finished: [const { AtomicBool::new(false) }; MAX_CPUS],
            started_ticks: AtomicU64::new(0),
        })
    }

    /// Whether the VM has stopped.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) != 0
    }

    /// Stops the VM (the first reason sticks) and makes every CPU leave its loop.
    pub fn stop(&self, why: Stop) {
        let _ = self
            .stop
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire);
        let me = cpu_index();
        for vcpu in 0..self.vcpus {
            if self.cpu_of(vcpu) != me {
                self.kick(vcpu);
            }
        }
    }

    /// Records a failure (the first one sticks; the report says it) and stops the VM.
    pub fn fail(&self, e: LinuxError) {
        self.error.lock().get_or_insert(e);
        self.stop(Stop::Failed);
    }

    /// Kicks vCPU `vcpu`: it syncs with the `Vgic` before it next enters the guest, and a CPU
    /// waiting for a CPU_ON wakes up to look.
    pub fn kick(&self, vcpu: usize) {
        if let Some(k) = self.kicked.get(vcpu) {
            k.store(true, Ordering::Release);
            gic_hw::send_sgi(KICK_SGI, self.cpu_of(vcpu));
        }
    }

    /// The CPU vCPU `vcpu` runs on.
    pub fn cpu_of(&self, vcpu: usize) -> usize {
        self.cpu_of
            .get(vcpu)
            .map_or(vcpu, |c| c.load(Ordering::Acquire))
    }

    /// The options the VM runs with.
    pub fn opts(&self) -> Options {
        self.opts
    }

    /// The phase the guest last marked.
    pub fn phase(&self) -> u32 {
        self.phase.load(Ordering::Acquire)
    }

    /// The guest marked phase `p` (1 or 2; anything else is ignored). Returns whether the
    /// phase changed (then the ITS command counts are recorded for it).
    pub fn mark_phase(&self, p: u32) -> bool {
        if !(1..=2).contains(&p) {
            return false;
        }
        let changed = self.phase.fetch_max(p, Ordering::AcqRel) < p;
        if changed
            && let Some(counts) = its::command_counts(self)
            && let Some(slot) = self.phase_its.lock().get_mut(p as usize)
        {
            *slot = Some(counts);
        }
        changed
    }

    /// Records vCPU `vcpu`'s counts at the start of phase `p`.
    pub fn record_phase(&self, vcpu: usize, p: u32, stats: &ExitStats) {
        let mut all = self.phase_stats.lock();
        if !all.iter().any(|(v, q, _)| *v == vcpu && *q == p) {
            all.push((vcpu, p, *stats));
        }
    }

    /// Whether vCPU `vcpu` has been kicked and has not synced since (the flag stays).
    pub fn is_kicked(&self, vcpu: usize) -> bool {
        self.kicked
            .get(vcpu)
            .is_some_and(|k| k.load(Ordering::Acquire))
    }

    /// Sets vCPU `vcpu`'s kick flag without interrupting anyone (it runs on this CPU).
    pub fn kick_self(&self, vcpu: usize) {
        if let Some(k) = self.kicked.get(vcpu) {
            k.store(true, Ordering::Release);
        }
    }

    /// Records that vCPU `vcpu` runs on CPU `cpu` now.
    pub fn set_cpu_of(&self, vcpu: usize, cpu: usize) {
        if let Some(c) = self.cpu_of.get(vcpu) {
            c.store(cpu, Ordering::Release);
        }
    }

    /// Clears and returns vCPU `vcpu`'s kick flag.
    pub fn take_kick(&self, vcpu: usize) -> bool {
        self.kicked
            .get(vcpu)
            .is_some_and(|k| k.swap(false, Ordering::AcqRel))
    }

    /// Records a data access the guest was refused (the first one is kept for the report;
    /// nothing is printed while the guest owns the console).
    pub fn note_refused(&self, refused: Refused) {
        self.first_refused.lock().get_or_insert(refused);
    }

    /// Records an exit nobody handles (the guest gets an UNDEFINED exception): the first
    /// one's ESR_EL2 and ELR are kept for the report.
    pub fn note_unexpected(&self, esr: u64, elr: u64) {
        self.first_unexpected.lock().get_or_insert((esr, elr));
    }
}

/// Reads the boot parameter block xtask loaded.
pub fn read_params() -> Result<BootParams, LinuxError> {
    let mut buf = [0u8; layout::BOOT_PARAMS_SIZE];
    let n = crate::rawmem::read_boot_params(&mut buf);
    let text =
        core::str::from_utf8(&buf[..n]).map_err(|_| LinuxError::Params(ParamsError::NoBlock))?;
    BootParams::parse(text).map_err(LinuxError::Params)
}

/// Per-CPU preparation, on the CPU itself: EL2 registers, stage 2, the GIC CPU interface
/// (EOImode = 1; the timer, maintenance and kick interrupts enabled).
fn setup_cpu(vm: &Vm, cpu: usize) -> Result<(), LinuxError> {
    el2::setup_cpu();
    if vm.opts.pmu {
        pmu::setup();
    }
    vm.stage2.load();
    pe_setup(cpu).map_err(LinuxError::Gic)?;
    gic_hw::get()
        .enable_private_irq(cpu, KICK_SGI)
        .map_err(LinuxError::Gic)
}

/// A CPU's life in the VM: set up, then run its vCPU each time PSCI starts it, until the VM
/// stops. Runs on CPU `cpu`.
fn cpu_main(vm: &Vm, cpu: usize) {
    let mut v = match setup_cpu(vm, cpu).and_then(|()| LinuxVcpu::new(vm, cpu)) {
        Ok(v) => Box::new(v),
        Err(e) => {
            vm.fail(e);
            vm.finished[cpu].store(true, Ordering::Release);
            return;
        }
    };
    'life: loop {
        // Off: wait for a CPU_ON (or the end), which kicks this CPU. Bounded by the VM's life.
        let start = loop {
            if vm.stopped() {
                break None;
            }
            if let Some(s) = vm.psci.lock().take_start(v.index()) {
                break Some(s);
            }
            wait_for_kick();
        };
        let Some((entry, context)) = start else {
            break;
        };
        if cpu == 0 {
            vm.started_ticks
                .store(common::timer::ticks(), Ordering::Release);
        }
        let mut end = v.run_from(vm, entry, context);
        loop {
            match end {
                End::CpuOff => {
                    vm.psci.lock().set_off(v.index());
                    break;
                }
                End::VmStopped => break 'life,
                End::Swap => match migrate::exchange(vm, v) {
                    Some(other) => {
                        v = other;
                        v.load_after_swap(vm);
                        end = v.run(vm);
                    }
                    None => {
                        vm.finished[cpu].store(true, Ordering::Release);
                        return;
                    }
                },
            }
        }
    }
    v.finish(vm);
    *vm.stats[v.index()].lock() = v.stats;
    vm.finished[cpu].store(true, Ordering::Release);
}

/// Waits for an interrupt (WFI: the CPU sleeps, where WFE would spin on QEMU), IRQs masked;
/// a kick that arrives is taken here (acknowledged and ended), since no guest runs to take it.
fn wait_for_kick() {
    // SAFETY: `wfi` only waits; with IRQs masked a pending interrupt ends the wait without
    // being taken.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
    if gic_hw::hppir() == KICK_SGI {
        let intid = gic_hw::ack();
        gic_hw::eoi(intid);
        if intid == KICK_SGI {
            // EOImode = 1 (`pe_setup`): the EOI only dropped the priority.
            fwd_irq::hw::HostCpuIf::deactivate(&mut crate::fwd::icc(), intid);
        }
    }
}

/// A secondary CPU's work item (see [`smp::post`]).
fn secondary_main(cpu: usize) -> u64 {
    if let Some(vm) = VM.get() {
        cpu_main(vm, cpu);
    }
    0
}

/// Boots the guest the boot parameter block describes on `vcpus` vCPUs (CPUs `0..vcpus`)
/// and runs it until it stops. Runs on CPU 0; returns what happened.
///
/// `before_entry` runs once the VM is built, before the first guest instruction (a scenario
/// takes its snapshots there).
pub fn boot(vcpus: usize, opts: Options, before_entry: impl FnOnce(&BootParams)) -> Report {
    let mut report = Report {
        stop: None,
        error: None,
        exits: ExitStats::default(),
        psci: PsciCounts::default(),
        vgic: vgic::VgicStats::default(),
        params: None,
        dtb: None,
        first_refused: None,
        first_unexpected: None,
        run_us: 0,
        window: None,
        its: None,
        swaps: 0,
        window_its: None,
    };
    let result = (|| -> Result<&'static Vm, LinuxError> {
        if vcpus == 0 || vcpus > MAX_CPUS || vcpus > gic_hw::get().cpus() {
            return Err(LinuxError::TooManyVcpus(vcpus));
        }
        // The guest's layout (stage 2, its device tree) is the board's: its ITS frames are
        // where the GIC's owner found the physical ITS.
        if gic_hw::get().its_base() != GITS_BASE as u64 {
            return Err(LinuxError::Its(alloc::format!(
                "the ITS is at {:#x}, not where the guest's layout puts it ({GITS_BASE:#x})",
                gic_hw::get().its_base()
            )));
        }
        let params = read_params()?;
        report.params = Some(params);
        let vm = VM.try_call_once(|| Vm::new(vcpus, opts, params))?;
        for cpu in 1..vcpus {
            smp::start(cpu, CPU_START_TIMEOUT).map_err(|e| LinuxError::Smp(cpu, e))?;
        }
        Ok(vm)
    })();
    let vm = match result {
        Ok(vm) => vm,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    narrate(vm);
    before_entry(&vm.params);
    for cpu in 1..vcpus {
        if let Err(e) = smp::post(cpu, secondary_main) {
            vm.fail(LinuxError::Smp(cpu, e));
        }
    }
    cpu_main(vm, 0);
    let stopped_ticks = common::timer::ticks();
    for cpu in 1..vcpus {
        if !common::timer::poll_until(STOP_TIMEOUT, || vm.finished[cpu].load(Ordering::Acquire)) {
            vm.fail(LinuxError::StuckCpu(cpu));
        }
    }
    for s in &vm.stats[..vcpus] {
        report.exits.add(&s.lock());
    }
    report.stop = match vm.stop.load(Ordering::Acquire) {
        1 => Some(Stop::PowerOff),
        2 => Some(Stop::Reset),
        3 => Some(Stop::Failed),
        _ => None,
    };
    report.error = vm.error.lock().clone();
    report.psci = vm.psci.lock().counts();
    report.dtb = Some(vm.dtb);
    report.vgic = vm.vgic.lock().stats();
    report.first_refused = *vm.first_refused.lock();
    report.first_unexpected = *vm.first_unexpected.lock();
    report.window = window(vm);
    report.its = its::report(vm);
    report.swaps = vm.swap.done();
    report.window_its = {
        let p = vm.phase_its.lock();
        p[1].zip(p[2]).map(|(a, b)| WindowIts {
            first: a.0,
            physical: b.0.saturating_sub(a.0),
            guest: b.1.saturating_sub(a.1),
        })
    };
    let started = vm.started_ticks.load(Ordering::Acquire);
    report.run_us = common::timer::ticks_to_ns(stopped_ticks.saturating_sub(started)) / 1000;
    crate::fwd::pe_teardown();
    report
}

/// The counts between phases 1 and 2, all vCPUs: `None` unless every vCPU recorded both.
fn window(vm: &Vm) -> Option<ExitStats> {
    let all = vm.phase_stats.lock();
    let at = |vcpu: usize, p: u32| {
        all.iter()
            .find(|(v, q, _)| *v == vcpu && *q == p)
            .map(|(_, _, s)| s)
    };
    let mut sum = ExitStats::zero();
    for vcpu in 0..vm.vcpus {
        sum.add(&at(vcpu, 2)?.since(at(vcpu, 1)?));
    }
    Some(sum)
}

/// Says what was set up (`@@N` lines for `cargo xtask demo --linux`), before the guest owns
/// the console.
fn narrate(vm: &Vm) {
    let its = vm.opts.msi != Msi::Intx;
    common::narrate!(
        "device tree: QEMU's, less the hypervisor's RAM, {}the maintenance interrupt and the \
         devices stage 2 does not map: {} bytes at {:#x}",
        if its { "" } else { "the ITS, " },
        vm.dtb.size,
        vm.dtb.addr
    );
    common::narrate!(
        "stage 2: identity map of guest RAM {:#x}+{} MiB, the PL011 and the PCIe windows{}; \
         the hypervisor's RAM, GICD/GICR and the ITS{} fault to EL2",
        GUEST_RAM_BASE,
        GUEST_RAM_SIZE >> 20,
        if its {
            " and the ITS translation frame"
        } else {
            " only"
        },
        if its {
            " control frame (the guest's ITS, vits)"
        } else {
            ""
        },
    );
    let cfg = *vm.vgic.lock().config();
    common::narrate!(
        "vgic: a GICv3 for {} vCPU(s) at GICD {:#x} / GICR {:#x} (QEMU's), trapped and \
         emulated; SPIs {FORWARDED_SPIS:?} forwarded with the HW bit, the virtual timer too",
        vm.vcpus,
        cfg.gicd_base,
        cfg.gicr_base
    );
    let p = &vm.params;
    common::narrate!(
        "boot: kernel at {:#x} ({} KiB running), initramfs {:x?}; vCPU 0 enters the kernel at \
         EL1 with x0 = the device tree",
        p.kernel.addr,
        p.image_size >> 10,
        p.initrd.map(|i| (i.addr, i.size)),
    );
}

/// Calls PSCI as vCPU `caller` would, outside the guest (a scenario's check of the answers
/// Linux never provokes, such as CPU_ON for a running vCPU). `None` before the VM exists.
pub fn psci_call(caller: usize, x: [u64; 4]) -> Option<psci::Action> {
    Some(VM.get()?.psci.lock().call(caller, x))
}
