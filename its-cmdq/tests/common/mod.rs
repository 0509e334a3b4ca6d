// SPDX-License-Identifier: MIT OR Apache-2.0
//! A host GIC for the tests: the model from its-core, redistributors brought up, an `Its`.
#![allow(dead_code, reason = "each test file uses a different part of the rig")]

use core::time::Duration;

use its_cmdq::{Its, ItsConfig, Lpis, QueueConfig, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::DistCaps;
use its_core::mmio::RedistRegisters;
use its_core::regs::GicdTyper;
use its_model::{FakePlatform, GicModel, ItsHandle, ModelConfig};

pub type P = FakePlatform;
pub type TestIts = Its<ItsHandle, P>;

pub struct Rig {
    pub model: GicModel,
    pub plat: P,
    pub lpis: Lpis<P>,
    pub pending: Vec<its_cmdq::PendingTable<P>>,
    pub its: TestIts,
}

pub fn dist(cfg: &ModelConfig) -> DistCaps {
    let t = GicdTyper::new()
        .with_lpis(true)
        .with_dvis(cfg.version != its_core::cmd::ItsVersion::V3)
        .with_id_bits(cfg.dist_id_bits - 1);
    DistCaps::from_typer(t, None)
}

pub fn redists(model: &GicModel) -> Vec<RedistInfo> {
    let cfg = model.config();
    (0..cfg.cpus)
        .map(|c| RedistInfo {
            rd_base: PhysAddr::new(cfg.rd_base(c)),
            typer: model.redist(c).typer(),
        })
        .collect()
}

/// LPIs brought up on every redistributor.
pub fn lpis(model: &GicModel, plat: &P) -> (Lpis<P>, Vec<its_cmdq::PendingTable<P>>) {
    let cfg = model.config();
    let lpis = Lpis::new(&dist(&cfg), plat.clone()).expect("LPI tables");
    let pending = (0..cfg.cpus)
        .map(|c| {
            lpis.init_redistributor(&mut model.redist(c), Duration::from_millis(10))
                .expect("redistributor")
        })
        .collect();
    (lpis, pending)
}

pub fn its_config(cfg: &ModelConfig, queue_bytes: usize) -> ItsConfig {
    let mut c = ItsConfig::new(dist(cfg));
    c.queue = QueueConfig {
        bytes: queue_bytes,
        full_timeout: Duration::from_millis(5),
        completion_timeout: Duration::from_millis(5),
    };
    c.quiescent_timeout = Duration::from_millis(5);
    c
}

impl Rig {
    pub fn new(cfg: ModelConfig) -> Self {
        Self::with_queue(cfg, 0x1_0000)
    }

    pub fn with_queue(cfg: ModelConfig, queue_bytes: usize) -> Self {
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let (lpis, pending) = lpis(&model, &plat);
        let its = Its::new(
            model.its(0),
            plat.clone(),
            &redists(&model),
            its_config(&cfg, queue_bytes),
        )
        .expect("ITS bring-up");
        Self {
            model,
            plat,
            lpis,
            pending,
            its,
        }
    }
}
