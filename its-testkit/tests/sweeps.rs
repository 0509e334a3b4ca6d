// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sweeps catch what they are for: a call that leaks on an allocation failure, one that
//! hides a stall, a dead ITS that is still written to; and they pass a call that does none of
//! that, counting the faults they injected.

use core::alloc::Layout;

use its_cmdq::{Device, ItsError};
use its_core::ids::DeviceId;
use its_core::mmio::ItsRegisters;
use its_core::platform::DmaBuf;
use its_model::ModelConfig;
use its_testkit::sweep::{self, On, Op, Subject};
use its_testkit::{P, Rig};

/// A layer as simple as the sweeps allow: the ITS driver and the devices a test holds.
/// `Devices<true>` is careless: its "every later call reports the ITS dead" writes
/// GITS_CWRITER.
struct Devices<const CARELESS: bool = false>;

impl<const CARELESS: bool> Subject for Devices<CARELESS> {
    type World<'r> = Rig;
    type State<'r> = Vec<Device<P>>;
    type Records = usize;
    type Error = ItsError;

    fn with_world<T>(cfg: &ModelConfig, f: impl for<'r> FnOnce(&'r Rig) -> T) -> T {
        f(&Rig::new(cfg.clone()))
    }
    fn its_error(e: &ItsError) -> Option<&ItsError> {
        Some(e)
    }
    fn consistent(w: &Rig, st: &Vec<Device<P>>, what: &str) {
        for d in st {
            let dte = w.model.dte(0, d.id().get());
            assert!(dte.is_some_and(|t| t.valid), "{what}: {dte:?}");
        }
    }
    fn all_dead(w: &Rig, _: &mut Vec<Device<P>>, what: &str) {
        if CARELESS {
            let mut h = w.model.its(0);
            h.set_cwriter(h.cwriter());
        }
        let e = w.its().map_device(DeviceId::new(99), 2).err();
        assert_eq!(e, Some(ItsError::Dead), "{what}");
    }
    fn records(st: &Vec<Device<P>>) -> usize {
        st.len()
    }
    fn confirmed_only(_: &Rig, st: &Vec<Device<P>>, before: &usize, what: &str) {
        assert_eq!(
            st.len(),
            *before,
            "{what}: a device the ITS did not confirm"
        );
    }
}

fn map_device(w: &Rig, st: &mut Vec<Device<P>>) -> Result<(), ItsError> {
    st.push(w.its().map_device(DeviceId::new(20000), 8)?);
    Ok(())
}

/// Maps device 20000: a second-level page, an ITT and event records, and one MAPD.
fn good() -> Op<Devices> {
    Op {
        name: "map_device",
        prepare: |_| Vec::new(),
        call: map_device,
        retry: map_device,
        goal: |w, st| {
            assert_eq!(st.len(), 1);
            assert!(w.model.dte(0, 20000).is_some_and(|d| d.valid));
        },
        heals: false,
        // The ITT the ITS may still use.
        kept_on_timeout: Some(|w, _, _| {
            (8 * usize::from(w.its().caps().itt_entry_bytes)).next_multiple_of(256)
        }),
    }
}

fn on(op: Op<Devices>) -> On<Devices> {
    On {
        cfg: ModelConfig::qemu(1),
        op,
    }
}

#[test]
fn a_sound_call_passes_every_sweep() {
    let cases = sweep::grid(
        [ModelConfig::qemu(1), ModelConfig::qemu(2)],
        || vec![good()],
    );
    assert_eq!(cases.len(), 2);
    let allocs = sweep::total(&cases, sweep::allocation_failures, "allocation faults", 6);
    assert_eq!(allocs, 6, "3 allocations, on two GICs");
    assert!(matches!(
        sweep::commands(&cases[0])[..],
        [its_core::cmd::Command::Mapd { valid: true, .. }]
    ));
    assert_eq!(sweep::total(&cases, sweep::stalls, "stalls", 2), 2);
    assert_eq!(sweep::total(&cases, sweep::deaths, "deaths", 2), 2);
    sweep::slow_its(&cases[0], &[1, 50], Some(1_000_000));
}

#[test]
#[should_panic(expected = "0 deaths injected, expected 1 or more")]
fn a_sweep_that_reaches_nothing_fails() {
    let mut op = good();
    op.call = |_, _| Ok(());
    op.goal = |_, _| {};
    sweep::total(&[on(op)], sweep::deaths, "deaths", 1);
}

#[test]
#[should_panic(expected = "DMA memory not back")]
fn a_leak_on_an_allocation_failure_is_caught() {
    let mut op = good();
    // Takes a buffer, then maps the device; on failure the buffer is forgotten.
    op.call = |w, st| {
        let layout = Layout::from_size_align(0x1000, 0x1000).unwrap();
        let buf = DmaBuf::new(w.plat.clone(), layout)?;
        let r = map_device(w, st);
        if r.is_err() {
            core::mem::forget(buf);
        }
        r
    };
    sweep::allocation_failures(&on(op));
}

#[test]
#[should_panic(expected = "was not reported")]
fn a_hidden_stall_is_caught() {
    let mut op = good();
    op.call = |w, st| {
        let _ = map_device(w, st);
        Ok(())
    };
    sweep::stalls(&on(op));
}

#[test]
#[should_panic(expected = "a command was written")]
fn writing_to_a_dead_its_is_caught() {
    let op = Op::<Devices<true>> {
        name: "invall",
        prepare: |_| Vec::new(),
        call: |w, _| w.its().invall(0),
        retry: |w, _| w.its().invall(0),
        goal: |_, _| {},
        heals: false,
        kept_on_timeout: None,
    };
    sweep::deaths(&On {
        cfg: ModelConfig::qemu(1),
        op,
    });
}
