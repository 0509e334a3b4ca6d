// SPDX-License-Identifier: MIT OR Apache-2.0
//! The host model of a GICv4 (`its_core::fake`) with the driver stack brought up on it: the
//! physical side of the vITS's vpe-sched backend.

use core::time::Duration;

use doorbell::{DoorbellConfig, Doorbells};
use its_cmdq::{Its, ItsConfig, Lpis, QueueConfig, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::{DistCaps, RedistCaps};
use its_core::fake::{FakePlatform, GicModel, ItsHandle, ModelConfig, RedistHandle};
use its_core::ids::DeviceId;
use its_core::mmio::RedistRegisters;
use its_core::regs::GicdTyper;
use vpe_sched::{GicV4, V4Config};

pub type P = FakePlatform;
pub type G = GicV4<'static, ItsHandle, P>;

/// The doorbells' proxy device (QEMU has no DirectLPI).
pub const PROXY: u32 = 0xffff;

/// QEMU's GICv4.0 with `cpus` CPUs, its-cmdq, doorbells and vpe-sched brought up on it.
pub struct Host {
    pub model: GicModel,
    pub plat: P,
    pub its: &'static [Its<ItsHandle, P>],
    pub g: G,
}

pub fn host(cpus: usize) -> Host {
    let cfg = ModelConfig::qemu(cpus);
    let plat = FakePlatform::new();
    let model = GicModel::new(cfg.clone(), plat.clone());
    let dist = DistCaps::from_typer(
        GicdTyper::new()
            .with_lpis(true)
            .with_dvis(true)
            .with_id_bits(cfg.dist_id_bits - 1),
        None,
    );
    let lpis: &'static Lpis<P> = Box::leak(Box::new(Lpis::new(&dist, plat.clone()).unwrap()));
    for c in 0..cpus {
        let pend = lpis
            .init_redistributor(&mut model.redist(c), Duration::from_millis(1))
            .unwrap();
        Box::leak(Box::new(pend));
    }
    let rds: Vec<RedistInfo> = (0..cpus)
        .map(|c| RedistInfo {
            rd_base: PhysAddr::new(cfg.rd_base(c)),
            typer: model.redist(c).typer(),
        })
        .collect();
    let mut ic = ItsConfig::new(dist);
    ic.queue = QueueConfig {
        bytes: 0x1_0000,
        full_timeout: Duration::from_millis(5),
        completion_timeout: Duration::from_millis(5),
    };
    let its = vec![Its::new(model.its(0), plat.clone(), &rds, ic).unwrap()];
    let its: &'static [Its<ItsHandle, P>] = Box::leak(its.into_boxed_slice());
    let dbs = Box::leak(Box::new(
        Doorbells::new(
            &its[0],
            lpis,
            DoorbellConfig::proxy(DeviceId::new(PROXY), 64),
        )
        .unwrap(),
    ));
    let g = GicV4::new(
        its,
        lpis,
        dbs,
        RedistCaps::from_typer(model.redist(0).typer()),
        V4Config {
            dirty_timeout: Duration::from_millis(1),
            ..V4Config::default()
        },
    )
    .unwrap();
    for c in 0..cpus {
        g.init_redistributor(&mut model.redist(c)).unwrap();
    }
    model.assert_no_errors();
    Host {
        model,
        plat,
        its,
        g,
    }
}

impl Host {
    pub fn rd(&self, cpu: usize) -> RedistHandle {
        self.model.redist(cpu)
    }

    /// Memory held by second-level table pages (they belong to the tables and stay).
    pub fn l2_bytes(&self) -> usize {
        let t = |t: Option<&its_cmdq::ItsTable<P>>| {
            t.filter(|t| t.is_indirect())
                .map_or(0, |t| t.l2_pages() * t.page_size().bytes())
        };
        let i = &self.its[0];
        t(Some(i.device_table())) + t(i.collection_table()) + t(i.vpe_table())
    }
}
