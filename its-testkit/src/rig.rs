// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bring-up rig: a host GIC (its-model) with LPIs on every redistributor, every ITS
//! brought up by its-cmdq, and on request the doorbells and the GICv4 layer.
//!
//! One rig for every test, the fault sweeps, the fuzz harness and the benchmarks; what differs
//! between them is the GIC's shape ([`ModelConfig`]) and a few [`Settings`].

use core::time::Duration;

use doorbell::{DoorbellConfig, DoorbellError, Doorbells, Redistributors};
use its_cmdq::{Its, ItsConfig, ItsError, ItsTable, Lpis, PendingTable, QueueConfig, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::{DistCaps, RedistCaps};
use its_core::cmd::ItsVersion;
use its_core::ids::DeviceId;
use its_core::mmio::RedistRegisters;
use its_core::regs::GicdTyper;
use its_model::{FakePlatform, GicModel, ItsHandle, ModelConfig};
use vpe_sched::{GicV4, V4Config, VpeError};

/// The platform every rig runs on.
pub type P = FakePlatform;
/// An ITS driver on the model.
pub type ModelIts = Its<ItsHandle, P>;
/// Doorbells on the model.
pub type ModelDoorbells<'a> = Doorbells<'a, ItsHandle, P>;
/// The GICv4 layer on the model.
pub type ModelGicV4<'a> = GicV4<'a, ItsHandle, P>;

/// The DeviceID of the doorbells' proxy device on a GIC without DirectLPI: the last one of
/// 16 bits, as Linux picks.
pub const PROXY_DEVICE: u32 = 0xffff;

/// How a rig brings the drivers up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The command queue of every ITS, in bytes.
    pub queue_bytes: usize,
    /// Every bounded wait of the bring-up and of the queues (GICR_WAKER, GITS_CTLR.Quiescent,
    /// a full queue, a batch's completion), on the model's stepping clock. `None`: the
    /// drivers' defaults (1 s), as a hypervisor would leave them.
    pub timeout: Option<Duration>,
}

impl Default for Settings {
    /// A 64 KiB queue (Linux's size) and 5 ms waits: a dead ITS is given up quickly, a slow
    /// one (a few thousand polls) is waited for.
    fn default() -> Self {
        Self {
            queue_bytes: 0x1_0000,
            timeout: Some(Duration::from_millis(5)),
        }
    }
}

impl Settings {
    /// These settings with a command queue of `bytes`.
    pub fn queue(self, bytes: usize) -> Self {
        Self {
            queue_bytes: bytes,
            ..self
        }
    }
}

/// GICD_TYPER as the model's distributor reports it.
pub fn dist_caps(cfg: &ModelConfig) -> DistCaps {
    DistCaps::from_typer(
        GicdTyper::new()
            .with_lpis(true)
            .with_dvis(cfg.version != ItsVersion::V3)
            .with_id_bits(cfg.dist_id_bits - 1),
        None,
    )
}

/// Every redistributor of `model`, as the ITS driver needs them.
pub fn redists(model: &GicModel) -> Vec<RedistInfo> {
    let cfg = model.config();
    (0..cfg.cpus)
        .map(|c| RedistInfo {
            rd_base: PhysAddr::new(cfg.rd_base(c)),
            typer: model.redist(c).typer(),
        })
        .collect()
}

/// The ITS driver's configuration for ITS `n` of a model of `cfg`, per `settings`, as a
/// hypervisor would make it: defaults but for the waits; ITS numbers and vPE table sharing
/// are set by [`Rig::bring_up_its`] from the ITSs brought up before.
pub fn its_config(cfg: &ModelConfig, settings: &Settings, n: usize) -> ItsConfig {
    let mut c = ItsConfig::new(dist_caps(cfg));
    c.queue = QueueConfig {
        bytes: settings.queue_bytes,
        ..QueueConfig::default()
    };
    if let Some(t) = settings.timeout {
        c.queue.full_timeout = t;
        c.queue.completion_timeout = t;
        c.quiescent_timeout = t;
    }
    let _ = n;
    c
}

/// The environment variable that makes every rig's model as strict as the architecture
/// ([`ModelConfig::harden`]) whatever shape a test asks for: `ITS_MODEL=hardware cargo test`
/// runs the suite on the hardware-like model.
pub const MODEL_ENV: &str = "ITS_MODEL";

/// `cfg`, hardened when [`MODEL_ENV`] says `hardware`.
pub fn model_config(cfg: ModelConfig) -> ModelConfig {
    match std::env::var(MODEL_ENV).as_deref() {
        Ok("hardware") => cfg.harden(),
        _ => cfg,
    }
}

/// The model's GIC, LPIs up on every redistributor, and its ITSs brought up.
pub struct Rig {
    /// The model.
    pub model: GicModel,
    /// The platform (memory accounting, events, allocation faults).
    pub plat: P,
    /// The model's shape.
    pub cfg: ModelConfig,
    /// How the drivers were brought up.
    pub settings: Settings,
    /// The LPI property table and INTID allocator.
    pub lpis: Lpis<P>,
    /// The pending table of each redistributor.
    pub pending: Vec<PendingTable<P>>,
    /// ITS `n` of the model, for n = 0 .. `cfg.its_count` (none on a rig from
    /// [`Rig::lpis_only`]).
    pub its: Vec<ModelIts>,
}

impl core::fmt::Debug for Rig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rig")
            .field("cfg", &self.cfg)
            .field("settings", &self.settings)
            .field("its", &self.its.len())
            .finish_non_exhaustive()
    }
}

impl Rig {
    /// A rig of `cfg` with the default [`Settings`].
    ///
    /// # Panics
    /// If bring-up fails: on a fault-free model, that is a bug in the drivers.
    pub fn new(cfg: ModelConfig) -> Self {
        Self::with(cfg, Settings::default())
    }

    /// A rig of `cfg` brought up with `settings`.
    ///
    /// # Panics
    /// If bring-up fails, with the driver's error and what the model recorded (often the
    /// cause).
    pub fn with(cfg: ModelConfig, settings: Settings) -> Self {
        let probe = model_config(cfg.clone());
        let plat = FakePlatform::new();
        let model = GicModel::new(probe, plat.clone());
        match Self::try_on(model.clone(), plat, cfg, settings) {
            Ok(r) => r,
            Err(e) => panic!(
                "bring-up on the model: {e}; the model recorded: {:?}",
                model.errors()
            ),
        }
    }

    /// A rig of `cfg` brought up with `settings`, or the first bring-up error.
    pub fn try_with(cfg: ModelConfig, settings: Settings) -> Result<Self, ItsError> {
        let plat = FakePlatform::new();
        let model = GicModel::new(model_config(cfg.clone()), plat.clone());
        Self::try_on(model, plat, cfg, settings)
    }

    fn try_on(
        model: GicModel,
        plat: FakePlatform,
        cfg: ModelConfig,
        settings: Settings,
    ) -> Result<Self, ItsError> {
        let mut rig = Self::lpis_on(model, plat, model_config(cfg), settings)?;
        for n in 0..rig.cfg.its_count {
            let its = rig.bring_up_its(n)?;
            rig.its.push(its);
        }
        Ok(rig)
    }

    /// The model with LPIs up on every redistributor, and no ITS brought up yet (see
    /// [`Rig::bring_up_its`]).
    pub fn lpis_only(cfg: ModelConfig, settings: Settings) -> Result<Self, ItsError> {
        let cfg = model_config(cfg);
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        Self::lpis_on(model, plat, cfg, settings)
    }

    fn lpis_on(
        model: GicModel,
        plat: FakePlatform,
        cfg: ModelConfig,
        settings: Settings,
    ) -> Result<Self, ItsError> {
        let lpis = Lpis::new(&dist_caps(&cfg), plat.clone())?;
        let wait = settings.timeout.unwrap_or(Duration::from_secs(1));
        let pending = (0..cfg.cpus)
            .map(|c| lpis.init_redistributor(&mut model.redist(c), wait))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            model,
            plat,
            cfg,
            settings,
            lpis,
            pending,
            its: Vec::new(),
        })
    }

    /// Brings ITS `n` up (what [`Rig::with`] does for every ITS), as a hypervisor would
    /// after the ITSs before it: an ITS number none of them has, and (GICv4.1) the vPE
    /// table of the first that shares its table with the same redistributors.
    pub fn bring_up_its(&self, n: usize) -> Result<ModelIts, ItsError> {
        let mut c = its_config(&self.cfg, &self.settings, n);
        c.its_numbers_taken = its_cmdq::its_numbers_in_use(&self.its);
        let me = self.model.its(n);
        let typer = its_core::mmio::ItsRegisters::typer(&me);
        let mpidr = its_core::mmio::ItsRegisters::mpidr(&me);
        if typer.svpet() != 0 {
            c.shared_vpe_table = self
                .its
                .iter()
                .find(|i| i.caps().svpet == typer.svpet() && i.affinity() == mpidr)
                .and_then(|i| i.vpe_baser());
        }
        Its::new(me, self.plat.clone(), &redists(&self.model), c)
    }

    /// ITS 0's driver.
    ///
    /// # Panics
    /// On a rig from [`Rig::lpis_only`].
    pub fn its(&self) -> &ModelIts {
        &self.its[0]
    }

    /// Bytes of second-level table pages of every ITS: they belong to the tables, which keep
    /// them once allocated.
    pub fn l2_bytes(&self) -> usize {
        let bytes = |t: Option<&ItsTable<P>>| t.map_or(0, |t| t.l2_pages() * t.page_size().bytes());
        self.its
            .iter()
            .map(|i| {
                bytes(Some(i.device_table())) + bytes(i.collection_table()) + bytes(i.vpe_table())
            })
            .sum()
    }

    /// DMA memory and LPIs in use now.
    pub fn memory(&self) -> Memory {
        Memory {
            live: self.plat.live_bytes(),
            l2: self.l2_bytes(),
            free_lpis: self.lpis.free_count(),
        }
    }

    /// Doorbells for `capacity` vPEs as a hypervisor would set them up on this GIC: through
    /// GICR_INVLPIR with DirectLPI, else through the proxy device [`PROXY_DEVICE`] (QEMU).
    pub fn doorbell_config(&self, capacity: u32) -> DoorbellConfig {
        if self.cfg.direct_lpi {
            DoorbellConfig::direct(capacity)
        } else {
            DoorbellConfig::proxy(DeviceId::new(PROXY_DEVICE), capacity)
        }
    }

    /// Doorbells per `cfg`, on ITS 0; with DirectLPI (no proxy device) they are given every
    /// redistributor of the model.
    pub fn doorbells(&self, cfg: DoorbellConfig) -> Result<ModelDoorbells<'_>, DoorbellError> {
        let dbs = Doorbells::new(self.its(), &self.lpis, cfg)?;
        Ok(match cfg.proxy {
            Some(_) => dbs,
            None => dbs.with_redistributors(self),
        })
    }

    /// The GICv4 layer on every ITS, with `dbs`, and the vLPI side of every redistributor
    /// brought up.
    pub fn gicv4<'a>(
        &'a self,
        dbs: &'a ModelDoorbells<'a>,
        cfg: V4Config,
    ) -> Result<ModelGicV4<'a>, VpeError> {
        let g = GicV4::new(
            &self.its,
            &self.lpis,
            dbs,
            RedistCaps::from_typer(self.model.redist(0).typer()),
            cfg,
        )?;
        for c in 0..self.cfg.cpus {
            g.init_redistributor(&mut self.model.redist(c))?;
        }
        Ok(g)
    }
}

/// Every redistributor of the model, for DirectLPI doorbells.
impl Redistributors for Rig {
    fn with_redist(&self, cpu: usize, f: &mut dyn FnMut(&mut dyn RedistRegisters)) -> bool {
        if cpu >= self.cfg.cpus {
            return false;
        }
        f(&mut self.model.redist(cpu));
        true
    }
}

/// A rig with the doorbells and the GICv4 layer up. It borrows the rig and the doorbells
/// ([`with_v4`]), or owns them for ever ([`V4::leak`]); it dereferences to the [`Rig`].
pub struct V4<'a> {
    /// The physical layer.
    pub rig: &'a Rig,
    /// The doorbells.
    pub dbs: &'a ModelDoorbells<'a>,
    /// The GICv4 layer.
    pub g: ModelGicV4<'a>,
}

impl core::fmt::Debug for V4<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("V4")
            .field("rig", self.rig)
            .finish_non_exhaustive()
    }
}

impl AsRef<Rig> for Rig {
    fn as_ref(&self) -> &Rig {
        self
    }
}

impl AsRef<Rig> for V4<'_> {
    fn as_ref(&self) -> &Rig {
        self.rig
    }
}

impl core::ops::Deref for V4<'_> {
    type Target = Rig;

    fn deref(&self) -> &Rig {
        self.rig
    }
}

/// Runs `f` on `rig` with doorbells per `dbs` and the GICv4 layer per `cfg` up, and no model
/// error from the bring-up.
///
/// # Panics
/// If bring-up fails or the model recorded an error.
pub fn with_v4<T>(
    rig: &Rig,
    dbs: DoorbellConfig,
    cfg: V4Config,
    f: impl FnOnce(&V4<'_>) -> T,
) -> T {
    let dbs = rig.doorbells(dbs).expect("doorbells");
    let g = rig.gicv4(&dbs, cfg).expect("GICv4 layer");
    rig.model.assert_no_errors();
    f(&V4 { rig, dbs: &dbs, g })
}

impl V4<'static> {
    /// The GICv4 layer on `rig`, the rig and the doorbells leaked (`GicV4` borrows them for
    /// its lifetime): for a test or a benchmark that builds a handful.
    ///
    /// # Panics
    /// If bring-up fails or the model recorded an error.
    pub fn leak(rig: Rig, dbs: DoorbellConfig, cfg: V4Config) -> Self {
        let rig: &'static Rig = Box::leak(Box::new(rig));
        let dbs: &'static ModelDoorbells<'static> =
            Box::leak(Box::new(rig.doorbells(dbs).expect("doorbells")));
        let g = rig.gicv4(dbs, cfg).expect("GICv4 layer");
        rig.model.assert_no_errors();
        Self { rig, dbs, g }
    }
}

/// DMA memory and LPIs in use, to check that a call that failed gave back what it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Bytes allocated from the platform.
    pub live: usize,
    /// Of which second-level table pages.
    pub l2: usize,
    /// LPI INTIDs free.
    pub free_lpis: u32,
}

impl Memory {
    /// Panics unless `now` is this memory again, but for second-level table pages allocated
    /// since (they belong to the tables) and `kept` bytes the driver keeps on purpose.
    #[track_caller]
    pub fn assert_back(self, now: Memory, kept: usize, what: &str) {
        assert_eq!(
            now.live,
            self.live + (now.l2 - self.l2) + kept,
            "{what}: DMA memory not back to its value before the call"
        );
        assert_eq!(now.free_lpis, self.free_lpis, "{what}: LPIs");
    }
}
