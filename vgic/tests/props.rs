// SPDX-License-Identifier: MIT OR Apache-2.0
//! Random guests: any sequence of accesses (any offset, size and value, from any vCPU, to
//! any frame), SGIs and guest runs is answered without error or panic, never loses an
//! effect, and leaves every vCPU table in agreement with what the registers report.

mod common;

use common::*;
use fwd_irq::{FwdMode, Trigger, VtimerConfig, VtimerFwd};
use proptest::prelude::*;
use vgic::{AccessSize, Outcome, SgiRegister, VgicConfig};

#[derive(Clone, Debug)]
enum Step {
    /// A write by `by` at `base + off` in frame `frame` (0: GICD, 1 + k: RD_base k,
    /// 5 + k: SGI_base k).
    Write {
        by: usize,
        frame: usize,
        off: u32,
        size: AccessSize,
        value: u64,
    },
    Read {
        by: usize,
        frame: usize,
        off: u32,
        size: AccessSize,
    },
    Sgi {
        by: usize,
        reg: SgiRegister,
        value: u64,
    },
    Run {
        vcpu: usize,
    },
    Pulse {
        intid: u32,
    },
}

const N: usize = 3;

fn frame_base(frame: usize) -> u64 {
    match frame {
        0 => GICD,
        f if f <= N => rd(f as u64 - 1),
        f => sgi((f - N - 1) as u64),
    }
}

fn size() -> impl Strategy<Value = AccessSize> {
    prop_oneof![
        1 => Just(AccessSize::Byte),
        1 => Just(AccessSize::Half),
        6 => Just(AccessSize::Word),
        2 => Just(AccessSize::Dword),
    ]
}

/// Offsets that name registers most of the time, anything sometimes.
fn offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => (0u32..0x400).prop_map(|o| o & !3),
        2 => 0x400u32..0x460,
        1 => (0xC00u32..0xC20).prop_map(|o| o & !3),
        2 => (0x6100u32..0x6300).prop_map(|o| o & !3),
        1 => (0u32..0x80).prop_map(|o| o & !3),
        1 => any::<u16>().prop_map(u32::from),
    ]
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => any::<u64>(),
        2 => (0u32..32).prop_map(|b| 1u64 << b),
        1 => 0u64..4,
        1 => Just(u64::from(u32::MAX)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..N, 0..(1 + 2 * N), offset(), size(), value()).prop_map(
            |(by, frame, off, size, value)| Step::Write { by, frame, off, size, value }
        ),
        2 => (0..N, 0..(1 + 2 * N), offset(), size())
            .prop_map(|(by, frame, off, size)| Step::Read { by, frame, off, size }),
        1 => (0..N, prop_oneof![Just(SgiRegister::Sgi1r), Just(SgiRegister::Sgi0r)], value())
            .prop_map(|(by, reg, value)| Step::Sgi { by, reg, value }),
        2 => (0..N).prop_map(|vcpu| Step::Run { vcpu }),
        1 => (32u32..96).prop_map(|intid| Step::Pulse { intid }),
    ]
}

fn rig() -> Rig {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, N).with_lpis(16), |g, cpus| {
        forward_level(g, 33, 33);
        let mut fx = vgic::Effects::new();
        g.forward_spi(v(40), hw(40), Trigger::Edge, &mut fx)
            .unwrap();
        // The fake physical GIC does not bank PPIs per PE: one forwarded timer only.
        VtimerFwd::new(&mut cpus[0], VtimerConfig::bsa(FwdMode::Hw)).unwrap();
    });
    rig.boot();
    rig
}

fn apply(rig: &mut Rig, step: &Step) {
    match *step {
        Step::Write {
            by,
            frame,
            off,
            size,
            value,
        } => {
            let a = rig.write(by, frame_base(frame) + u64::from(off), size, value);
            assert_eq!(a.value, 0);
        }
        Step::Read {
            by,
            frame,
            off,
            size,
        } => {
            let a = rig.read(by, frame_base(frame) + u64::from(off), size);
            assert_eq!(a.value & !size.mask(), 0);
            if matches!(a.outcome, Outcome::RazWi(_)) {
                assert_eq!(a.value, 0);
            }
        }
        Step::Sgi { by, reg, value } => {
            rig.vgic
                .sgi(vc(by as u8), &mut rig.cpus[by], reg, value, &mut rig.fx)
                .unwrap();
            rig.drain();
        }
        Step::Run { vcpu } => {
            rig.run(vcpu);
        }
        Step::Pulse { intid } => {
            if intid != 33 && intid != 40 {
                rig.vgic
                    .pulse(vgic::IrqRef::Spi(v(intid)), &mut rig.fx)
                    .unwrap();
                rig.drain();
            }
        }
    }
}

/// After every vCPU synced: each SPI is in exactly its holder's table, where it should be,
/// and every held interrupt's table entry matches the registers.
fn check(rig: &mut Rig) {
    for _ in 0..4 {
        for k in 0..N {
            rig.sync(k);
        }
    }
    let ctlr = rig.r32(0, GICD);
    for k in 0..N {
        let awake = rig.r32(k, rd(k as u64) + 0x14) == 0;
        for intid in 0..96u32 {
            let (base, reg_n) = if intid < 32 {
                (sgi(k as u64), 0)
            } else {
                (GICD, u64::from(intid / 32))
            };
            let bitn = intid % 32;
            let word =
                |rig: &mut Rig, off: u64| rig.r32(k, base + off + 4 * reg_n) >> bitn & 1 != 0;
            if intid >= 32 {
                let holder = rig.vgic.spi_holder(v(intid)).unwrap();
                let in_table = rig.cpus[k].virq(v(intid)).is_some();
                assert_eq!(
                    in_table,
                    holder == Some(vc(k as u8)),
                    "SPI {intid} in vCPU {k}"
                );
                if !in_table {
                    continue;
                }
                let target = rig.vgic.spi_target(v(intid)).unwrap();
                if target != holder {
                    assert!(
                        rig.cpus[k].virq(v(intid)).unwrap().is_active(),
                        "SPI {intid} waits on vCPU {k} only while active"
                    );
                }
            }
            let x = *rig.cpus[k].virq(v(intid)).unwrap();
            let group1 = word(rig, 0x80);
            let enabled = word(rig, 0x100);
            let pending = word(rig, 0x200);
            let active = word(rig, 0x300);
            let prio = rig.r32(k, base + 0x400 + u64::from(intid & !3)) >> (8 * (intid % 4)) & 0xFF;
            let edge =
                rig.r32(k, base + 0xC00 + 4 * u64::from(intid / 16)) >> (2 * (intid % 16) + 1) & 1
                    != 0;
            let cfg = x.config();
            let group_on = ctlr & if group1 { 2 } else { 1 } != 0;
            assert_eq!(cfg.group1, group1, "{k}/{intid} group");
            assert_eq!(
                cfg.enabled,
                enabled && group_on && awake,
                "{k}/{intid} enable"
            );
            assert_eq!(u32::from(cfg.priority), prio, "{k}/{intid} priority");
            assert_eq!(cfg.trigger == Trigger::Edge, edge, "{k}/{intid} trigger");
            assert_eq!(x.is_pending(), pending, "{k}/{intid} pending");
            assert_eq!(x.is_active(), active, "{k}/{intid} active");
        }
    }
    rig.assert_clean();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_guests_keep_tables_and_registers_in_step(
        steps in proptest::collection::vec(step(), 1..80)
    ) {
        let mut rig = rig();
        for s in &steps {
            apply(&mut rig, s);
        }
        check(&mut rig);
    }
}
