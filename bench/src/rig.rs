// SPDX-License-Identifier: MIT OR Apache-2.0
//! The host GIC the counting sections run against: `its_model::GicModel` (QEMU's GICv4.0
//! model, commands processed during the GITS_CWRITER write, as QEMU does) on a `FakePlatform`,
//! brought up the way the crates' own tests do (`its-cmdq/tests/common`,
//! `vpe-sched/tests/gicv4.rs`).
//!
//! The rigs are leaked (`Box::leak`): `GicV4` borrows the ITS, the LPI tables and the doorbells
//! for its lifetime, and a benchmark process builds a handful of them at most.

use core::time::Duration;

use doorbell::{DoorbellConfig, Doorbells};
use its_cmdq::{Its, ItsConfig, Lpis, PendingTable, QueueConfig, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::{DistCaps, RedistCaps};
use its_core::cmd::ItsVersion;
use its_core::ids::DeviceId;
use its_core::mmio::RedistRegisters;
use its_core::regs::GicdTyper;
use its_model::{FakePlatform, GicModel, ItsHandle, ModelConfig};
use vpe_sched::{GicV4, V4Config};

/// The platform.
pub type P = FakePlatform;
/// An ITS on the model.
pub type ModelIts = Its<ItsHandle, P>;
/// The GICv4 layer on the model.
pub type ModelGicV4 = GicV4<'static, ItsHandle, P>;

/// The command queue of every rig: Linux's size, 64 KiB (2048 slots).
pub const QUEUE_BYTES: usize = 0x1_0000;
/// The proxy device of the doorbells (QEMU has no DirectLPI): the last DeviceID, as Linux.
pub const PROXY_DEVICE: u32 = 0xffff;

/// GICD_TYPER of the model.
pub fn dist(cfg: &ModelConfig) -> DistCaps {
    DistCaps::from_typer(
        GicdTyper::new()
            .with_lpis(true)
            .with_dvis(cfg.version != ItsVersion::V3)
            .with_id_bits(cfg.dist_id_bits - 1),
        None,
    )
}

fn redists(model: &GicModel) -> Vec<RedistInfo> {
    let cfg = model.config();
    (0..cfg.cpus)
        .map(|c| RedistInfo {
            rd_base: PhysAddr::new(cfg.rd_base(c)),
            typer: model.redist(c).typer(),
        })
        .collect()
}

/// The physical layer: the model, LPIs on every redistributor, one ITS.
pub struct Rig {
    /// The model.
    pub model: GicModel,
    /// The platform (allocation accounting).
    pub plat: P,
    /// LPI tables.
    pub lpis: &'static Lpis<P>,
    /// The ITS (a one-element slice, as `GicV4::new` wants it).
    pub its: &'static [ModelIts],
    _pending: Vec<PendingTable<P>>,
}

impl Rig {
    /// Brings up LPIs and the ITS on a fresh model.
    ///
    /// # Panics
    /// If bring-up fails: the model is QEMU's, so that is a bug in the crates.
    pub fn new(cfg: ModelConfig) -> Self {
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let d = dist(&cfg);
        let lpis: &'static Lpis<P> =
            Box::leak(Box::new(Lpis::new(&d, plat.clone()).expect("LPI tables")));
        let pending = (0..cfg.cpus)
            .map(|c| {
                lpis.init_redistributor(&mut model.redist(c), Duration::from_millis(1))
                    .expect("redistributor")
            })
            .collect();
        let mut c = ItsConfig::new(d);
        c.queue = QueueConfig {
            bytes: QUEUE_BYTES,
            ..QueueConfig::default()
        };
        let its = Its::new(model.its(0), plat.clone(), &redists(&model), c).expect("ITS");
        let its: &'static [ModelIts] = Box::leak(vec![its].into_boxed_slice());
        // The bring-up's events stay in the log (`table-memory` reads its allocations); the
        // counting sections run thousands of commands, so nothing more is recorded.
        plat.set_recording(false);
        Self {
            model,
            plat,
            lpis,
            its,
            _pending: pending,
        }
    }

    /// The ITS.
    pub fn its(&self) -> &'static ModelIts {
        &self.its[0]
    }

    /// Panics with the model's errors if it recorded any (what QEMU would log with
    /// `-d guest_errors`, or a driver bug it tolerates).
    pub fn assert_clean(&self) {
        self.model.assert_no_errors();
    }
}

/// The physical layer plus the GICv4 layer (doorbells through a proxy device).
pub struct V4Rig {
    /// The physical layer.
    pub rig: Rig,
    /// The GICv4 layer.
    pub g4: ModelGicV4,
}

impl V4Rig {
    /// Brings up the GICv4 layer on `cfg` (which must be GICv4).
    ///
    /// # Panics
    /// If bring-up fails.
    pub fn new(cfg: ModelConfig) -> Self {
        let rig = Rig::new(cfg.clone());
        let dbs: &'static Doorbells<'static, ItsHandle, P> = Box::leak(Box::new(
            Doorbells::new(
                rig.its(),
                rig.lpis,
                DoorbellConfig::proxy(DeviceId::new(PROXY_DEVICE), 256),
            )
            .expect("doorbells"),
        ));
        let g4 = GicV4::new(
            rig.its,
            rig.lpis,
            dbs,
            RedistCaps::from_typer(rig.model.redist(0).typer()),
            V4Config::default(),
        )
        .expect("GICv4 layer");
        for c in 0..cfg.cpus {
            g4.init_redistributor(&mut rig.model.redist(c))
                .expect("vLPI redistributor");
        }
        rig.assert_clean();
        Self { rig, g4 }
    }
}
