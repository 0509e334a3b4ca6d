// SPDX-License-Identifier: MIT OR Apache-2.0
//! The stateful fuzz harness: sequences of driver API calls with arbitrary IDs and injected
//! faults, checked against the host model after every call.
//!
//! It drives the whole stack (its-cmdq, doorbell, vpe-sched) on a [`Rig`] and checks, after
//! every operation:
//! - nothing panicked (the fuzzer reports a panic as a finding);
//! - the model recorded no error other than the faults the harness injected (every command
//!   the driver sends is one the ITS accepts);
//! - the driver's records and the model agree: each event the driver says is mapped has a
//!   valid ITE with the same INTID and target, each it says is unmapped has none, each live
//!   vPE has a valid VTE, each resident vPE is resident in the model;
//! - a physical LPI made pending by INT is pending on the CPU the driver mapped it to;
//! - after the final teardown, no memory is left allocated (unless a timeout made the driver
//!   keep memory the ITS might use, by design).
//!
//! Used by the cargo-fuzz target `driver` (`fuzz/fuzz_targets/driver.rs`) and by the stable
//! replay of its corpus (`its-testkit/tests/fuzz_corpus.rs`).

use core::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use doorbell::DoorbellConfig;
use its_cmdq::{Device, ItsError, Lpis};
use its_core::cmd::ItsVersion;
use its_core::ids::{DeviceId, VLpi};
use its_model::{AllocFaults, Delay, GicModel, ModelConfig, PageSizes, RedistHandle};
use vpe_sched::{V4Config, VlpiConfig, VlpiProp, Vm, VmConfig, VpeError};

use crate::rig::{Memory, ModelDoorbells, ModelGicV4, ModelIts, P, PROXY_DEVICE, Rig, Settings};

/// vPE IDs checked for a stray VTE after every operation (more than the harness's VMs can
/// ever hold at once).
const VTE_SCAN: u16 = 128;

/// How the harness sets up the GIC, chosen from the input's first bytes. The GIC is always the
/// hardware-like model ([`ModelConfig::harden`]): configuration caches, ITSList and VMAPP Alloc
/// checks, vPE table sharing, RES0 by command form.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub struct Setup {
    /// 1 to 4 CPUs.
    pub cpus: u8,
    /// Two ITSs (GITS_TYPER.VMOVP = 0: VMOVP with an ITSList; GICv4.1: Alloc across ITSs,
    /// one shared vPE table). Devices are mapped on the first.
    pub two_its: bool,
    /// GICv4.1 capabilities.
    pub v41: bool,
    /// Base registers read back non-shareable.
    pub non_shareable: bool,
    /// No two-level tables.
    pub flat: bool,
    /// Only 4 KiB pages.
    pub small_pages: bool,
    /// Command queue size in 4 KiB pages (1 to 16).
    pub queue_pages: u8,
}

/// One driver call, with arbitrary arguments (slot numbers pick among live objects).
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Op {
    /// `Its::map_device`.
    MapDevice {
        /// DeviceID (any u32; the driver must refuse those beyond Devbits).
        id: u32,
        /// Events (any u32).
        events: u32,
    },
    /// `Its::unmap_device`.
    UnmapDevice {
        /// Which live device.
        slot: u8,
    },
    /// `Lpis::alloc` + `configure` + `Its::map_event`.
    MapEvent {
        /// Which live device.
        slot: u8,
        /// EventID (any).
        event: u32,
        /// Target CPU (any).
        cpu: u8,
        /// Enable the LPI.
        enabled: bool,
    },
    /// `Its::unmap_event`.
    UnmapEvent {
        /// Which live device.
        slot: u8,
        /// EventID.
        event: u32,
    },
    /// `Its::move_event`.
    MoveEvent {
        /// Which live device.
        slot: u8,
        /// EventID.
        event: u32,
        /// New CPU.
        cpu: u8,
    },
    /// `Its::int_event`, then the delivery check.
    Int {
        /// Which live device.
        slot: u8,
        /// EventID.
        event: u32,
    },
    /// `Its::inv_event` / `clear_event`.
    InvClear {
        /// Which live device.
        slot: u8,
        /// EventID.
        event: u32,
        /// CLEAR rather than INV.
        clear: bool,
    },
    /// `GicV4::create_vm`.
    CreateVm {
        /// vPEs (any; the driver refuses 0 and more than 64).
        vpes: u8,
        /// vINTID bits (any).
        bits: u8,
    },
    /// `GicV4::destroy_vm`.
    DestroyVm {
        /// Which live VM.
        slot: u8,
    },
    /// `GicV4::map_vlpi`.
    MapVlpi {
        /// Which live device.
        dev: u8,
        /// EventID.
        event: u32,
        /// Which live VM.
        vm: u8,
        /// vPE index (any).
        vpe: u8,
        /// vINTID (any).
        vintid: u32,
        /// Enabled.
        enabled: bool,
        /// Doorbell.
        doorbell: bool,
    },
    /// `GicV4::unmap_vlpi`.
    UnmapVlpi {
        /// Which live device.
        dev: u8,
        /// EventID.
        event: u32,
        /// Which live VM.
        vm: u8,
        /// Restore the host mapping.
        restore: bool,
    },
    /// `GicV4::move_vlpi`.
    MoveVlpi {
        /// Which live device.
        dev: u8,
        /// EventID.
        event: u32,
        /// Which live VM.
        vm: u8,
        /// New vPE index.
        to: u8,
    },
    /// `GicV4::update_vlpi`.
    UpdateVlpi {
        /// Which live device.
        dev: u8,
        /// EventID.
        event: u32,
        /// Which live VM.
        vm: u8,
        /// Enabled.
        enabled: bool,
    },
    /// `GicV4::make_resident` (+ `commit`).
    Schedule {
        /// Which live VM.
        vm: u8,
        /// vPE index.
        vpe: u8,
        /// CPU.
        cpu: u8,
    },
    /// `GicV4::make_non_resident`.
    Deschedule {
        /// Which live VM.
        vm: u8,
        /// vPE index.
        vpe: u8,
        /// Arm the doorbell.
        doorbell: bool,
    },
    /// The command this many commands ahead stalls (GITS_CREADR.Stalled): any command of the
    /// next call, or of a later one, not only its first.
    InjectStall(u8),
    /// The next allocation fails.
    InjectAllocFailure,
    /// The ITS advances GITS_CREADR only after this many polls (0 = at once).
    InjectDelay(u8),
}

/// A finding: the harness panics with it (the fuzzer's report).
fn fail(msg: String) -> ! {
    panic!("driver/model disagreement: {msg}");
}

struct World<'a> {
    model: GicModel,
    plat: P,
    cpus: usize,
    its: &'a [ModelIts],
    lpis: &'a Lpis<P>,
    rig: &'a Rig,
    g: ModelGicV4<'a>,
    devices: Vec<Device<P>>,
    vms: Vec<Vm<P>>,
    /// Commands the ITS stalled on (and the driver skipped).
    stalls: usize,
    /// Memory in use after bring-up.
    baseline: Memory,
}

fn rd(model: &GicModel, cpu: usize) -> RedistHandle {
    model.redist(cpu)
}

/// Every wait of the drivers: 1 ms on the model's stepping clock.
const WAIT: Duration = Duration::from_millis(1);

/// The GIC of `s`, with LPIs and the ITS brought up (`None` if bring-up fails: the input
/// asked for a GIC the drivers refuse).
fn rig(s: Setup) -> Option<Rig> {
    let cpus = usize::from(s.cpus % 4) + 1;
    let mut cfg = if s.v41 {
        ModelConfig::gicv41(cpus)
    } else {
        ModelConfig::qemu(cpus)
    }
    .harden();
    cfg.its_count = if s.two_its { 2 } else { 1 };
    cfg.non_shareable = s.non_shareable;
    cfg.indirect = !s.flat;
    if s.small_pages {
        cfg.page_sizes = PageSizes {
            k4: true,
            k16: false,
            k64: false,
        };
    }
    let settings = Settings {
        queue_bytes: (usize::from(s.queue_pages % 16) + 1) * 0x1000,
        timeout: Some(WAIT),
    };
    Rig::try_with(cfg, settings).ok()
}

/// The doorbells of every run: through a proxy device, even with DirectLPI.
fn doorbells(rig: &Rig) -> Option<ModelDoorbells<'_>> {
    rig.doorbells(DoorbellConfig::proxy(DeviceId::new(PROXY_DEVICE), 128))
        .ok()
}

/// The GICv4 layer on `rig` with `dbs`, and the world the operations act on.
fn setup<'a>(rig: &'a Rig, dbs: &'a ModelDoorbells<'a>) -> Option<World<'a>> {
    let v4 = V4Config {
        dirty_timeout: WAIT,
        commit_timeout: WAIT,
        ..V4Config::default()
    };
    let g = rig.gicv4(dbs, v4).ok()?;
    if !rig.model.errors().is_empty() {
        fail(format!("bring-up: {:?}", rig.model.errors()));
    }
    Some(World {
        baseline: rig.memory(),
        model: rig.model.clone(),
        plat: rig.plat.clone(),
        cpus: rig.cfg.cpus,
        its: &rig.its,
        lpis: &rig.lpis,
        rig,
        g,
        devices: Vec::new(),
        vms: Vec::new(),
        stalls: 0,
    })
}

/// Most values pick something valid (modulo `n`); with the top bit set the raw value is
/// used, so refusals of bad input stay covered too.
fn within(raw: u32, n: u32) -> u32 {
    if raw & 0x8000_0000 != 0 || n == 0 {
        raw & 0x7fff_ffff
    } else {
        raw % n
    }
}

/// As [`within`], for small values.
fn within8(raw: u8, n: usize) -> usize {
    if raw & 0x80 != 0 || n == 0 {
        usize::from(raw & 0x7f)
    } else {
        usize::from(raw) % n
    }
}

fn pick<T>(v: &mut [T], slot: u8) -> Option<&mut T> {
    if v.is_empty() {
        None
    } else {
        let n = v.len();
        v.get_mut(usize::from(slot) % n)
    }
}

impl<'a> World<'a> {
    fn its(&self) -> &'a ModelIts {
        &self.its[0]
    }

    /// An error the driver may legitimately return for arbitrary input; anything else (or a
    /// panic) is a finding. A dead ITS ends the run.
    fn accept<T>(&mut self, r: Result<T, VpeError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(VpeError::Its(ItsError::Stalled { .. })) => {
                self.stalls += 1;
                None
            }
            Err(_) => None,
        }
    }

    fn apply(&mut self, op: Op) {
        let its = self.its();
        match op {
            Op::MapDevice { id, events } => {
                let r = its
                    .map_device(DeviceId::new(within(id, 0x1_0000)), within(events, 64) + 1)
                    .map_err(VpeError::from);
                if let Some(d) = self.accept(r) {
                    self.devices.push(d);
                }
            }
            Op::UnmapDevice { slot } => {
                if self.devices.is_empty() {
                    return;
                }
                let i = usize::from(slot) % self.devices.len();
                // Unforward its vLPIs first (the driver refuses nothing here: a forwarded event
                // is DISCARDed by unmap_device too, but the vPE's count must follow).
                let dev = &mut self.devices[i];
                for e in 0..dev.events() {
                    if let Ok(s) = dev.event(e)
                        && let Some(v) = s.virt
                        && let Some(vm) = self.vms.iter().find(|vm| vm.owns(v.vpe).is_some())
                    {
                        let _ = self.g.unmap_vlpi(its, dev, e, vm, false);
                    }
                }
                match its.unmap_device(&mut self.devices[i]) {
                    Ok(()) => {
                        self.devices.swap_remove(i);
                    }
                    Err(ItsError::Stalled { .. }) => self.stalls += 1,
                    Err(_) => {}
                }
            }
            Op::MapEvent {
                slot,
                event,
                cpu,
                enabled,
            } => {
                let Some(dev) = pick(&mut self.devices, slot) else {
                    return;
                };
                let Ok(range) = self.lpis.alloc(1) else {
                    return;
                };
                let _ = self.lpis.configure(range.base, 0xa0, enabled);
                let e = within(event, dev.events());
                let r = its.map_event(dev, e, range.base, within8(cpu, self.cpus));
                if r.is_err() {
                    let _ = self.lpis.free(range);
                }
                let _ = self.accept(r.map_err(VpeError::from));
            }
            Op::UnmapEvent { slot, event } => {
                let Some(dev) = pick(&mut self.devices, slot) else {
                    return;
                };
                let e = within(event, dev.events());
                let lpi = dev
                    .event(e)
                    .ok()
                    .and_then(|s| s.phys.filter(|_| s.virt.is_none()));
                let r = its.unmap_event(dev, e);
                if let (Ok(()), Some(p)) = (&r, lpi) {
                    let _ = self.lpis.free(its_cmdq::LpiRange {
                        base: p.lpi,
                        count: 1,
                    });
                }
                let _ = self.accept(r.map_err(VpeError::from));
            }
            Op::MoveEvent { slot, event, cpu } => {
                let Some(dev) = pick(&mut self.devices, slot) else {
                    return;
                };
                let e = within(event, dev.events());
                let r = its.move_event(dev, e, within8(cpu, self.cpus));
                let _ = self.accept(r.map_err(VpeError::from));
            }
            Op::Int { slot, event } => {
                let Some(dev) = pick(&mut self.devices, slot) else {
                    return;
                };
                let e = within(event, dev.events());
                let state = dev.event(e).ok();
                let r = its.int_event(dev, e);
                if r.is_ok()
                    && let Some(s) = state
                    && let (Some(p), None) = (s.phys, s.virt)
                {
                    let pending = self.model.pending_lpis(usize::from(p.cpu));
                    if !pending.contains(&p.lpi.get()) {
                        fail(format!(
                            "INT of a host LPI {} did not make it pending on CPU {}",
                            p.lpi.get(),
                            p.cpu
                        ));
                    }
                    // Take it (as the hypervisor would) if enabled, so the table stays small.
                    let _ = self.model.take_lpi(usize::from(p.cpu));
                }
                let _ = self.accept(r.map_err(VpeError::from));
            }
            Op::InvClear { slot, event, clear } => {
                let Some(dev) = pick(&mut self.devices, slot) else {
                    return;
                };
                let e = within(event, dev.events());
                let r = if clear {
                    its.clear_event(dev, e)
                } else {
                    its.inv_event(dev, e)
                };
                let _ = self.accept(r.map_err(VpeError::from));
            }
            Op::CreateVm { vpes, bits } => {
                if self.vms.len() >= 3 {
                    return;
                }
                let n = within8(vpes, 8) + usize::from(vpes & 0x80 == 0);
                let cpus: Vec<usize> = (0..n).map(|i| i % self.cpus).collect();
                let bits = if bits & 0x80 != 0 {
                    bits & 0x1f
                } else {
                    14 + bits % 3
                };
                let r = self.g.create_vm(VmConfig {
                    vintid_bits: bits,
                    vpes: &cpus,
                });
                if let Some(vm) = self.accept(r) {
                    self.vms.push(vm);
                }
            }
            Op::DestroyVm { slot } => {
                if self.vms.is_empty() {
                    return;
                }
                let i = usize::from(slot) % self.vms.len();
                match self.g.destroy_vm(&mut self.vms[i]) {
                    Ok(()) => {
                        self.vms.swap_remove(i);
                    }
                    Err(VpeError::Its(ItsError::Stalled { .. })) => self.stalls += 1,
                    Err(_) => {}
                }
            }
            Op::MapVlpi {
                dev,
                event,
                vm,
                vpe,
                vintid,
                enabled,
                doorbell,
            } => {
                let (Some(d), false) = (pick(&mut self.devices, dev), self.vms.is_empty()) else {
                    return;
                };
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let range = (1u32 << vm.vintid_bits()) - 8192;
                let Ok(v) = VLpi::new(8192 + within(vintid, range)) else {
                    return;
                };
                let c = VlpiConfig {
                    vintid: v,
                    priority: 0xa0,
                    enabled,
                    doorbell,
                };
                let e = within(event, d.events());
                let r = self
                    .g
                    .map_vlpi(its, d, e, vm, within8(vpe, vm.vpes().len()), c);
                let _ = self.accept(r);
            }
            Op::UnmapVlpi {
                dev,
                event,
                vm,
                restore,
            } => {
                let (Some(d), false) = (pick(&mut self.devices, dev), self.vms.is_empty()) else {
                    return;
                };
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let e = within(event, d.events());
                let r = self.g.unmap_vlpi(its, d, e, vm, restore);
                let _ = self.accept(r);
            }
            Op::MoveVlpi { dev, event, vm, to } => {
                let (Some(d), false) = (pick(&mut self.devices, dev), self.vms.is_empty()) else {
                    return;
                };
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let e = within(event, d.events());
                let r = self
                    .g
                    .move_vlpi(its, d, e, vm, within8(to, vm.vpes().len()));
                let _ = self.accept(r);
            }
            Op::UpdateVlpi {
                dev,
                event,
                vm,
                enabled,
            } => {
                let (Some(d), false) = (pick(&mut self.devices, dev), self.vms.is_empty()) else {
                    return;
                };
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let e = within(event, d.events());
                let r = self.g.update_vlpi(
                    its,
                    d,
                    e,
                    vm,
                    VlpiProp {
                        priority: 0x80,
                        enabled,
                        inv: true,
                    },
                );
                let _ = self.accept(r);
            }
            Op::Schedule { vm, vpe, cpu } => {
                if self.vms.is_empty() {
                    return;
                }
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let cpu = within8(cpu, self.cpus);
                let mut r = rd(&self.model, cpu.min(self.cpus - 1));
                let res = self
                    .g
                    .make_resident(vm, within8(vpe, vm.vpes().len()), cpu, &mut r);
                if res.is_ok() {
                    let _ = self.g.commit(&mut r);
                }
                let _ = self.accept(res);
            }
            Op::Deschedule { vm, vpe, doorbell } => {
                if self.vms.is_empty() {
                    return;
                }
                let vm = &self.vms[usize::from(vm) % self.vms.len()];
                let i = within8(vpe, vm.vpes().len());
                let cpu = match vm.vpe(i).map(|v| v.residency()) {
                    Ok(vpe_sched::Residency::Resident { cpu }) => cpu,
                    _ => 0,
                };
                let mut r = rd(&self.model, cpu);
                let res = self.g.make_non_resident(vm, i, &mut r, doorbell);
                let _ = self.accept(res);
            }
            Op::InjectStall(ahead) => {
                let done = self.model.counters(0).0;
                self.model.stall_at(0, Some(done + u64::from(ahead % 64)));
            }
            Op::InjectAllocFailure => self.plat.fail_next_alloc(),
            Op::InjectDelay(n) => {
                let d = if n == 0 {
                    Delay::Immediate
                } else {
                    Delay::AfterPolls(u32::from(n % 8))
                };
                self.model.set_delay(0, d);
            }
        }
    }

    /// The model recorded nothing but injected stalls, and agrees with the driver.
    fn check(&self) {
        let errors: Vec<_> = self
            .model
            .errors()
            .into_iter()
            .filter(|e| !e.message.contains("(injected)"))
            .collect();
        if !errors.is_empty() {
            fail(format!("the model recorded errors: {errors:?}"));
        }
        for dev in &self.devices {
            let id = dev.id().get();
            for e in 0..dev.events() {
                let Ok(s) = dev.event(e) else {
                    fail(format!("device {id:#x} event {e}: no record"))
                };
                let ite = self.model.ite(0, id, e);
                match (s.virt, s.phys, ite) {
                    (Some(v), _, Some(i))
                        if !i.physical && i.vpe == v.vpe.get() && i.intid == v.vintid.get() => {}
                    (None, Some(p), Some(i))
                        if i.physical && i.intid == p.lpi.get() && i.icid == p.cpu => {}
                    (None, None, None) => {}
                    (v, p, i) => fail(format!(
                        "device {id:#x} event {e}: driver says {v:?}/{p:?}, ITS has {i:?}"
                    )),
                }
            }
        }
        // No vPE the driver does not know about may stay mapped (a VTE left behind by a
        // failed create_vm or destroy_vm would point at freed memory), unless the ITS died
        // and the driver kept the tables on purpose. vPE IDs are handed out lowest first.
        if !self.its().is_dead() {
            for n in 0..self.its.len() {
                for id in 0..VTE_SCAN {
                    let live = self
                        .vms
                        .iter()
                        .any(|vm| vm.vpes().iter().any(|v| v.id().get() == id));
                    if !live && self.model.vte(n, id).is_some_and(|t| t.valid) {
                        fail(format!(
                            "vPE ID {id}: valid in ITS {n}, unknown to the driver"
                        ));
                    }
                }
            }
        }
        for vm in &self.vms {
            for v in vm.vpes() {
                for n in 0..self.its.len() {
                    let vte = self.model.vte(n, v.id().get());
                    if !vte.is_some_and(|t| t.valid && usize::from(t.rd) == v.affinity()) {
                        fail(format!(
                            "vPE {}: driver affinity {}, ITS {n} VTE {vte:?}",
                            v.id().get(),
                            v.affinity()
                        ));
                    }
                }
                if let vpe_sched::Residency::Resident { cpu } = v.residency() {
                    let want = if self.g.version() == ItsVersion::V4_1 {
                        u64::from(v.id().get())
                    } else {
                        v.vpt().get()
                    };
                    if self.model.resident(cpu) != Some(want) {
                        fail(format!(
                            "vPE {} resident on CPU {cpu} for the driver, not for the GIC",
                            v.id().get()
                        ));
                    }
                }
            }
        }
    }

    /// Tears everything down and checks that nothing leaked.
    fn teardown(mut self) {
        self.model.set_delay(0, Delay::Immediate);
        self.model.stall_at(0, None);
        // Errors were checked after every operation; the teardown's are checked below.
        let _ = self.model.errors();
        self.plat.set_faults(AllocFaults::default());
        let its = self.its();
        // Deschedule, unforward, destroy VMs; unmap devices.
        for vm in &self.vms {
            for i in 0..vm.vpes().len() {
                if let Ok(vpe_sched::Residency::Resident { cpu }) = vm.vpe(i).map(|v| v.residency())
                {
                    let _ = self
                        .g
                        .make_non_resident(vm, i, &mut rd(&self.model, cpu), false);
                }
            }
        }
        for dev in &mut self.devices {
            for e in 0..dev.events() {
                if let Some(v) = dev.event(e).ok().and_then(|s| s.virt)
                    && let Some(vm) = self.vms.iter().find(|vm| vm.owns(v.vpe).is_some())
                {
                    let _ = self.g.unmap_vlpi(its, dev, e, vm, false);
                }
            }
        }
        let dead = its.is_dead();
        for mut vm in self.vms.drain(..) {
            if let Err(e) = self.g.destroy_vm(&mut vm)
                && !dead
            {
                fail(format!("destroy_vm at teardown: {e}"));
            }
        }
        for mut dev in self.devices.drain(..) {
            if let Err(e) = its.unmap_device(&mut dev)
                && !dead
            {
                fail(format!("unmap_device at teardown: {e}"));
            }
        }
        if !dead {
            self.check();
            let now = self.rig.memory();
            let expect = self.baseline.live + now.l2 - self.baseline.l2;
            if now.live != expect {
                fail(format!(
                    "memory leaked: {} bytes live after teardown, {expect} expected",
                    now.live
                ));
            }
        }
    }
}

/// Runs a given sequence of operations with the same checks as [`run`] (the replay test's
/// scripted sequences reach deep states the fuzzer finds only slowly).
///
/// # Panics
/// On any property violation (that is the point).
pub fn run_ops(s: Setup, ops: &[Op]) {
    let Some(rig) = rig(s) else {
        panic!("setup {s:?} failed")
    };
    let Some(dbs) = doorbells(&rig) else {
        panic!("doorbells failed");
    };
    let Some(mut w) = setup(&rig, &dbs) else {
        panic!("GICv4 setup failed")
    };
    for &op in ops {
        w.apply(op);
        if w.its().is_dead() {
            // Nothing more to check (see `run`).
            let _ = w.model.errors();
            return;
        }
        w.check();
    }
    w.teardown();
}

/// Runs one input: a setup, then up to 64 operations, checking after each.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(s) = Setup::arbitrary(&mut u) else {
        return;
    };
    let Some(rig) = rig(s) else { return };
    let Some(dbs) = doorbells(&rig) else { return };
    let Some(mut w) = setup(&rig, &dbs) else {
        return;
    };
    // Stop when the input is used up: `arbitrary` would otherwise make all-zero operations.
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        w.apply(op);
        if w.its().is_dead() {
            // A timeout: the driver gave the ITS up, by design; nothing more to check (what
            // the model recorded since the last check included).
            let _ = w.model.errors();
            return;
        }
        w.check();
    }
    w.teardown();
}
