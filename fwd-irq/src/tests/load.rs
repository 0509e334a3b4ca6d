// SPDX-License-Identifier: MIT OR Apache-2.0
//! vCPU load on a PE whose list registers another context left behind.

use super::{Rig, v};
use crate::fake::GuestExit;
use crate::regs::{IchVmcr, LrState};
use crate::vgic::{CpuIfState, VgicCpu, VirqConfig};

/// Two vCPUs take turns on one PE. A lists three interrupts its guest never takes (say it
/// runs with interrupts masked) and is put; fold leaves those list registers valid, parked
/// behind ICH_HCR_EL2.En = 0. B, which last listed a single interrupt, is loaded. Its
/// populate must zero every list register, not just the one B itself wrote before, or B's
/// guest would take A's interrupts as soon as En = 1.
#[test]
fn load_zeroes_list_registers_another_vcpu_left_valid() {
    let mut rig = Rig::new(4);
    let guest = CpuIfState {
        vmcr: IchVmcr::group1_all(),
        ..CpuIfState::default()
    };
    let mut a = rig.vgic.clone();
    a.set_cpuif(guest);
    let mut b: VgicCpu<64> = rig.vgic.clone();
    b.set_cpuif(guest);
    b.configure(v(40), VirqConfig::edge(0x80)).unwrap();
    for n in [50, 51, 52] {
        a.configure(v(n), VirqConfig::edge(0x40)).unwrap();
        a.inject(v(n)).unwrap();
    }

    // B runs once with one interrupt: from then on it believes only LR0 is dirty.
    b.restore_cpuif(&mut rig.ich);
    b.inject(v(40)).unwrap();
    b.populate_lrs(&mut rig.ich);
    assert_eq!(
        rig.ich.guest_run(&mut rig.gic, 8, |_, _| {}),
        GuestExit::Idle
    );
    b.fold_lrs(&mut rig.ich, &mut rig.gic);
    b.save_cpuif(&rig.ich);

    // A runs with its guest's interrupts masked: LR0..LR2 stay pending, and A is put.
    a.restore_cpuif(&mut rig.ich);
    a.populate_lrs(&mut rig.ich);
    a.fold_lrs(&mut rig.ich, &mut rig.gic);
    a.save_cpuif(&rig.ich);
    assert_eq!(
        rig.ich.lrs()[1..3]
            .iter()
            .filter(|lr| lr.state() == LrState::Pending)
            .count(),
        2,
        "A's entries are still in LR1 and LR2"
    );

    // B is loaded again with one interrupt pending.
    b.restore_cpuif(&mut rig.ich);
    b.inject(v(40)).unwrap();
    let plan = b.populate_lrs(&mut rig.ich);
    assert_eq!(plan.writes().count(), 4, "every list register rewritten");
    assert!(
        rig.ich.lrs()[1..]
            .iter()
            .all(|lr| lr.state() == LrState::Invalid),
        "stale entries left: {:?}",
        rig.ich.lrs()
    );
    assert_eq!(
        rig.ich.guest_run(&mut rig.gic, 8, |_, _| {}),
        GuestExit::Idle
    );
    assert_eq!(
        rig.ich.delivered(),
        [40, 40],
        "B's guest saw only B's interrupt"
    );
    b.fold_lrs(&mut rig.ich, &mut rig.gic);

    // Without a load in between, populate goes back to zeroing only what it wrote.
    b.inject(v(40)).unwrap();
    assert_eq!(b.populate_lrs(&mut rig.ich).writes().count(), 1);
    rig.assert_clean();
}
