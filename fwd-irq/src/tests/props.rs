// SPDX-License-Identifier: MIT OR Apache-2.0
//! Property tests: random pending sets are delivered in priority order, each exactly once,
//! whatever the number of list registers; list-register values round-trip.

use std::collections::BTreeMap;
use std::vec::Vec;

use proptest::prelude::*;

use super::{Rig, p, v};
use crate::fake::GuestExit;
use crate::hw::PhysIrqState;
use crate::regs::{IchLr, LrState};
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Virtual,
    Hw,
    EoiMaintenance,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Virtual),
        Just(Kind::Hw),
        Just(Kind::EoiMaintenance)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn delivery_is_in_priority_order_and_complete(
        nr_lrs in 1usize..=16,
        set in proptest::collection::btree_map(32u32..1020, (any::<u8>(), kind()), 1..40),
    ) {
        let set: BTreeMap<u32, (u8, Kind)> = set;
        let mut rig = Rig::new(nr_lrs);
        for (&n, &(prio, kind)) in &set {
            let cfg = VirqConfig::edge(prio);
            match kind {
                Kind::Virtual => {
                    rig.vgic.configure(v(n), cfg).unwrap();
                    rig.vgic.inject(v(n)).unwrap();
                }
                Kind::Hw | Kind::EoiMaintenance => {
                    let mode = if matches!(kind, Kind::Hw) { FwdMode::Hw } else { FwdMode::EoiMaintenance };
                    rig.vgic.map(v(n), cfg, Forward { pintid: p(n), mode }).unwrap();
                    // The host took the physical interrupt and left it active.
                    rig.gic.configure(n, Trigger::Edge, prio);
                    rig.gic.set_active(p(n), true);
                    rig.vgic.on_phys_irq(p(n)).unwrap();
                }
            }
        }
        rig.gic.clear_log();

        let mut rounds = 0;
        loop {
            rounds += 1;
            prop_assert!(rounds <= 2 * set.len() + 2, "no progress");
            let plan = rig.enter();
            prop_assert!(plan.lrs().len() <= nr_lrs);
            prop_assert!(plan.lrs().iter().all(|lr| !(lr.hw() && lr.state() == LrState::PendingActive)));
            let why = rig.run();
            rig.exit();
            if why == GuestExit::Idle && !rig.vgic.has_pending() {
                break;
            }
            prop_assert_ne!(why, GuestExit::PhysIrq);
        }

        let mut expected: Vec<(u8, u32)> = set.iter().map(|(&n, &(prio, _))| (prio, n)).collect();
        expected.sort_unstable();
        let expected: Vec<u32> = expected.into_iter().map(|(_, n)| n).collect();
        prop_assert_eq!(rig.ich.delivered(), &expected[..]);
        for &n in set.keys() {
            prop_assert!(!rig.gic.active(n), "pINTID {} left active", n);
            let virq = rig.vgic.virq(v(n)).unwrap();
            prop_assert!(!virq.is_pending() && !virq.is_active());
        }
        rig.assert_clean();
    }

    #[test]
    fn lr_values_round_trip(bits in any::<u64>()) {
        let lr = IchLr::from_bits(bits);
        prop_assert_eq!(lr.into_bits(), bits);
        // Every field reads back what the constructors put in.
        let vintid = lr.vintid() % 1020;
        let pintid = 16 + (bits >> 32) as u32 % 1004;
        let hw = IchLr::hw_irq(v(vintid), p(pintid), lr.priority(), lr.group(), lr.state());
        prop_assert_eq!(hw.vintid(), vintid);
        prop_assert_eq!(hw.pintid(), Some(pintid as u16));
        prop_assert_eq!(hw.priority(), lr.priority());
        prop_assert_eq!(hw.group(), lr.group());
        prop_assert_eq!(hw.state(), lr.state());
        prop_assert!(!hw.eoi());
        let virt = IchLr::virtual_irq(v(vintid), lr.priority(), lr.group(), lr.state(), true);
        prop_assert!(virt.eoi() && virt.pintid().is_none());
        prop_assert_eq!(virt.into_bits() >> 32 & 0x1FFF, 1 << 9);
    }
}
