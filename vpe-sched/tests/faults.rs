// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault injection at every allocation and every wait of the GICv4 layer's entry points.
//!
//! For each entry point of `GicV4` that allocates or waits, on a fresh host GIC each time
//! (GICv4.0 as QEMU has it, the same read back non-shareable, and GICv4.1 with DirectLPI and
//! Dirty):
//! - the k-th allocation of the call fails, k = 0, 1, 2, ... until the call makes no more;
//! - the ITS stalls at each command the call sends, one index per run;
//! - the ITS is dead (GITS_CREADR never moves) or slow;
//! - the redistributor waits (GICR_VPENDBASER.Dirty, GICR_SYNCR) are slow or never end.
//!
//! After each fault: a typed error; DMA memory back to its value before the call (but for
//! second-level table pages, which belong to the tables, and what the driver keeps on purpose
//! because the GIC may still use it, checked too); no model error but the injected one; the
//! driver's records equal the GIC's (ITEs with their doorbells, VTEs, residency, the doorbells'
//! proxy events and enable bits, vLPI counts); and the driver still works: with the fault
//! cleared, the call, or what it left undone, succeeds; after a timeout every later call that
//! needs the ITS reports it dead.

use core::time::Duration;

use doorbell::{DoorbellConfig, DoorbellError, Doorbells};
use its_cmdq::{Device, ItsError};
use its_core::caps::RedistCaps;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{DeviceId, Lpi, SgiId, SgiPriority, VLpi};
use its_core::mmio::RedistRegisters;
use its_model::{FakePlatform, ModelConfig};
use its_testkit::sweep::{self, On, Subject, with_allocation_failing};
use its_testkit::{Rig, Settings, V4, with_v4};
use vpe_sched::{
    GicV4, Residency, V4Config, VlpiConfig, VlpiProp, Vm, VmConfig, VpeError, VsgiConfig,
};

type P = FakePlatform;

const PROXY: u32 = 0xffff;

/// QEMU's GICv4.0, the same with every base register read back non-shareable, and GICv4.1
/// (DirectLPI, GICR_VPENDBASER.Dirty).
fn configs() -> [ModelConfig; 3] {
    let mut ns = ModelConfig::qemu(2);
    ns.non_shareable = true;
    [ModelConfig::qemu(2), ns, ModelConfig::gicv41(2)]
}

/// The GIC and the layers below the GICv4 one: 2 ms waits, so that a dead ITS is given up
/// quickly.
fn base(cfg: &ModelConfig) -> Rig {
    let settings = Settings {
        timeout: Some(Duration::from_millis(2)),
        ..Settings::default()
    };
    Rig::with(cfg.clone(), settings)
}

/// Runs `f` on a fresh GIC with the GICv4 layer up.
fn with_rig<T>(cfg: &ModelConfig, f: impl FnOnce(&V4<'_>) -> T) -> T {
    let b = base(cfg);
    let v4 = V4Config {
        dirty_timeout: Duration::from_millis(1),
        commit_timeout: Duration::from_millis(1),
        ..V4Config::default()
    };
    with_v4(&b, b.doorbell_config(64), v4, f)
}

fn v41(r: &Rig) -> bool {
    r.cfg.version == ItsVersion::V4_1
}

fn vcfg(v: u32, enabled: bool) -> VlpiConfig {
    VlpiConfig {
        vintid: VLpi::new(v).unwrap(),
        priority: 0xa0,
        enabled,
        doorbell: true,
    }
}

/// What the calls under test work on.
#[derive(Default)]
struct St {
    vms: Vec<Vm<P>>,
    devs: Vec<Device<P>>,
    /// vPE IDs of VMs the call destroyed.
    gone: Vec<u16>,
    /// Host LPIs of events forwarded by the test, to restore.
    host: Vec<Lpi>,
}

impl St {
    fn vm(&self) -> &Vm<P> {
        &self.vms[0]
    }
}

/// The ITS error under a GICv4 or doorbell error.
fn its_err(e: &VpeError) -> Option<&ItsError> {
    match e {
        VpeError::Its(e) | VpeError::Doorbell(DoorbellError::Its(e)) => Some(e),
        _ => None,
    }
}

/// The driver's records equal the GIC's.
#[track_caller]
fn consistent(r: &V4, st: &St, what: &str) {
    let m = &r.model;
    let v41 = v41(r);
    let owner = |vpe: u16| {
        st.vms.iter().find_map(|vm| {
            vm.owns(its_core::ids::VpeId::new(vpe))
                .map(|i| (vm, vm.vpe(i).unwrap()))
        })
    };
    for d in &st.devs {
        let id = d.id().get();
        let dte = m.dte(0, id);
        assert!(
            dte.is_some_and(|t| t.valid && t.size == d.itt_size().field()),
            "{what}: device {id:#x}: DTE {dte:?}"
        );
        let mut mapped = 0;
        for e in 0..d.events() {
            let rec = d.event(e).unwrap();
            let ite = m.ite(0, id, e);
            let ok = match (rec.phys, rec.virt, ite) {
                (None, None, None) => true,
                (Some(p), None, Some(i)) => i.physical && i.intid == p.lpi.get() && i.icid == p.cpu,
                (_, Some(v), Some(i)) => {
                    let (vm, vpe) = owner(v.vpe.get())
                        .unwrap_or_else(|| panic!("{what}: event {e} on an unknown vPE"));
                    let enabled = vm.property(v.vintid.get()).unwrap() & 1 != 0;
                    let db = if !v41 && enabled && v.doorbell {
                        vpe.doorbell().get()
                    } else {
                        1023
                    };
                    !i.physical
                        && i.vpe == v.vpe.get()
                        && i.intid == v.vintid.get()
                        && i.doorbell == db
                }
                _ => false,
            };
            assert!(
                ok,
                "{what}: device {id:#x} event {e}: driver {rec:?}, ITS {ite:?}"
            );
            mapped += u32::from(rec.is_mapped());
        }
        assert_eq!(d.mapped_events(), mapped, "{what}: mapped-event count");
    }
    let mut resident_on = vec![None; r.cfg.cpus];
    for vm in &st.vms {
        for v in vm.vpes() {
            let id = v.id().get();
            for n in 0..r.its.len() {
                let vte = m.vte(n, id);
                assert!(
                    vte.is_some_and(|t| t.valid
                        && t.vpt == v.vpt().get()
                        && usize::from(t.rd) == v.affinity()),
                    "{what}: vPE {id}: affinity {}, VTE {vte:?} on ITS {n}",
                    v.affinity()
                );
            }
            let vlpis = st
                .devs
                .iter()
                .flat_map(|d| (0..d.events()).map(|e| d.event(e).unwrap()))
                .filter(|s| s.virt.is_some_and(|x| x.vpe == v.id()))
                .count() as u32;
            assert_eq!(v.vlpis(), vlpis, "{what}: vPE {id}'s vLPI count");
            // The doorbell: looked up, routed (proxy event on the vPE's CPU), enable bit.
            let db = v.doorbell();
            assert_eq!(r.dbs.vpe_of(db.get()), Some(v.id()), "{what}");
            assert_eq!(
                r.dbs.is_enabled(db),
                r.lpis.property(db).unwrap() & 1 != 0,
                "{what}: doorbell {} enable bit",
                db.get()
            );
            // The doorbell's proxy event is mapped; once resident, on the vPE's CPU (a failed
            // make_resident may leave it behind, for the next one to move).
            if r.dbs.uses_proxy() {
                let slot = db.get() - r.dbs.range().base.get();
                let ite = m.ite(0, PROXY, slot);
                let may_lag = !v.residency().is_resident();
                assert!(
                    ite.is_some_and(|i| i.physical
                        && i.intid == db.get()
                        && (may_lag || usize::from(i.icid) == v.affinity())),
                    "{what}: vPE {id} on CPU {}: doorbell proxy ITE {ite:?}",
                    v.affinity()
                );
            }
            if let Residency::Resident { cpu } = v.residency() {
                resident_on[cpu] = Some((id, v.vpt().get()));
            }
        }
    }
    for (cpu, want) in resident_on.iter().enumerate() {
        let model = m.resident(cpu);
        let expect = want.map(|(id, vpt)| if v41 { u64::from(id) } else { vpt });
        assert_eq!(model, expect, "{what}: resident on CPU {cpu}");
        assert_eq!(
            r.g.resident_on(cpu).map(|v| v.get()),
            want.map(|w| w.0),
            "{what}: driver's resident vPE on CPU {cpu}"
        );
    }
    for &id in &st.gone {
        let vte = m.vte(0, id);
        assert!(
            vte.is_none_or(|t| !t.valid),
            "{what}: vPE {id} destroyed, VTE {vte:?}"
        );
    }
    // No vPE the driver does not hold is mapped (the tests use the first 64 vPE IDs).
    for id in 0..64u16 {
        if owner(id).is_none() {
            for n in 0..r.its.len() {
                let vte = m.vte(n, id);
                assert!(
                    vte.is_none_or(|t| !t.valid),
                    "{what}: vPE {id} is not held, but ITS {n} maps it: {vte:?}"
                );
            }
        }
    }
}

/// Whether a model error is one a skipped `cmd` provokes: later commands of the batch that
/// name the vPE a skipped VMAPP should have mapped (QEMU logs those and goes on).
fn provoked(cmd: Command, message: &str) -> bool {
    match cmd {
        Command::Vmapp {
            vpe, valid: true, ..
        }
        | Command::VmappV41 {
            vpe, valid: true, ..
        } => message.contains(&format!("invalid VTE for VPEID {:#x}", vpe.get())),
        _ => false,
    }
}

/// The GICv4 layer's entry points, for the sweeps: each run on a fresh rig with the layer up.
struct GicV4Calls;

type Op = sweep::Op<GicV4Calls>;

impl Subject for GicV4Calls {
    type World<'r> = V4<'r>;
    type State<'r> = St;
    type Records = Vec<Vec<its_cmdq::EventState>>;
    type Error = VpeError;

    fn with_world<T>(cfg: &ModelConfig, f: impl for<'r> FnOnce(&'r V4<'r>) -> T) -> T {
        with_rig(cfg, |r| f(r))
    }
    fn its_error(e: &VpeError) -> Option<&ItsError> {
        its_err(e)
    }
    fn consistent(w: &V4, st: &St, what: &str) {
        consistent(w, st, what)
    }
    fn all_dead(w: &V4, st: &mut St, what: &str) {
        all_dead(w, st, what)
    }
    fn records(st: &St) -> Self::Records {
        records(st)
    }
    fn confirmed_only(w: &V4, st: &St, before: &Self::Records, what: &str) {
        confirmed_only(w, st, before, what)
    }
    fn provoked(cmd: Command, message: &str) -> bool {
        provoked(cmd, message)
    }
}

/// Every entry point on every GIC shape.
fn cases() -> Vec<On<GicV4Calls>> {
    sweep::grid(configs(), ops)
}

/// A VM of two vPEs (CPUs 0 and 1), device 1 with 4 events: event 0 a host LPI, event 1
/// unmapped, events 2 and 3 forwarded to vPE 0 (vINTIDs 8194, 8195; 8195 disabled).
fn prepare_vlpis(r: &V4) -> St {
    let vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0, 1],
        })
        .unwrap();
    let host = r.lpis.alloc(4).unwrap();
    for l in host.iter() {
        r.lpis.configure(l, 0xa0, true).unwrap();
    }
    let mut dev = r.its().map_device(DeviceId::new(1), 4).unwrap();
    r.its().map_event(&mut dev, 0, host.base, 0).unwrap();
    r.g.map_vlpis(
        r.its(),
        &mut dev,
        &vm,
        &[(2, 0, vcfg(8194, true)), (3, 0, vcfg(8195, false))],
    )
    .unwrap();
    St {
        vms: vec![vm],
        devs: vec![dev],
        gone: Vec::new(),
        host: host.iter().collect(),
    }
}

const MAP: [(u32, usize, u32); 2] = [(0, 1, 8192), (1, 0, 8193)];

fn map_vlpis_missing(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let items: Vec<(u32, usize, VlpiConfig)> = MAP
        .iter()
        .filter(|&&(e, _, _)| st.devs[0].event(e).unwrap().virt.is_none())
        .map(|&(e, i, v)| (e, i, vcfg(v, true)))
        .collect();
    let (vms, devs) = (&st.vms, &mut st.devs);
    r.g.map_vlpis(r.its(), &mut devs[0], &vms[0], &items)
}

fn unmap_vlpi_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let (vms, devs) = (&st.vms, &mut st.devs);
    r.g.unmap_vlpi(r.its(), &mut devs[0], 2, &vms[0], true)
}

fn move_vlpi_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let (vms, devs) = (&st.vms, &mut st.devs);
    r.g.move_vlpi(r.its(), &mut devs[0], 2, &vms[0], 1)
}

fn update_vlpi_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    r.g.update_vlpi(
        r.its(),
        &st.devs[0],
        3,
        st.vm(),
        VlpiProp {
            priority: 0x40,
            enabled: true,
            inv: true,
        },
    )
}

fn destroy_vm_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let mut vm = st.vms.pop().expect("a VM");
    let ids: Vec<u16> = vm.vpes().iter().map(|v| v.id().get()).collect();
    match r.g.destroy_vm(&mut vm) {
        Ok(()) => {
            assert!(vm.is_destroyed() && vm.vpes().is_empty() && vm.table_bytes() == 0);
            st.gone.extend(ids);
            Ok(())
        }
        Err(e) => {
            st.vms.push(vm);
            Err(e)
        }
    }
}

fn create_vm_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    st.vms.push(r.g.create_vm(VmConfig {
        vintid_bits: 16,
        vpes: &[0, 1, 1],
    })?);
    Ok(())
}

/// vPE 0 of a VM on CPU 0 with a vLPI, descheduled with its doorbell armed; the vLPI came
/// while it was away, the doorbell rang and was handled (disabled, invalidation deferred).
fn prepare_doorbell_rang(r: &V4) -> St {
    let mut st = prepare_vlpis(r);
    let rd = &mut r.model.redist(0);
    r.g.make_resident(st.vm(), 0, 0, rd).unwrap();
    r.g.make_non_resident(st.vm(), 0, rd, true).unwrap();
    r.its().int_event(&st.devs[0], 2).unwrap();
    let db = r.model.take_lpi(0).expect("the doorbell rings");
    assert_eq!(r.dbs.handle(db), Some(st.vm().vpe(0).unwrap().id()));
    r.g.doorbell_rang(st.vm(), 0);
    // And a second vLPI leaves it pending while disabled.
    r.its().int_event(&st.devs[0], 2).unwrap();
    st.host.push(Lpi::new(db).unwrap());
    st
}

/// `make_resident` on CPU 1: VMOVP, the doorbell's proxy event moved, its deferred
/// invalidation and the clear of its pending state.
fn make_resident_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    r.g.make_resident(st.vm(), 0, 1, &mut r.model.redist(1))
}

fn make_resident_retry(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let vpe = st.vm().vpe(0).unwrap();
    if vpe.residency().is_resident() {
        // Documented: an error of the final doorbell clear leaves the vPE resident; what is
        // left is that clear.
        let mut rd = r.model.redist(1);
        Ok(r.dbs.settle_and_clear(
            vpe.doorbell(),
            !v41(r),
            Some(&mut rd as &mut dyn RedistRegisters),
        )?)
    } else {
        make_resident_call(r, st)
    }
}

fn make_resident_goal(r: &V4, st: &St) {
    let vpe = st.vm().vpe(0).unwrap();
    assert_eq!(vpe.residency(), Residency::Resident { cpu: 1 });
    assert_eq!(vpe.affinity(), 1);
    let db = vpe.doorbell().get();
    if !v41(r) {
        assert!(
            !r.model.pending_lpis(0).contains(&db) && !r.model.pending_lpis(1).contains(&db),
            "the stale doorbell was cleared"
        );
    }
    // The deferred invalidation was done: settling again costs nothing.
    let before = r.model.counters(0).1;
    r.dbs
        .settle(vpe.doorbell(), Some(&mut r.model.redist(1)))
        .unwrap();
    assert_eq!(r.model.counters(0).1, before);
    assert_eq!(r.model.take_vlpi(1), Some(8194));
}

fn resident_on_0(r: &V4) -> St {
    let st = prepare_vlpis(r);
    r.g.make_resident(st.vm(), 0, 0, &mut r.model.redist(0))
        .unwrap();
    st
}

fn make_non_resident_call(r: &V4, st: &mut St) -> Result<(), VpeError> {
    let d =
        r.g.make_non_resident(st.vm(), 0, &mut r.model.redist(0), true)?;
    assert!(!d.dirty_timeout && !d.pending_last);
    Ok(())
}

fn make_non_resident_goal(r: &V4, st: &St) {
    let vpe = st.vm().vpe(0).unwrap();
    assert!(!vpe.residency().is_resident());
    if !v41(r) {
        assert!(r.dbs.is_enabled(vpe.doorbell()));
    }
    // The doorbell rings for the next vLPI.
    r.its().int_event(&st.devs[0], 2).unwrap();
    assert_eq!(r.model.take_lpi(0), Some(vpe.doorbell().get()));
}

/// The VM's tables, kept when the ITS timed out once a VMAPP naming them was sent.
fn vm_tables(_: &V4, _: &St, sent: &[Command]) -> usize {
    let vmapp = |c: &Command| matches!(c, Command::Vmapp { .. } | Command::VmappV41 { .. });
    if sent.iter().any(vmapp) {
        (1 << 16) + 3 * 0x2000
    } else {
        0
    }
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "GicV4::create_vm",
            prepare: |_| St::default(),
            call: create_vm_call,
            retry: create_vm_call,
            goal: |r, st| {
                assert_eq!(st.vms.len(), 1);
                assert_eq!(st.vm().vpes().len(), 3);
                let _ = r;
            },
            heals: false,
            kept_on_timeout: Some(vm_tables),
        },
        Op {
            name: "GicV4::destroy_vm",
            prepare: |r| {
                let mut st = St::default();
                create_vm_call(r, &mut st).unwrap();
                st
            },
            call: destroy_vm_call,
            retry: destroy_vm_call,
            goal: |_, st| {
                assert!(st.vms.is_empty());
                assert_eq!(st.gone.len(), 3);
            },
            // VMAPP V = 0 is idempotent: a batch with a skipped one is sent again.
            heals: true,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::map_vlpis",
            prepare: prepare_vlpis,
            call: |r, st| {
                let items: Vec<(u32, usize, VlpiConfig)> =
                    MAP.iter().map(|&(e, i, v)| (e, i, vcfg(v, true))).collect();
                let (vms, devs) = (&st.vms, &mut st.devs);
                r.g.map_vlpis(r.its(), &mut devs[0], &vms[0], &items)
            },
            retry: map_vlpis_missing,
            goal: |r, st| {
                for (e, i, v) in MAP {
                    let s = st.devs[0].event(e).unwrap();
                    let virt = s.virt.expect("forwarded");
                    assert_eq!(virt.vpe, st.vm().vpe(i).unwrap().id());
                    assert_eq!(virt.vintid.get(), v);
                }
                // Event 0 keeps its host LPI, to restore at unmap.
                assert_eq!(
                    st.devs[0].event(0).unwrap().phys.map(|p| p.lpi),
                    st.host.first().copied()
                );
                r.its().int_event(&st.devs[0], 0).unwrap();
                assert!(st.vm().vpe(1).unwrap().vpt_pending(8192));
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::unmap_vlpi (restore)",
            prepare: |r| {
                let mut st = prepare_vlpis(r);
                // Event 2 had a host LPI before it was forwarded: unforward and map it again.
                let (vms, devs) = (&st.vms, &mut st.devs);
                r.g.unmap_vlpi(r.its(), &mut devs[0], 2, &vms[0], false)
                    .unwrap();
                let l = st.host[2];
                r.its().map_event(&mut st.devs[0], 2, l, 1).unwrap();
                let (vms, devs) = (&st.vms, &mut st.devs);
                r.g.map_vlpi(r.its(), &mut devs[0], 2, &vms[0], 0, vcfg(8194, true))
                    .unwrap();
                st
            },
            call: unmap_vlpi_call,
            retry: |r, st| {
                let s = st.devs[0].event(2).unwrap();
                match (s.virt, s.phys) {
                    (Some(_), _) => unmap_vlpi_call(r, st),
                    // Unforwarded, but the host mapping is not back.
                    (None, None) => Ok(r.its().map_event(&mut st.devs[0], 2, st.host[2], 1)?),
                    (None, Some(_)) => Ok(()),
                }
            },
            goal: |r, st| {
                let s = st.devs[0].event(2).unwrap();
                assert!(s.virt.is_none());
                assert_eq!(s.phys.map(|p| (p.lpi, p.cpu)), Some((st.host[2], 1)));
                r.its().int_event(&st.devs[0], 2).unwrap();
                assert!(r.model.pending_lpis(1).contains(&st.host[2].get()));
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::move_vlpi",
            prepare: prepare_vlpis,
            call: move_vlpi_call,
            retry: |r, st| {
                let to = st.vm().vpe(1).unwrap().id();
                if st.devs[0]
                    .event(2)
                    .unwrap()
                    .virt
                    .is_some_and(|v| v.vpe == to)
                {
                    Ok(())
                } else {
                    move_vlpi_call(r, st)
                }
            },
            goal: |r, st| {
                r.its().int_event(&st.devs[0], 2).unwrap();
                assert!(st.vm().vpe(1).unwrap().vpt_pending(8194));
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::update_vlpi",
            prepare: prepare_vlpis,
            call: update_vlpi_call,
            retry: update_vlpi_call,
            goal: |_, st| assert_eq!(st.vm().property(8195).unwrap(), 0x40 | 2 | 1),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::invall_vpe",
            prepare: prepare_vlpis,
            call: |r, st| r.g.invall_vpe(st.vm(), 1, Some(&mut r.model.redist(1))),
            retry: |r, st| r.g.invall_vpe(st.vm(), 1, Some(&mut r.model.redist(1))),
            goal: |_, _| {},
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::make_resident (VMOVP, doorbell moved, settled, cleared)",
            prepare: prepare_doorbell_rang,
            call: make_resident_call,
            retry: make_resident_retry,
            goal: make_resident_goal,
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::make_non_resident (doorbell armed)",
            prepare: resident_on_0,
            call: make_non_resident_call,
            retry: |r, st| {
                if st.vm().vpe(0).unwrap().residency().is_resident() {
                    make_non_resident_call(r, st)
                } else {
                    Ok(())
                }
            },
            goal: make_non_resident_goal,
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "GicV4::update_vsgi + invdb (GICv4.1)",
            prepare: prepare_vlpis,
            call: |r, st| {
                if !v41(r) {
                    return Ok(());
                }
                r.g.update_vsgi(
                    st.vm(),
                    1,
                    VsgiConfig {
                        sgi: SgiId::new(5).unwrap(),
                        priority: SgiPriority::new(0x80).unwrap(),
                        group: true,
                        enable: true,
                        clear: false,
                    },
                )?;
                r.g.invdb(st.vm(), 1)
            },
            retry: |r, st| {
                if !v41(r) {
                    return Ok(());
                }
                r.g.invdb(st.vm(), 1)
            },
            goal: |_, _| {},
            heals: false,
            kept_on_timeout: None,
        },
    ]
}

fn records(st: &St) -> Vec<Vec<its_cmdq::EventState>> {
    st.devs
        .iter()
        .map(|d| (0..d.events()).map(|e| d.event(e).unwrap()).collect())
        .collect()
}

/// After a timeout: each event's record is what it was before the call (the driver did not
/// see the ITS confirm a change), what the ITS has (it did), or unmapped (a confirmed DISCARD,
/// then a batch mapping it again that the ITS may or may not have started before dying).
#[track_caller]
fn confirmed_only(r: &V4, st: &St, before: &[Vec<its_cmdq::EventState>], what: &str) {
    for (d, old) in st.devs.iter().zip(before) {
        for e in 0..d.events() {
            let rec = d.event(e).unwrap();
            let ite = r.model.ite(0, d.id().get(), e);
            let agrees = match (rec.phys, rec.virt, ite) {
                (None, None, None) => true,
                (Some(p), None, Some(i)) => i.physical && i.intid == p.lpi.get(),
                (_, Some(v), Some(i)) => !i.physical && i.vpe == v.vpe.get(),
                _ => false,
            };
            assert!(
                rec == old[e as usize] || agrees || !rec.is_mapped(),
                "{what}: device {:#x} event {e}: driver {rec:?} (before {:?}), ITS {ite:?}",
                d.id().get(),
                old[e as usize]
            );
        }
    }
}

/// Every call that needs the ITS reports it dead (sending nothing: checked by the sweep).
#[track_caller]
fn all_dead(r: &V4, st: &mut St, what: &str) {
    let dead = |e: &VpeError| matches!(its_err(e), Some(ItsError::Dead));
    let e =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .err();
    assert!(e.as_ref().is_some_and(dead), "{what}: create_vm {e:?}");
    if let (Some(vm), Some(dev)) = (st.vms.first(), st.devs.first_mut()) {
        let e = r.g.map_vlpi(r.its(), dev, 1, vm, 0, vcfg(8300, true));
        assert!(e.as_ref().is_err_and(dead), "{what}: map_vlpi {e:?}");
        if dev
            .event(2)
            .unwrap()
            .virt
            .is_some_and(|v| vm.owns(v.vpe).is_some())
        {
            let e = r.g.move_vlpi(r.its(), dev, 2, vm, 1);
            assert!(e.as_ref().is_err_and(dead), "{what}: move_vlpi {e:?}");
            let e = r.g.unmap_vlpi(r.its(), dev, 2, vm, true);
            assert!(e.as_ref().is_err_and(dead), "{what}: unmap_vlpi {e:?}");
            let p = VlpiProp {
                priority: 0,
                enabled: true,
                inv: true,
            };
            let e = r.g.update_vlpi(r.its(), dev, 2, vm, p);
            assert!(e.as_ref().is_err_and(dead), "{what}: update_vlpi {e:?}");
        }
        if !v41(r) {
            let e = r.g.invall_vpe(vm, 0, Some(&mut r.model.redist(0)));
            assert!(e.as_ref().is_err_and(dead), "{what}: invall_vpe {e:?}");
        }
    }
    if let Some(mut vm) = st.vms.pop() {
        let e = r.g.destroy_vm(&mut vm).unwrap_err();
        assert!(
            dead(&e) || matches!(e, VpeError::InUse(_)),
            "{what}: destroy_vm {e:?}"
        );
        st.vms.push(vm);
    }
}

#[test]
fn every_gicv4_call_under_allocation_failure() {
    sweep::total(&cases(), sweep::allocation_failures, "allocation faults", 9);
}

#[test]
fn every_gicv4_call_stalled_at_each_command() {
    sweep::total(&cases(), sweep::stalls, "stalls", 100);
}

#[test]
fn every_gicv4_call_on_an_its_dying_at_each_command() {
    sweep::total(&cases(), sweep::deaths, "deaths", 100);
}

#[test]
fn every_gicv4_call_on_a_slow_its() {
    for c in &cases() {
        sweep::slow_its(c, &[1, 30, 800], None);
    }
}

// ---------------------------------------------------------------------------------------------
// Bring-up, redistributor waits, two ITSs.

#[test]
fn gicv4_new_under_allocation_failure() {
    let mut injected = 0;
    for cfg in configs() {
        for k in 0..16 {
            let b = base(&cfg);
            let dbs = Doorbells::new(&b.its[0], &b.lpis, DoorbellConfig::direct(8)).unwrap();
            let live = b.plat.live_bytes();
            let caps = RedistCaps::from_typer(b.model.redist(0).typer());
            let (res, reached) = with_allocation_failing(&b.plat, k, || {
                GicV4::new(&b.its, &b.lpis, &dbs, caps, V4Config::default())
            });
            if !reached {
                assert!(res.is_ok());
                break;
            }
            injected += 1;
            let e = res.err().unwrap();
            assert!(matches!(its_err(&e), Some(ItsError::Alloc(_))), "{e:?}");
            assert_eq!(b.plat.live_bytes(), live, "allocation {k}: leaked");
            assert!(GicV4::new(&b.its, &b.lpis, &dbs, caps, V4Config::default()).is_ok());
            b.model.assert_no_errors();
        }
    }
    assert_eq!(injected, 3, "the vPE ID bitmap, once per configuration");
}

/// A GIC with GICR_VPENDBASER.Dirty, GICv4.0 and GICv4.1.
fn dirty_configs() -> [ModelConfig; 2] {
    let mut v40 = ModelConfig::qemu(2);
    v40.dirty_reads = Some(2);
    [v40, ModelConfig::gicv41(2)]
}

#[test]
fn commit_and_deschedule_wait_for_dirty_bounded() {
    for cfg in dirty_configs() {
        with_rig(&cfg, |r| {
            let st = prepare_vlpis(r);
            let mut rd = r.model.redist(0);
            // Slow: waited for.
            r.model.set_dirty_reads(100);
            r.g.make_resident(st.vm(), 0, 0, &mut rd).unwrap();
            r.g.commit(&mut rd).unwrap();
            let d = r.g.make_non_resident(st.vm(), 0, &mut rd, false).unwrap();
            // GICv4.1 without a doorbell writes PendingLast = 1 and reports it (Linux).
            assert!(!d.dirty_timeout && d.pending_last == v41(r));
            // Never: commit reports it, and keeps reporting it until the parse ends.
            r.model.set_dirty_reads(u32::MAX);
            r.g.make_resident(st.vm(), 0, 0, &mut rd).unwrap();
            for _ in 0..2 {
                assert!(matches!(
                    r.g.commit(&mut rd),
                    Err(VpeError::DirtyTimeout { .. })
                ));
                consistent(r, &st, "commit timed out");
            }
            r.model.set_dirty_reads(0);
            r.g.commit(&mut rd).unwrap();
            // A deschedule that never sees Dirty clear: PendingLast assumed, as Linux does,
            // and the vPE is non-resident everywhere.
            r.model.set_dirty_reads(u32::MAX);
            let d = r.g.make_non_resident(st.vm(), 0, &mut rd, false).unwrap();
            assert!(d.dirty_timeout && d.pending_last);
            assert_eq!(
                st.vm().vpe(0).unwrap().residency(),
                Residency::NonResident {
                    pending_last: true,
                    idai: false
                }
            );
            consistent(r, &st, "deschedule timed out");
            r.model.set_dirty_reads(0);
            r.g.make_resident(st.vm(), 0, 0, &mut rd).unwrap();
            consistent(r, &st, "rescheduled");
            r.model.assert_no_errors();
        });
    }
}

#[test]
fn redistributor_bring_up_drops_a_stale_vpe_waiting_for_dirty() {
    let cfg = &dirty_configs()[0];
    with_rig(cfg, |r| {
        let mut rd = r.model.redist(1);
        // A vPE left resident by an earlier boot: its VPT (any memory) made resident.
        let vpt = r.lpis.alloc(1).unwrap();
        let stale = its_core::platform::DmaBuf::new(
            r.plat.clone(),
            core::alloc::Layout::from_size_align(0x2000, 0x1_0000).unwrap(),
        )
        .unwrap();
        rd.set_vpropbaser(
            its_core::regs::GicrVpropbaser::new()
                .with_id_bits(15)
                .into(),
        );
        // IDAI set: the earlier boot's IMPLEMENTATION DEFINED area is not to be trusted.
        rd.set_vpendbaser(1 << 63 | 1 << 62 | stale.pa().get());
        assert!(r.model.resident(1).is_some());
        r.model.set_dirty_reads(300);
        r.g.init_redistributor(&mut rd).unwrap();
        assert_eq!(r.model.resident(1), None);
        assert_eq!(rd.vpendbaser() & (1 << 60 | 1 << 63), 0, "Dirty waited for");
        r.model.assert_no_errors();
        drop((vpt, stale));
    });
}

/// GICv4.1 with DirectLPI: the waits on GICR_SYNCR (INVALLR), and none for the doorbell.
#[test]
fn direct_lpi_waits_for_syncr_bounded() {
    with_rig(&ModelConfig::gicv41(2), |r| {
        let st = prepare_vlpis(r);
        let mut rd0 = r.model.redist(0);
        let mut rd1 = r.model.redist(1);
        // Slow: waited for.
        r.model.set_syncr_busy_reads(50);
        r.g.invall_vpe(st.vm(), 1, Some(&mut rd1)).unwrap();
        r.g.make_resident(st.vm(), 0, 0, &mut rd0).unwrap();
        r.g.make_non_resident(st.vm(), 0, &mut rd0, true).unwrap();
        consistent(r, &st, "slow SYNCR");
        // Never: each call reports it, typed, and the records stay right.
        r.model.set_syncr_busy_reads(u32::MAX);
        let e = r.g.invall_vpe(st.vm(), 1, Some(&mut rd1)).unwrap_err();
        assert!(
            matches!(
                e,
                VpeError::Its(ItsError::RegisterTimeout {
                    what: "GICR_SYNCR.Busy",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(
            r.g.invall_vpe::<its_model::RedistHandle>(st.vm(), 1, None),
            Err(VpeError::NeedRedistributor)
        );
        // The doorbell's disable does not wait on GICR_SYNCR: on GICv4.1 it is invalidated
        // with INVDB through the ITS, which every redistributor sees.
        r.g.make_resident(st.vm(), 0, 0, &mut rd0).unwrap();
        r.g.make_non_resident(st.vm(), 0, &mut rd0, false).unwrap();
        assert!(!st.vm().vpe(0).unwrap().residency().is_resident());
        consistent(r, &st, "SYNCR never idle");
        // Revived: the same calls work.
        r.model.set_syncr_busy_reads(0);
        r.g.invall_vpe(st.vm(), 1, Some(&mut rd1)).unwrap();
        consistent(r, &st, "revived");
        r.model.assert_no_errors();
    });
}

/// GICv4.1: the vPE's default doorbell is delivered after `make_non_resident(.., true)`
/// without the hypervisor enabling the LPI itself (it used to stay disabled).
#[test]
fn gicv41_doorbell_rings_after_an_armed_deschedule() {
    with_rig(&ModelConfig::gicv41(2), |r| {
        let st = prepare_vlpis(r);
        let vpe = st.vm().vpe(0).unwrap();
        let mut rd = r.model.redist(0);
        r.g.make_resident(st.vm(), 0, 0, &mut rd).unwrap();
        r.g.make_non_resident(st.vm(), 0, &mut rd, true).unwrap();
        r.its().int_event(&st.devs[0], 2).unwrap();
        assert_eq!(r.model.take_lpi(0), Some(vpe.doorbell().get()));
        assert_eq!(r.dbs.handle(vpe.doorbell().get()), Some(vpe.id()));
        // Rescheduled, then descheduled without a doorbell: it stays silent.
        r.g.make_resident(st.vm(), 0, 0, &mut rd).unwrap();
        r.g.make_non_resident(st.vm(), 0, &mut rd, false).unwrap();
        assert!(!r.dbs.is_enabled(vpe.doorbell()));
        r.its().int_event(&st.devs[0], 2).unwrap();
        assert_eq!(r.model.take_lpi(0), None);
        consistent(r, &st, "GICv4.1 doorbell");
        r.model.assert_no_errors();
    });
}

/// Two ITSs that need a VMOVP each (GITS_TYPER.VMOVP = 0): a VM created while the second
/// ITS stalls at, or dies at, each of its commands leaves no vPE mapped anywhere.
#[test]
fn create_vm_on_two_itses_fails_cleanly_on_the_second() {
    let mut cfg = ModelConfig::qemu(2);
    cfg.its_count = 2;
    cfg.single_vmovp = false;
    let cmds = with_rig(&cfg, |r| {
        let before = r.model.commands(1).len();
        create_vm_call(r, &mut St::default()).unwrap();
        r.model.commands(1)[before..].len()
    });
    assert!(cmds >= 9, "{cmds}");
    for i in 0..cmds {
        for dies in [false, true] {
            with_rig(&cfg, |r| {
                let m = &r.model;
                let at = Some(m.counters(1).0 + i as u64);
                if dies {
                    m.die_at(1, at);
                } else {
                    m.stall_at(1, at);
                }
                let mem = r.memory();
                let mut st = St::default();
                let e = create_vm_call(r, &mut st).unwrap_err();
                let what = format!(
                    "create_vm, ITS 1 {} at {i}: {e:?}",
                    if dies { "dies" } else { "stalls" }
                );
                if dies {
                    assert!(
                        matches!(its_err(&e), Some(ItsError::Timeout { .. })),
                        "{what}"
                    );
                    // ITS 1 may still use the VM's tables: kept.
                    mem.assert_back(r.memory(), (1 << 16) + 3 * 0x2000, &what);
                } else {
                    assert!(
                        matches!(its_err(&e), Some(ItsError::Stalled { .. })),
                        "{what}"
                    );
                    mem.assert_back(r.memory(), 0, &what);
                    // Unmapped on ITS 0, and on ITS 1 up to the skipped command.
                    for id in 0..8 {
                        for n in 0..2 {
                            assert!(
                                m.vte(n, id).is_none_or(|t| !t.valid),
                                "{what}: ITS {n} vPE {id}"
                            );
                        }
                    }
                    create_vm_call(r, &mut st).unwrap();
                    consistent(r, &st, &what);
                }
            });
        }
    }
}

/// Every refusal of bad input by `GicV4`: the exact error, nothing sent, nothing allocated.
#[test]
fn bad_inputs_to_gicv4_calls_are_refused_before_anything_is_sent() {
    with_rig(&ModelConfig::qemu(2), |r| {
        let st = prepare_vlpis(r);
        let (vm, mut devs) = (&st.vms[0], st.devs);
        let dev = &mut devs[0];
        let mut other =
            r.g.create_vm(VmConfig {
                vintid_bits: 14,
                vpes: &[1],
            })
            .unwrap();
        let m = &r.model;
        let snap = || (m.counters(0).1, r.plat.live_bytes(), r.plat.allocations());
        let before = snap();
        let mut rd0 = m.redist(0);
        let vm_cfg = |vintid_bits, vpes| VmConfig { vintid_bits, vpes };
        // create_vm
        let bits = "vINTID bits must be from 14 to the GIC's maximum";
        for (b, v, e) in [
            (16, &[][..], VpeError::Config("a VM has 1 to 64 vPEs")),
            (16, &[0; 65][..], VpeError::Config("a VM has 1 to 64 vPEs")),
            (13, &[0][..], VpeError::Config(bits)),
            (17, &[0][..], VpeError::Config(bits)),
            (16, &[0, 5][..], VpeError::NoSuchCpu(5)),
        ] {
            assert_eq!(r.g.create_vm(vm_cfg(b, v)).err(), Some(e));
        }
        // map_vlpi(s)
        let fwd = |event| VpeError::AlreadyForwarded { device: 1, event };
        assert_eq!(
            r.g.map_vlpi(r.its(), dev, 1, vm, 2, vcfg(8300, true)),
            Err(VpeError::NoSuchVpe(2))
        );
        assert_eq!(
            r.g.map_vlpi(r.its(), dev, 4, vm, 0, vcfg(8300, true)),
            Err(VpeError::Its(ItsError::EventOutOfRange {
                device: 1,
                event: 4,
                events: 4
            }))
        );
        assert_eq!(
            r.g.map_vlpi(r.its(), dev, 2, vm, 0, vcfg(8300, true)),
            Err(fwd(2))
        );
        assert_eq!(
            r.g.map_vlpis(
                r.its(),
                dev,
                vm,
                &[(1, 0, vcfg(8300, true)), (1, 1, vcfg(8301, true))]
            ),
            Err(fwd(1))
        );
        assert_eq!(
            r.g.map_vlpi(r.its(), dev, 1, &other, 0, vcfg(16384, true)),
            Err(VpeError::VintidOutOfRange {
                vintid: 16384,
                bits: 14
            })
        );
        // unmap_vlpi, move_vlpi, update_vlpi
        let not_fwd = Err(VpeError::NotForwarded {
            device: 1,
            event: 1,
        });
        let wrong = Err(VpeError::WrongVm {
            device: 1,
            event: 2,
        });
        let p = VlpiProp {
            priority: 0,
            enabled: true,
            inv: true,
        };
        assert_eq!(r.g.unmap_vlpi(r.its(), dev, 1, vm, true), not_fwd);
        assert_eq!(r.g.unmap_vlpi(r.its(), dev, 2, &other, true), wrong);
        assert!(matches!(
            r.g.unmap_vlpi(r.its(), dev, 9, vm, true),
            Err(VpeError::Its(ItsError::EventOutOfRange { event: 9, .. }))
        ));
        assert_eq!(r.g.move_vlpi(r.its(), dev, 1, vm, 1), not_fwd);
        assert_eq!(r.g.move_vlpi(r.its(), dev, 2, &other, 0), wrong);
        assert_eq!(
            r.g.move_vlpi(r.its(), dev, 2, vm, 2),
            Err(VpeError::NoSuchVpe(2))
        );
        assert_eq!(r.g.update_vlpi(r.its(), dev, 1, vm, p), not_fwd);
        assert_eq!(r.g.update_vlpi(r.its(), dev, 2, &other, p), wrong);
        // invall_vpe, update_vsgi, invdb
        assert_eq!(
            r.g.invall_vpe(vm, 2, Some(&mut rd0)),
            Err(VpeError::NoSuchVpe(2))
        );
        let vsgi = VsgiConfig {
            sgi: SgiId::new(0).unwrap(),
            priority: SgiPriority::new(0).unwrap(),
            group: true,
            enable: true,
            clear: false,
        };
        assert_eq!(
            r.g.update_vsgi(vm, 0, vsgi),
            Err(VpeError::NeedsV41("VSGI"))
        );
        assert_eq!(r.g.invdb(vm, 0), Err(VpeError::NeedsV41("INVDB")));
        // Residency
        assert_eq!(
            r.g.make_resident(vm, 2, 0, &mut rd0),
            Err(VpeError::NoSuchVpe(2))
        );
        assert_eq!(
            r.g.make_resident(vm, 0, 2, &mut rd0),
            Err(VpeError::NoSuchCpu(2))
        );
        assert_eq!(
            r.g.make_non_resident(vm, 0, &mut rd0, true),
            Err(VpeError::Residency(
                vpe_sched::residency::Transition::NotResident
            ))
        );
        assert_eq!(
            r.g.make_non_resident(vm, 2, &mut rd0, true).err(),
            Some(VpeError::NoSuchVpe(2))
        );
        // Vm accessors
        assert_eq!(vm.vpe(2).err(), Some(VpeError::NoSuchVpe(2)));
        assert_eq!(
            vm.property(8191),
            Err(VpeError::VintidOutOfRange {
                vintid: 8191,
                bits: 16
            })
        );
        assert_eq!(snap(), before, "a refused call sent or allocated something");
        // Resident: a second residency, and a busy redistributor.
        r.g.make_resident(vm, 0, 0, &mut rd0).unwrap();
        assert_eq!(
            r.g.make_resident(vm, 0, 1, &mut m.redist(1)),
            Err(VpeError::Residency(
                vpe_sched::residency::Transition::AlreadyResident { cpu: 0 }
            ))
        );
        let busy = vm.vpe(0).unwrap().id().get();
        assert_eq!(
            r.g.make_resident(&other, 0, 0, &mut rd0),
            Err(VpeError::RedistBusy { cpu: 0, vpe: busy })
        );
        // destroy_vm: refused while in use, and the VM comes back whole.
        r.g.destroy_vm(&mut other).unwrap();
        let st = St {
            vms: st.vms,
            devs,
            ..St::default()
        };
        let mut st = st;
        let mut vm = st.vms.pop().unwrap();
        let e = r.g.destroy_vm(&mut vm).unwrap_err();
        assert_eq!(e, VpeError::InUse("a vPE is resident"));
        r.g.make_non_resident(&vm, 0, &mut rd0, false).unwrap();
        let e = r.g.destroy_vm(&mut vm).unwrap_err();
        assert_eq!(e, VpeError::InUse("vLPIs are still mapped"));
        st.vms.push(vm);
        consistent(r, &st, "after the refusals");
        m.assert_no_errors();
    });
}

#[test]
fn gicv4_needs_a_gicv4_its_and_vlpis() {
    let mut v3 = ModelConfig::qemu(1);
    v3.version = ItsVersion::V3;
    let b = base(&v3);
    let dbs = Doorbells::new(&b.its[0], &b.lpis, DoorbellConfig::direct(4)).unwrap();
    let caps = RedistCaps::from_typer(b.model.redist(0).typer());
    assert_eq!(
        GicV4::new(&b.its, &b.lpis, &dbs, caps, V4Config::default()).err(),
        Some(VpeError::NotV4("no ITS with GITS_TYPER.Virtual"))
    );
    let b4 = base(&ModelConfig::qemu(1));
    let dbs4 = Doorbells::new(&b4.its[0], &b4.lpis, DoorbellConfig::direct(4)).unwrap();
    assert_eq!(
        GicV4::new(&b4.its, &b4.lpis, &dbs4, caps, V4Config::default()).err(),
        Some(VpeError::NotV4("GICR_TYPER.VLPIS = 0"))
    );
    let caps4 = RedistCaps::from_typer(b4.model.redist(0).typer());
    let g = GicV4::new(&b4.its, &b4.lpis, &dbs4, caps4, V4Config::default()).unwrap();
    assert_eq!(
        g.init_redistributor(&mut b.model.redist(0)),
        Err(VpeError::NotV4("GICR_TYPER.VLPIS = 0"))
    );
    // More vPEs than doorbells: refused, and nothing is left allocated (the vPE table's
    // second-level page aside: it belongs to the table).
    let (live, l2) = (b4.plat.live_bytes(), b4.l2_bytes());
    assert_eq!(
        g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0; 5],
        })
        .err(),
        Some(VpeError::Doorbell(DoorbellError::Exhausted(5)))
    );
    assert_eq!(b4.plat.live_bytes(), live + b4.l2_bytes() - l2);
    b4.model.assert_no_errors();
}

/// `V4Config::max_vintid_bits` outside 14..=32 is refused (0 used to underflow in
/// `init_redistributor`); the ends of the range work.
#[test]
fn max_vintid_bits_is_validated() {
    let b4 = base(&ModelConfig::qemu(1));
    let dbs4 = Doorbells::new(&b4.its[0], &b4.lpis, DoorbellConfig::direct(4)).unwrap();
    let caps4 = RedistCaps::from_typer(b4.model.redist(0).typer());
    for bits in [0, 1, 13, 33, 255] {
        let cfg = V4Config {
            max_vintid_bits: bits,
            ..V4Config::default()
        };
        assert_eq!(
            GicV4::new(&b4.its, &b4.lpis, &dbs4, caps4, cfg).err(),
            Some(VpeError::Config(
                "V4Config::max_vintid_bits must be from 14 to 32"
            )),
            "{bits} bits"
        );
    }
    for bits in [14, 32] {
        let cfg = V4Config {
            max_vintid_bits: bits,
            ..V4Config::default()
        };
        let g = GicV4::new(&b4.its, &b4.lpis, &dbs4, caps4, cfg).unwrap();
        assert!((14..=bits).contains(&g.max_vintid_bits()), "{bits} bits");
        g.init_redistributor(&mut b4.model.redist(0)).unwrap();
    }
    b4.model.assert_no_errors();
}

/// `map_vlpis` where the ITS stalls on a VMAPTI and then dies while the driver gives that
/// event its host mapping back: the later items, whose VMAPTI the ITS did, are still
/// recorded (forwarded and counted), so `destroy_vm` cannot pass over live vLPIs. The
/// restore's error used to return at once and leave them unrecorded.
#[test]
fn map_vlpis_records_every_vmapti_when_a_restore_fails() {
    with_rig(&ModelConfig::qemu(2), |r| {
        let mut vm =
            r.g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0],
            })
            .unwrap();
        let host = r.lpis.alloc(2).unwrap();
        let mut dev = r.its().map_device(DeviceId::new(1), 4).unwrap();
        r.its()
            .map_events(&mut dev, &[(0, host.base, 0), (1, host.get(1).unwrap(), 0)])
            .unwrap();
        let items = [
            (0, 0, vcfg(8192, true)),
            (1, 0, vcfg(8193, true)),
            (2, 0, vcfg(8194, true)),
        ];
        // DISCARD 0, DISCARD 1, SYNC; VMAPTI 0 (stalls), VMAPTI 1, VMAPTI 2, VINVALL, VSYNC;
        // then the restore of event 0: MAPTI (the ITS dies there), SYNC.
        let m = &r.model;
        let done = m.counters(0).0;
        m.stall_at(0, Some(done + 3));
        m.die_at(0, Some(done + 8));
        let e = r.g.map_vlpis(r.its(), &mut dev, &vm, &items).unwrap_err();
        assert!(
            matches!(its_err(&e), Some(ItsError::Timeout { .. })),
            "the restore's error: {e:?}"
        );
        assert!(r.its().is_dead());
        // Event 0: neither forwarded nor (as far as the driver saw) restored.
        assert!(dev.event(0).unwrap().virt.is_none());
        assert!(m.ite(0, 1, 0).is_none());
        // Events 1 and 2: forwarded on the ITS, and so in the records.
        for ev in [1, 2] {
            let ite = m.ite(0, 1, ev).expect("VMAPTI done");
            assert!(
                !ite.physical && ite.intid == 8192 + ev,
                "event {ev}: {ite:?}"
            );
            let virt = dev.event(ev).unwrap().virt;
            assert!(
                virt.is_some_and(|v| v.vpe == vm.vpe(0).unwrap().id()),
                "event {ev}: {virt:?}"
            );
        }
        assert_eq!(dev.event(1).unwrap().phys.map(|p| p.lpi), host.get(1));
        assert_eq!(vm.vpe(0).unwrap().vlpis(), 2, "both VMAPTIs counted");
        let e = r.g.destroy_vm(&mut vm).unwrap_err();
        assert_eq!(e, VpeError::InUse("vLPIs are still mapped"));
        m.clear_errors();
        drop((vm, dev));
    });
}
