// SPDX-License-Identifier: MIT OR Apache-2.0
//! PSCI for the guest: the firmware interface Linux uses to start, stop and power off CPUs.
//!
//! The guest's device tree keeps QEMU's `psci` node (`method = "smc"`); with HCR_EL2.TSC = 1
//! its SMCs trap to EL2 (ESR_EL2.EC = 0x17, ELR at the SMC) and land here. [`Psci`] is the
//! whole state: each vCPU's power state, the entry point a CPU_ON left for it, and counts.
//! It touches no hardware: [`Psci::call`] returns what the caller must do ([`Action`]), and
//! the run loop does it (wake a CPU, stop a vCPU, stop the VM).
//!
//! | Function | Answer |
//! |---|---|
//! | PSCI_VERSION | 1.1 |
//! | PSCI_FEATURES | 0 for every function below, NOT_SUPPORTED otherwise (SMCCC_VERSION included: the guest keeps SMCCC 1.0 and makes no firmware workaround calls) |
//! | MIGRATE_INFO_TYPE | 2: no Trusted OS to migrate |
//! | CPU_ON (32/64) | SUCCESS and the target goes ON_PENDING; ALREADY_ON if it runs, ON_PENDING if it is starting, INVALID_PARAMETERS for an MPIDR that names no vCPU, INVALID_ADDRESS for an entry point outside guest RAM |
//! | CPU_OFF | the calling vCPU stops ([`Action::CpuOff`]) until a CPU_ON |
//! | AFFINITY_INFO (32/64) | ON 0, OFF 1, ON_PENDING 2 for level 0; INVALID_PARAMETERS otherwise |
//! | SYSTEM_OFF, SYSTEM_RESET | the VM stops ([`Action::SystemOff`], [`Action::SystemReset`]) |
//! | anything else | NOT_SUPPORTED |
//!
//! vCPU n has MPIDR affinity 0.0.0.n (it runs on CPU n, see `linux::el2`).

use common::platform::MAX_CPUS;
use smccc::psci::{self as ids, error};

use super::layout::{GUEST_RAM_BASE, GUEST_RAM_SIZE};

/// PSCI 1.1.
pub const VERSION: u32 = (1 << 16) | 1;
/// MIGRATE_INFO_TYPE: "Trusted OS not present or does not require migration".
const MIGRATE_NONE: i64 = 2;
/// SMCCC_VERSION (SMCCC 1.1 and later discover it through PSCI_FEATURES).
const SMCCC_VERSION: u32 = 0x8000_0000;

/// A vCPU's power state.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Power {
    /// Not running; waits for a CPU_ON.
    Off,
    /// A CPU_ON was accepted: start at `entry` with `context` in x0.
    OnPending {
        /// Entry point (guest physical, MMU off).
        entry: u64,
        /// x0 at entry.
        context: u64,
    },
    /// Running.
    On,
}

/// What the run loop must do after a call.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Action {
    /// Return this value in x0 and resume the caller after its SMC.
    Return(i64),
    /// Return SUCCESS and wake vCPU `target`: it is ON_PENDING.
    Started {
        /// The vCPU to start.
        target: usize,
    },
    /// The caller powered itself off: stop running it.
    CpuOff,
    /// Power the machine off.
    SystemOff,
    /// Reset the machine.
    SystemReset,
}

/// Calls counted by function.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct PsciCounts {
    /// PSCI_VERSION.
    pub version: u64,
    /// PSCI_FEATURES.
    pub features: u64,
    /// MIGRATE_INFO_TYPE.
    pub migrate_info_type: u64,
    /// CPU_ON (any result).
    pub cpu_on: u64,
    /// CPU_ON answered ALREADY_ON.
    pub already_on: u64,
    /// CPU_OFF.
    pub cpu_off: u64,
    /// AFFINITY_INFO.
    pub affinity_info: u64,
    /// SYSTEM_OFF.
    pub system_off: u64,
    /// SYSTEM_RESET.
    pub system_reset: u64,
    /// Anything else (answered NOT_SUPPORTED).
    pub other: u64,
}

/// The VM's PSCI state.
#[derive(Clone, Debug)]
pub struct Psci {
    power: [Power; MAX_CPUS],
    vcpus: usize,
    counts: PsciCounts,
}

/// The vCPU whose MPIDR affinity is `mpidr` (Aff3.Aff2.Aff1 = 0, Aff0 = index).
fn vcpu_of(mpidr: u64, vcpus: usize) -> Option<usize> {
    let aff = mpidr & 0xff_00ff_ffff;
    (aff < vcpus as u64).then_some(aff as usize)
}

impl Psci {
    /// `vcpus` vCPUs, all OFF.
    pub fn new(vcpus: usize) -> Self {
        Self {
            power: [Power::Off; MAX_CPUS],
            vcpus: vcpus.min(MAX_CPUS),
            counts: PsciCounts::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> PsciCounts {
        self.counts
    }

    /// Starts vCPU `vcpu` at `entry` without a guest call (the boot CPU, at the kernel).
    pub fn boot(&mut self, vcpu: usize, entry: u64, context: u64) {
        if vcpu < self.vcpus {
            self.power[vcpu] = Power::OnPending { entry, context };
        }
    }

    /// Takes vCPU `vcpu`'s pending start, making it ON: `Some((entry, context))` if a CPU_ON
    /// (or [`Self::boot`]) is waiting for it.
    pub fn take_start(&mut self, vcpu: usize) -> Option<(u64, u64)> {
        match self.power.get(vcpu).copied() {
            Some(Power::OnPending { entry, context }) => {
                self.power[vcpu] = Power::On;
                Some((entry, context))
            }
            _ => None,
        }
    }

    /// Marks vCPU `vcpu` OFF (after its CPU_OFF, once its CPU stopped running it).
    pub fn set_off(&mut self, vcpu: usize) {
        if vcpu < self.vcpus {
            self.power[vcpu] = Power::Off;
        }
    }

    /// Handles a PSCI call from vCPU `caller` with x0..x3 = `x`.
    pub fn call(&mut self, caller: usize, x: [u64; 4]) -> Action {
        let fid = x[0] as u32;
        let c = &mut self.counts;
        match fid {
            ids::PSCI_VERSION => {
                c.version += 1;
                Action::Return(i64::from(VERSION))
            }
            ids::PSCI_FEATURES => {
                c.features += 1;
                let supported = matches!(
                    x[1] as u32,
                    ids::PSCI_VERSION
                        | ids::PSCI_FEATURES
                        | ids::PSCI_MIGRATE_INFO_TYPE
                        | ids::PSCI_CPU_ON_32
                        | ids::PSCI_CPU_ON_64
                        | ids::PSCI_CPU_OFF
                        | ids::PSCI_AFFINITY_INFO_32
                        | ids::PSCI_AFFINITY_INFO_64
                        | ids::PSCI_SYSTEM_OFF
                        | ids::PSCI_SYSTEM_RESET
                ) && x[1] >> 32 == 0
                    && x[1] as u32 != SMCCC_VERSION;
                Action::Return(if supported {
                    0
                } else {
                    i64::from(error::NOT_SUPPORTED)
                })
            }
            ids::PSCI_MIGRATE_INFO_TYPE => {
                c.migrate_info_type += 1;
                Action::Return(MIGRATE_NONE)
            }
            ids::PSCI_CPU_ON_32 | ids::PSCI_CPU_ON_64 => {
                c.cpu_on += 1;
                let (target, entry, context) = if fid == ids::PSCI_CPU_ON_32 {
                    (x[1] & 0xffff_ffff, x[2] & 0xffff_ffff, x[3] & 0xffff_ffff)
                } else {
                    (x[1], x[2], x[3])
                };
                self.cpu_on(target, entry, context)
            }
            ids::PSCI_CPU_OFF => {
                c.cpu_off += 1;
                let _ = caller;
                Action::CpuOff
            }
            ids::PSCI_AFFINITY_INFO_32 | ids::PSCI_AFFINITY_INFO_64 => {
                c.affinity_info += 1;
                let target = if fid == ids::PSCI_AFFINITY_INFO_32 {
                    x[1] & 0xffff_ffff
                } else {
                    x[1]
                };
                let value = match (vcpu_of(target, self.vcpus), x[2]) {
                    (Some(v), 0) => match self.power[v] {
                        Power::On => 0,
                        Power::Off => 1,
                        Power::OnPending { .. } => 2,
                    },
                    _ => i64::from(error::INVALID_PARAMETERS),
                };
                Action::Return(value)
            }
            ids::PSCI_SYSTEM_OFF => {
                c.system_off += 1;
                Action::SystemOff
            }
            ids::PSCI_SYSTEM_RESET => {
                c.system_reset += 1;
                Action::SystemReset
            }
            _ => {
                c.other += 1;
                Action::Return(i64::from(error::NOT_SUPPORTED))
            }
        }
    }

    fn cpu_on(&mut self, target: u64, entry: u64, context: u64) -> Action {
        let Some(v) = vcpu_of(target, self.vcpus) else {
            return Action::Return(i64::from(error::INVALID_PARAMETERS));
        };
        match self.power[v] {
            Power::On => {
                self.counts.already_on += 1;
                Action::Return(i64::from(error::ALREADY_ON))
            }
            Power::OnPending { .. } => Action::Return(i64::from(error::ON_PENDING)),
            Power::Off => {
                let in_ram = (GUEST_RAM_BASE..GUEST_RAM_BASE + GUEST_RAM_SIZE).contains(&entry);
                if !in_ram || !entry.is_multiple_of(4) {
                    return Action::Return(i64::from(error::INVALID_ADDRESS));
                }
                self.power[v] = Power::OnPending { entry, context };
                Action::Started { target: v }
            }
        }
    }
}
