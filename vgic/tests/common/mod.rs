// SPDX-License-Identifier: MIT OR Apache-2.0
//! A VM of up to 4 vCPUs on the host: the `Vgic`, one `VgicCpu` and one fake ICH register
//! file per vCPU, a fake physical GIC, and helpers that play the hypervisor's side (drain
//! effects, sync before entry, run the guest).

#![allow(dead_code, reason = "each test file uses a different part of the rig")]

use fwd_irq::fake::{FakeIch, FakePhysGic};
use fwd_irq::hw::IchRegs;
use fwd_irq::regs::IchVmcr;
use fwd_irq::{Forward, FwdMode, PIntId, Trigger, VIntId, VgicCpu};
use vgic::{Access, AccessSize, Effect, Effects, Outcome, VcpuId, VcpuSet, Vgic, VgicConfig};

pub const GICD: u64 = 0x0800_0000;
pub const GICR: u64 = 0x080A_0000;
pub const SPIS: usize = 64;
/// 32 private interrupts + 64 SPIs.
pub const TABLE: usize = 96;

pub type TestVgic = Vgic<4, SPIS>;

pub fn v(n: u32) -> VIntId {
    VIntId::new(n).unwrap()
}

pub fn p(n: u32) -> PIntId {
    PIntId::new(n).unwrap()
}

pub fn vc(n: u8) -> VcpuId {
    VcpuId::new(n)
}

pub fn hw(pintid: u32) -> Forward {
    Forward {
        pintid: p(pintid),
        mode: FwdMode::Hw,
    }
}

/// RD_base of vCPU `k`.
pub fn rd(k: u64) -> u64 {
    GICR + k * 0x2_0000
}

/// SGI_base of vCPU `k`.
pub fn sgi(k: u64) -> u64 {
    rd(k) + 0x1_0000
}

pub fn set(vcpus: &[u8]) -> VcpuSet {
    let mut s = VcpuSet::EMPTY;
    for &i in vcpus {
        s.insert(vc(i));
    }
    s
}

/// The hypervisor's side of a VM.
pub struct Rig {
    pub vgic: TestVgic,
    pub cpus: Vec<VgicCpu<TABLE>>,
    pub ichs: Vec<FakeIch>,
    pub phys: FakePhysGic,
    pub fx: Effects,
    /// Every effect drained so far, in order.
    pub effects: Vec<Effect>,
    /// The kicks of the last drained call.
    pub kicks: VcpuSet,
}

impl Rig {
    /// `n` vCPUs, default configuration, all attached.
    pub fn new(n: usize) -> Self {
        Self::with(VgicConfig::new(GICD, GICR, n), |_, _| {})
    }

    /// A VM with `cfg`; `setup` runs on the Vgic and the (not yet attached) vCPU tables
    /// before attaching, e.g. to forward SPIs or map the timer.
    pub fn with(
        cfg: VgicConfig<4>,
        setup: impl FnOnce(&mut TestVgic, &mut [VgicCpu<TABLE>]),
    ) -> Self {
        let n = cfg.nr_vcpus;
        let vgic = TestVgic::new(cfg).unwrap();
        let mut ichs = Vec::new();
        let mut cpus = Vec::new();
        for _ in 0..n {
            let mut ich = FakeIch::new(4);
            ich.guest_set_vmcr(IchVmcr::group1_all());
            cpus.push(VgicCpu::<TABLE>::from_vtr(ich.vtr()).unwrap());
            ichs.push(ich);
        }
        let mut rig = Self {
            vgic,
            cpus,
            ichs,
            phys: FakePhysGic::new(),
            fx: Effects::new(),
            effects: Vec::new(),
            kicks: VcpuSet::EMPTY,
        };
        setup(&mut rig.vgic, &mut rig.cpus);
        rig.drain();
        for i in 0..n {
            rig.vgic
                .attach(vc(i as u8), &mut rig.cpus[i], &mut rig.fx)
                .unwrap();
            rig.drain();
        }
        rig.effects.clear();
        rig
    }

    /// Applies and clears the effects buffer (physical active states reach the fake GIC;
    /// everything is recorded); returns the effects of this call.
    pub fn drain(&mut self) -> Vec<Effect> {
        assert!(!self.fx.overflowed(), "an effect was lost");
        let list = self.fx.effects().to_vec();
        for e in &list {
            if let Effect::SetPhysActive { pintid, active } = *e {
                fwd_irq::hw::PhysIrqState::set_active(&mut self.phys, pintid, active);
            }
        }
        self.kicks = self.fx.kicks();
        self.effects.extend_from_slice(&list);
        self.fx.clear();
        list
    }

    pub fn read(&mut self, vcpu: usize, ipa: u64, size: AccessSize) -> Access {
        let a = self
            .vgic
            .read(
                vc(vcpu as u8),
                &mut self.cpus[vcpu],
                ipa,
                size,
                &mut self.fx,
            )
            .unwrap();
        self.drain();
        a
    }

    pub fn write(&mut self, vcpu: usize, ipa: u64, size: AccessSize, value: u64) -> Access {
        let a = self
            .vgic
            .write(
                vc(vcpu as u8),
                &mut self.cpus[vcpu],
                ipa,
                size,
                value,
                &mut self.fx,
            )
            .unwrap();
        self.drain();
        a
    }

    /// A 32-bit read's value, which must be a register access.
    pub fn r32(&mut self, vcpu: usize, ipa: u64) -> u32 {
        let a = self.read(vcpu, ipa, AccessSize::Word);
        assert_eq!(a.outcome, Outcome::Register, "read at {ipa:#x}");
        a.value as u32
    }

    /// A 32-bit write, which must be a register access.
    pub fn w32(&mut self, vcpu: usize, ipa: u64, value: u32) {
        let a = self.write(vcpu, ipa, AccessSize::Word, u64::from(value));
        assert_eq!(a.outcome, Outcome::Register, "write at {ipa:#x}");
    }

    /// Syncs `vcpu` until done (as before a guest entry); returns its effects.
    pub fn sync(&mut self, vcpu: usize) -> Vec<Effect> {
        let mut all = Vec::new();
        loop {
            let done = self
                .vgic
                .sync(vc(vcpu as u8), &mut self.cpus[vcpu], &mut self.fx)
                .unwrap();
            all.extend(self.drain());
            if done {
                return all;
            }
        }
    }

    /// What a guest's GIC driver does at boot: Group 1 on at the distributor, every
    /// redistributor awake.
    pub fn boot(&mut self) {
        self.w32(0, GICD, 0b10);
        for k in 0..self.cpus.len() {
            self.w32(k, rd(k as u64) + 0x14, 0);
        }
        for k in 0..self.cpus.len() {
            self.sync(k);
        }
        self.effects.clear();
    }

    /// Enables `intid` in Group 1 with `priority`, as vCPU `by` (GICD for SPIs, its own
    /// redistributor for SGIs/PPIs).
    pub fn enable(&mut self, by: usize, intid: u32, priority: u8) {
        let (base, n) = if intid < 32 {
            (sgi(by as u64), 0)
        } else {
            (GICD, intid / 32)
        };
        let bit = 1u32 << (intid % 32);
        let group = self.r32(by, base + 0x80 + 4 * u64::from(n));
        self.w32(by, base + 0x80 + 4 * u64::from(n), group | bit);
        let prio_word = base + 0x400 + u64::from(intid & !3);
        let old = self.r32(by, prio_word);
        let shift = 8 * (intid % 4);
        let new = (old & !(0xFF << shift)) | (u32::from(priority) << shift);
        self.w32(by, prio_word, new);
        self.w32(by, base + 0x100 + 4 * u64::from(n), bit);
    }

    /// One guest entry and exit on `vcpu`: sync, populate, let the guest take and complete
    /// every interrupt it can (calling `handler`), fold. Returns the vINTIDs it took.
    pub fn run_with(
        &mut self,
        vcpu: usize,
        handler: impl FnMut(u32, &mut FakePhysGic),
    ) -> Vec<u32> {
        self.sync(vcpu);
        self.cpus[vcpu].populate_lrs(&mut self.ichs[vcpu]);
        self.ichs[vcpu].guest_run(&mut self.phys, 16, handler);
        self.cpus[vcpu].fold_lrs(&mut self.ichs[vcpu], &mut self.phys);
        self.ichs[vcpu].take_delivered()
    }

    pub fn run(&mut self, vcpu: usize) -> Vec<u32> {
        self.run_with(vcpu, |_, _| {})
    }

    /// Entry with the guest not taking anything, then exit (the interrupts stay listed
    /// pending in the list registers while it runs).
    pub fn enter_exit(&mut self, vcpu: usize) {
        self.sync(vcpu);
        self.cpus[vcpu].populate_lrs(&mut self.ichs[vcpu]);
        self.cpus[vcpu].fold_lrs(&mut self.ichs[vcpu], &mut self.phys);
    }

    /// The guest on `vcpu` acknowledges its highest-priority interrupt and keeps it active
    /// (no EOI) across an exit. Returns the vINTID (1023 if none).
    pub fn ack_and_exit(&mut self, vcpu: usize) -> u32 {
        self.sync(vcpu);
        self.cpus[vcpu].populate_lrs(&mut self.ichs[vcpu]);
        let intid = self.ichs[vcpu].guest_ack();
        self.cpus[vcpu].fold_lrs(&mut self.ichs[vcpu], &mut self.phys);
        intid
    }

    /// The guest on `vcpu` completes (EOIs) `intid`, which it has active, in one run.
    pub fn eoi(&mut self, vcpu: usize, intid: u32) {
        self.sync(vcpu);
        self.cpus[vcpu].populate_lrs(&mut self.ichs[vcpu]);
        self.ichs[vcpu].guest_eoi(intid, &mut self.phys);
        self.cpus[vcpu].fold_lrs(&mut self.ichs[vcpu], &mut self.phys);
    }

    /// No fake saw an architecture rule broken.
    pub fn assert_clean(&self) {
        let mut all = self.phys.violations();
        for ich in &self.ichs {
            all.extend(ich.violations());
        }
        assert!(all.is_empty(), "violations: {all:?}");
    }
}

/// Forwards SPI `intid` from physical SPI `pintid` (level) before attaching.
pub fn forward_level(vgic: &mut TestVgic, intid: u32, pintid: u32) -> Vec<Effect> {
    let mut fx = Effects::new();
    vgic.forward_spi(v(intid), hw(pintid), Trigger::Level, &mut fx)
        .unwrap();
    fx.effects().to_vec()
}
