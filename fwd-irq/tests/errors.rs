// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every fallible public function of fwd-irq refuses bad input with its typed error and
//! leaves the vCPU's interrupt table as it was (the evidence behind docs/reliability.md).

use fwd_irq::ids::{ApIndex, LrIndex};
use fwd_irq::regs::IchVtr;
use fwd_irq::{
    Forward, FwdError, FwdMode, PIntId, VIntId, VgicCpu, VirqConfig, VtimerConfig, VtimerFwd,
};

fn v(n: u32) -> VIntId {
    VIntId::new(n).unwrap()
}

fn p(n: u32) -> PIntId {
    PIntId::new(n).unwrap()
}

fn hw(pintid: u32) -> Forward {
    Forward {
        pintid: p(pintid),
        mode: FwdMode::Hw,
    }
}

/// The table's content, to check a refused call changed nothing.
fn snapshot<const N: usize>(g: &VgicCpu<N>) -> Vec<String> {
    g.iter().map(|x| format!("{x:?}")).collect()
}

#[test]
fn ids_out_of_range() {
    assert_eq!(
        VIntId::new(1020),
        Err(FwdError::VIntIdOutOfRange { raw: 1020 })
    );
    assert_eq!(
        VIntId::new(u32::MAX),
        Err(FwdError::VIntIdOutOfRange { raw: u32::MAX })
    );
    assert_eq!(PIntId::new(15), Err(FwdError::PIntIdOutOfRange { raw: 15 }));
    assert_eq!(
        PIntId::new(1020),
        Err(FwdError::PIntIdOutOfRange { raw: 1020 })
    );
    assert_eq!(
        LrIndex::new(16),
        Err(FwdError::LrIndexOutOfRange {
            index: 16,
            nr_lrs: 16
        })
    );
    assert_eq!(
        LrIndex::new(usize::MAX),
        Err(FwdError::LrIndexOutOfRange {
            index: u32::MAX,
            nr_lrs: 16
        })
    );
    assert_eq!(
        ApIndex::new(4),
        Err(FwdError::ApIndexOutOfRange { index: 4 })
    );
}

#[test]
fn list_register_counts() {
    assert!(matches!(
        VgicCpu::<4>::new(0),
        Err(FwdError::LrIndexOutOfRange { index: 0, .. })
    ));
    assert!(matches!(
        VgicCpu::<4>::new(17),
        Err(FwdError::LrIndexOutOfRange { index: 17, .. })
    ));
    assert_eq!(
        VgicCpu::<4>::from_vtr(IchVtr::new().with_listregs(16)).map(|g| g.nr_lrs()),
        Err(FwdError::TooManyListRegs { reported: 17 })
    );
}

#[test]
fn table_operations_refuse_without_changing_anything() {
    let mut g = VgicCpu::<3>::new(4).unwrap();
    g.configure(v(1), VirqConfig::edge(0xa0)).unwrap();
    g.map(v(40), VirqConfig::level(0x80), hw(40)).unwrap();
    let before = snapshot(&g);
    // configure
    assert_eq!(
        g.configure(v(1), VirqConfig::edge(0)),
        Err(FwdError::AlreadyConfigured { vintid: 1 })
    );
    // map
    assert_eq!(
        g.map(v(40), VirqConfig::edge(0), hw(41)),
        Err(FwdError::AlreadyConfigured { vintid: 40 })
    );
    assert_eq!(
        g.map(v(41), VirqConfig::edge(0), hw(40)),
        Err(FwdError::PIntIdInUse {
            pintid: 40,
            vintid: 40
        })
    );
    // Every call on a vINTID that is not in the table.
    let none = Err(FwdError::NotConfigured { vintid: 9 });
    assert_eq!(g.remove(v(9)).map(|_| ()), none);
    assert_eq!(g.set_enabled(v(9), true), none);
    assert_eq!(g.inject(v(9)), none);
    assert_eq!(g.set_line_level(v(9), true), none);
    assert_eq!(g.set_pending_latch(v(9), true), none);
    assert_eq!(g.set_config(v(9), VirqConfig::edge(0)), none);
    assert_eq!(g.set_active(v(9), true), none);
    assert_eq!(
        g.on_phys_irq(p(41)),
        Err(FwdError::NotForwarded { pintid: 41 })
    );
    assert_eq!(snapshot(&g), before, "refused calls changed the table");
    // A full table.
    g.configure(v(2), VirqConfig::edge(0)).unwrap();
    let before = snapshot(&g);
    assert_eq!(
        g.configure(v(3), VirqConfig::edge(0)),
        Err(FwdError::TableFull { capacity: 3 })
    );
    assert_eq!(
        g.map(v(3), VirqConfig::edge(0), hw(50)),
        Err(FwdError::TableFull { capacity: 3 })
    );
    assert_eq!(snapshot(&g), before);
    // Still usable: remove, then the slot is free again.
    g.remove(v(2)).unwrap();
    g.configure(v(3), VirqConfig::edge(0)).unwrap();
}

#[test]
fn the_timer_refuses_a_taken_vintid_or_ppi() {
    let mut g = VgicCpu::<4>::new(4).unwrap();
    let cfg = VtimerConfig::bsa(FwdMode::Hw);
    g.configure(cfg.vintid, VirqConfig::edge(0)).unwrap();
    assert_eq!(
        VtimerFwd::new(&mut g, cfg).map(|_| ()),
        Err(FwdError::AlreadyConfigured {
            vintid: cfg.vintid.get()
        })
    );
    let mut g = VgicCpu::<4>::new(4).unwrap();
    g.map(
        v(30),
        VirqConfig::level(0),
        Forward {
            pintid: cfg.pintid,
            mode: FwdMode::Hw,
        },
    )
    .unwrap();
    assert_eq!(
        VtimerFwd::new(&mut g, cfg).map(|_| ()),
        Err(FwdError::PIntIdInUse {
            pintid: cfg.pintid.get(),
            vintid: 30
        })
    );
    let mut g = VgicCpu::<1>::new(4).unwrap();
    g.configure(v(1), VirqConfig::edge(0)).unwrap();
    assert_eq!(
        VtimerFwd::new(&mut g, cfg).map(|_| ()),
        Err(FwdError::TableFull { capacity: 1 })
    );
    let mut g = VgicCpu::<1>::new(4).unwrap();
    assert!(VtimerFwd::new(&mut g, cfg).is_ok());
}

/// The error is returned by value and may cross a hypercall boundary: it stays small.
#[test]
fn error_is_small() {
    let size = core::mem::size_of::<FwdError>();
    println!("FwdError: {size} bytes");
    assert!(size <= 16, "FwdError is {size} bytes");
}
