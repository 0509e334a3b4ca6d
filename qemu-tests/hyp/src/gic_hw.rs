// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one owner of the GIC's MMIO: distributor, redistributors, ITS frames.
//!
//! [`claim`] runs once, at boot, on the boot CPU. It makes the only `UniqueMmioPointer`s to the
//! GIC this image ever has, over `its-core`'s register blocks ([`GicdRegs`], [`GicrRegs`],
//! [`GitsRegs`], [`GitsTranslationRegs`]), finds which redistributor belongs to which CPU
//! (GICR_TYPER.Affinity), and keeps every block behind its own lock in [`GicHw`], a `'static`
//! that [`get`] returns. Code that needs a block borrows it:
//!
//! | Block | Lent as | Notes |
//! |---|---|---|
//! | distributor | [`GicHw::distributor`] | one lock; SPI set-up, GICD_CTLR/TYPER |
//! | redistributor of CPU `i` | [`GicHw::redistributor`]`(i)` | one lock per CPU: CPUs do not contend for each other's |
//! | ITS control frame | [`GicHw::its_frame`] | taken by the ITS driver for as long as it lives ([`ItsFrame`] holds the lock) |
//! | ITS translation frame | [`GicHw::translater_write`] | one write under its lock |
//!
//! Register offsets and fields all come from `its-core` (`its_core::mmio`, `its_core::regs`)
//! and `fwd-irq` (`fwd_irq::mmio::IrqStateRegs`, the pending/active banks shared by GICD and
//! a redistributor's SGI frame); this module writes none by hand. The CPU interface (system
//! registers: acknowledge, EOI, SGIs) is at the end: it is per CPU by nature and needs no
//! owner.
//!
//! # Lock order
//! The distributor before a redistributor ([`GicHw::irq_state`] holds both). None of these
//! locks is taken in an interrupt handler: the EL2 IRQ path uses only system registers.
//!
//! # Reuse
//! Nothing here knows about scenarios: a hypervisor built from these pieces calls [`claim`],
//! [`GicHw::init_distributor`] once and [`GicHw::init_cpu`] on each CPU, then lends the
//! blocks to the driver crates (`its_cmdq::Its::new(hw.its_frame()?, ..)`,
//! `lpis.init_redistributor(&mut *hw.redistributor(cpu)?, ..)`).

use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::time::Duration;

use common::platform::{MAX_CPUS, RAM_BASE};
use common::sync::{SpinLock, SpinLockGuard};
use common::timer::poll_until;
use common::{read_sysreg, write_sysreg};
use fwd_irq::PIntId;
use fwd_irq::hw::PhysIrqState;
use fwd_irq::mmio::{GicIrqState, IrqStateRegs};
use its_cmdq::RedistInfo;
use its_core::addr::PhysAddr;
use its_core::discover::{GicDescription, MmioRegion};
use its_core::mmio::{
    GicdRegs, GicrRegs, GitsRegs, GitsTranslationRegs, ItsRegisters, RedistRegisters,
};
use its_core::regs::{
    GicdCtlr, GicdTyper, GicrTyper, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter,
    GitsTyper,
};
use safe_mmio::{UniqueMmioPointer, field, field_shared};
use spin::Once;

/// How long a register write may stay pending (RWP) or a redistributor take to wake.
const REG_TIMEOUT: Duration = Duration::from_millis(100);

/// INTIDs 1020-1023 are special; 1023 = spurious (nothing pending).
pub const SPURIOUS: u32 = 1023;

/// A GIC set-up step that did not complete.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum GicError {
    /// GICD_CTLR.RWP stayed set.
    DistributorRwpTimeout,
    /// No redistributor has this CPU's affinity.
    NoRedistributor {
        /// The CPU index looked for.
        cpu: usize,
    },
    /// GICR_WAKER.ChildrenAsleep stayed set.
    WakeTimeout,
    /// Not an SGI or PPI (INTID 0..=31), or not an SPI (32..=1019).
    BadIntid(u32),
}

/// The distributor's register block, as lent.
pub type Gicd = UniqueMmioPointer<'static, GicdRegs>;
/// A redistributor's register block (RD, SGI and VLPI frames), as lent.
pub type Gicr = UniqueMmioPointer<'static, GicrRegs>;

/// A redistributor and what GICR_TYPER said about it at boot.
struct Redist {
    info: RedistInfo,
    regs: SpinLock<Gicr>,
}

/// The GIC's MMIO blocks, each behind its lock. See the module documentation.
pub struct GicHw {
    gicd: SpinLock<Gicd>,
    redists: [Option<Redist>; MAX_CPUS],
    /// CPUs `0..cpus` all have a redistributor (collection `i` on CPU `i` needs no gap).
    cpus: usize,
    its: SpinLock<UniqueMmioPointer<'static, GitsRegs>>,
    translation: SpinLock<UniqueMmioPointer<'static, GitsTranslationRegs>>,
    /// The ITS's control frame's physical address.
    its_base: u64,
}

static GIC_HW: Once<GicHw> = Once::new();

/// Makes the GIC's owner, once; later calls return the same one.
///
/// Claims the MMIO of the GIC QEMU's device tree describes (its distributor, first
/// redistributor region and first ITS, found by `its_core::discover`) and finds the
/// redistributors. Touches no register but GICR_TYPER.
///
/// # Panics
/// If QEMU's device tree is missing or names no usable GIC, or a frame lies outside the
/// Device-memory window the image maps ([`MMIO_WINDOW`]): nothing could run without it.
pub fn claim() -> &'static GicHw {
    GIC_HW.call_once(|| {
        let frames = Frames::from_qemu_dtb().expect("QEMU's device tree describes the GIC");
        // SAFETY: `Once` runs this at most once in the image's life, so the pointers made
        // inside are the only ones to these frames (nothing else in the hyp makes GIC
        // pointers); `Frames` checked they lie in the identity-mapped Device window.
        unsafe { GicHw::new(&frames) }
    })
}

/// Where the image maps Device memory, identity: the first GiB, below RAM
/// (`common::mmu::init_tables`).
pub const MMIO_WINDOW: core::ops::Range<u64> = 0..RAM_BASE as u64;

/// The GIC's frames, from the device tree.
#[derive(Clone, Copy, Debug)]
struct Frames {
    gicd: MmioRegion,
    gicr: MmioRegion,
    /// The distance between redistributors when the tree says (`redistributor-stride`).
    gicr_stride: Option<u64>,
    its: MmioRegion,
}

impl Frames {
    /// The frames QEMU's device tree names, if it has one describing a GIC with an ITS whose
    /// frames all lie in [`MMIO_WINDOW`].
    fn from_qemu_dtb() -> Option<Self> {
        let desc = GicDescription::from_fdt(crate::rawmem::qemu_dtb()?).ok()?;
        let frames = Self {
            gicd: desc.distributor(),
            gicr: *desc.redistributor_regions().first()?,
            gicr_stride: desc.redistributor_stride(),
            its: desc.its().first()?.region,
        };
        let mapped =
            |r: MmioRegion| MMIO_WINDOW.contains(&r.base().get()) && r.end() <= MMIO_WINDOW.end;
        // The ITS's two 64 KiB frames, control and translation.
        let its_frames = frames.its.size() >= 0x2_0000;
        (mapped(frames.gicd) && mapped(frames.gicr) && mapped(frames.its) && its_frames)
            .then_some(frames)
    }
}

/// The GIC's owner.
///
/// # Panics
/// If [`claim`] has not run: the hyp's `main` calls it before anything else uses the GIC.
pub fn get() -> &'static GicHw {
    GIC_HW
        .get()
        .expect("gic_hw::claim runs at boot, before any use of the GIC")
}

/// A block pointer to the frame at `base`.
///
/// # Safety
/// `base` is a mapped frame of the GIC holding a `T`, and no other pointer to it exists or will
/// be made while the result lives.
unsafe fn block<T>(base: usize) -> UniqueMmioPointer<'static, T> {
    // SAFETY: our caller's promise; the GIC's frames are at non-zero addresses.
    unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(base as *mut T)) }
}

impl GicHw {
    /// # Safety
    /// Called once in the image's life (see [`claim`]), with frames the image maps as Device
    /// memory.
    unsafe fn new(frames: &Frames) -> Self {
        let mut redists = [const { None }; MAX_CPUS];
        let gicr_end = frames.gicr.end() as usize;
        let mut base = frames.gicr.base().get() as usize;
        // A redistributor's frames: RD and SGI, then VLPI and reserved with GICv4 (GICR_TYPER.VLPIS).
        let stride = |typer: GicrTyper| match frames.gicr_stride {
            Some(s) => s as usize,
            None if typer.vlpis() => 0x4_0000,
            None => 0x2_0000,
        };
        while base + 0x2_0000 <= gicr_end {
            // SAFETY: a redistributor frame of the GICR region, claimed here for the first and
            // only time (our caller's promise); frames of no CPU of ours are dropped unused.
            let regs: Gicr = unsafe { block(base) };
            let typer = regs.typer();
            let cpu = (typer.affinity() & 0xff) as usize;
            let last = typer.last();
            if typer.affinity() >> 8 == 0 && cpu < MAX_CPUS && redists[cpu].is_none() {
                redists[cpu] = Some(Redist {
                    info: RedistInfo {
                        rd_base: PhysAddr::new(base as u64),
                        typer,
                    },
                    regs: SpinLock::new(regs),
                });
            }
            if last {
                break;
            }
            base += stride(typer);
        }
        let cpus = redists.iter().take_while(|r| r.is_some()).count();
        let its_base = frames.its.base().get() as usize;
        let translation_base = its_base + 0x1_0000;
        // SAFETY: the distributor, the ITS control frame and its translation frame, claimed
        // here for the first and only time (our caller's promise).
        unsafe {
            Self {
                gicd: SpinLock::new(block(frames.gicd.base().get() as usize)),
                redists,
                cpus,
                its: SpinLock::new(block(its_base)),
                translation: SpinLock::new(block(translation_base)),
                its_base: its_base as u64,
            }
        }
    }

    /// The distributor's registers, locked until the guard drops.
    pub fn distributor(&self) -> SpinLockGuard<'_, Gicd> {
        self.gicd.lock()
    }

    /// CPU `cpu`'s redistributor registers, locked until the guard drops; `None` if the CPU
    /// has no redistributor.
    pub fn redistributor(&self, cpu: usize) -> Option<SpinLockGuard<'_, Gicr>> {
        Some(self.redists.get(cpu)?.as_ref()?.regs.lock())
    }

    /// Where CPU `cpu`'s redistributor is and its GICR_TYPER at boot.
    pub fn redist_info(&self, cpu: usize) -> Option<RedistInfo> {
        Some(self.redists.get(cpu)?.as_ref()?.info)
    }

    /// The physical address of the ITS's control frame (its translation frame follows, 64 KiB
    /// on), as the device tree gave it.
    pub fn its_base(&self) -> u64 {
        self.its_base
    }

    /// The physical address of GITS_TRANSLATER, where MSIs are written.
    pub fn translater_addr(&self) -> u64 {
        self.its_base + 0x1_0000 + core::mem::offset_of!(GitsTranslationRegs, translater) as u64
    }

    /// Number of CPUs `0..n` that all have a redistributor.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// The physical address of CPU `cpu`'s SGI_base frame (for a guest that reads it
    /// directly: there is no stage 2).
    pub fn sgi_frame_addr(&self, cpu: usize) -> Option<u64> {
        let rd = self.redist_info(cpu)?.rd_base.get();
        Some(rd + core::mem::offset_of!(GicrRegs, sgi) as u64)
    }

    /// The ITS control frame for the ITS driver, which keeps it (and its lock) for as long as
    /// it lives. `None` while another holder has it.
    pub fn its_frame(&'static self) -> Option<ItsFrame> {
        self.its.try_lock().map(ItsFrame)
    }

    /// A CPU store of `event` to GITS_TRANSLATER (the MSI doorbell), as a device's MSI would
    /// be. The DeviceID the ITS uses is the transaction's requester ID; what a CPU store
    /// carries is QEMU's choice (the `lpi_translater` scenario says what 7.2 does).
    pub fn translater_write(&self, event: u32) {
        let mut frame = self.translation.lock();
        field!(frame, translater).write(event);
    }

    // -----------------------------------------------------------------------------------------
    // Boot.

    /// Enables the distributor: affinity routing, Group 0 and Group 1 (one security state, as
    /// on QEMU without EL3), then waits for GICD_CTLR.RWP.
    pub fn init_distributor(&self) -> Result<(), GicError> {
        let mut d = self.distributor();
        let ctlr = GicdCtlr::new()
            .with_are(true)
            .with_enable_grp1(true)
            .with_enable_grp0(true);
        field!(d, ctlr).write(ctlr);
        wait_rwp(&d)
    }

    /// On CPU `cpu`: wakes its redistributor and enables its CPU interface (system registers,
    /// PMR = 0xff, Group 1 on, EOImode = 0: EOI drops priority and deactivates).
    pub fn init_cpu(&self, cpu: usize) -> Result<(), GicError> {
        let mut rd = self
            .redistributor(cpu)
            .ok_or(GicError::NoRedistributor { cpu })?;
        let waker = rd.waker();
        rd.set_waker(waker.with_processor_sleep(false));
        if !poll_until(REG_TIMEOUT, || !rd.waker().children_asleep()) {
            return Err(GicError::WakeTimeout);
        }
        drop(rd);
        cpuif_init();
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // SGIs, PPIs and SPIs.

    /// Makes SGI/PPI `intid` (< 32) of CPU `cpu` Group 1, priority 0x80, enabled.
    pub fn enable_private_irq(&self, cpu: usize, intid: u32) -> Result<(), GicError> {
        if intid >= 32 {
            return Err(GicError::BadIntid(intid));
        }
        let mut rd = self
            .redistributor(cpu)
            .ok_or(GicError::NoRedistributor { cpu })?;
        let mut sgi = field!(rd, sgi);
        let bit = 1u32 << intid;
        field!(sgi, igroupr0).modify(|g| g | bit);
        if let Some(mut prio) = field!(sgi, ipriorityr).get(intid as usize) {
            prio.write(0x80);
        }
        field!(sgi, isenabler0).write(bit);
        Ok(())
    }

    /// Configures SPI `intid` (32..=1019): Group 1, `priority`, edge or level, routed to CPU 0,
    /// inactive, not pending, enabled.
    pub fn configure_spi(&self, intid: u32, edge: bool, priority: u8) -> Result<(), GicError> {
        let (n, word, bit) = spi(intid)?;
        let mut d = self.distributor();
        write_bank(field!(d, icenabler).get(word), bit);
        wait_rwp(&d)?;
        if let Some(mut g) = field!(d, igroupr).get(word) {
            g.modify(|v| v | bit);
        }
        if let Some(mut p) = field!(d, ipriorityr).get(n) {
            p.write(priority);
        }
        // Int_config is bit 1 of each 2-bit field: 1 = edge-triggered.
        let field_bit = 2u32 << ((n % 16) * 2);
        if let Some(mut cfg) = field!(d, icfgr).get(n / 16) {
            cfg.modify(|v| if edge { v | field_bit } else { v & !field_bit });
        }
        // Interrupt_Routing_Mode 0, affinity 0.0.0.0: CPU 0.
        if let Some(mut r) = field!(d, irouter).get(n) {
            r.write(0);
        }
        write_bank(field!(d, icpendr).get(word), bit);
        write_bank(field!(d, icactiver).get(word), bit);
        write_bank(field!(d, isenabler).get(word), bit);
        wait_rwp(&d)
    }

    /// Enables or disables SPI `intid` at the distributor (GICD_ISENABLER / GICD_ICENABLER).
    pub fn set_spi_enabled(&self, intid: u32, enabled: bool) -> Result<(), GicError> {
        let (_, word, bit) = spi(intid)?;
        let mut d = self.distributor();
        if enabled {
            write_bank(field!(d, isenabler).get(word), bit);
            Ok(())
        } else {
            write_bank(field!(d, icenabler).get(word), bit);
            wait_rwp(&d)
        }
    }

    /// Routes SPI `intid` to CPU `cpu` (GICD_IROUTER: Interrupt_Routing_Mode 0, Aff0 = `cpu`).
    pub fn route_spi(&self, intid: u32, cpu: usize) -> Result<(), GicError> {
        let (n, _, _) = spi(intid)?;
        if cpu >= self.cpus {
            return Err(GicError::NoRedistributor { cpu });
        }
        let mut d = self.distributor();
        if let Some(mut r) = field!(d, irouter).get(n) {
            r.write(cpu as u64);
        }
        Ok(())
    }

    /// Disables SPI `intid` and clears its pending and active state.
    pub fn reset_spi(&self, intid: u32) -> Result<(), GicError> {
        let (_, word, bit) = spi(intid)?;
        let mut d = self.distributor();
        write_bank(field!(d, icenabler).get(word), bit);
        let settled = wait_rwp(&d);
        write_bank(field!(d, icpendr).get(word), bit);
        write_bank(field!(d, icactiver).get(word), bit);
        settled
    }

    /// Makes SPI `intid` pending by software (GICD_ISPENDR): a physical interrupt with no
    /// device behind it.
    pub fn set_spi_pending(&self, intid: u32) -> Result<(), GicError> {
        let (_, word, bit) = spi(intid)?;
        let mut d = self.distributor();
        write_bank(field!(d, ispendr).get(word), bit);
        Ok(())
    }

    /// The pending and active state of PPIs (CPU `cpu`'s redistributor) and SPIs (the
    /// distributor) as `fwd-irq` wants it, holding both locks until it drops. Build it on the
    /// CPU it describes: `fwd-irq` asks it about "this PE's" PPIs.
    pub fn irq_state(&self, cpu: usize) -> Option<IrqState<'_>> {
        let mut gicd = self.distributor();
        let mut gicr = self.redistributor(cpu)?;
        let gicd_ptr = gicd.ptr_nonnull().cast::<IrqStateRegs>();
        let sgi_ptr = field!(gicr, sgi).ptr_nonnull().cast::<IrqStateRegs>();
        // SAFETY: `IrqStateRegs` is the first 0x400 bytes of both the distributor and a
        // SGI_base frame (fwd-irq checks its layout); the locks taken above, which `IrqState`
        // keeps until it drops (after `state`, by field order), make these the only pointers
        // in use to those frames meanwhile.
        let state = unsafe {
            GicIrqState::new(
                UniqueMmioPointer::new(gicd_ptr),
                UniqueMmioPointer::new(sgi_ptr),
            )
        };
        Some(IrqState {
            state,
            _gicd: gicd,
            _gicr: gicr,
        })
    }

    /// Whether `intid` (PPI of CPU `cpu`, or SPI) is active at the physical GIC.
    pub fn is_active(&self, cpu: usize, intid: u32) -> bool {
        match (self.irq_state(cpu), PIntId::new(intid)) {
            (Some(s), Ok(p)) => s.is_active(p),
            _ => false,
        }
    }

    /// Whether `intid` (PPI of CPU `cpu`, or SPI) is pending at the physical GIC (for a level
    /// interrupt: latched, or its line is high).
    pub fn is_pending(&self, cpu: usize, intid: u32) -> bool {
        match (self.irq_state(cpu), PIntId::new(intid)) {
            (Some(s), Ok(p)) => s.is_pending(p),
            _ => false,
        }
    }
}

/// SPI `intid`'s byte index, 32-bit register index and bit.
fn spi(intid: u32) -> Result<(usize, usize, u32), GicError> {
    if !(32..=1019).contains(&intid) {
        return Err(GicError::BadIntid(intid));
    }
    Ok((intid as usize, intid as usize / 32, 1 << (intid % 32)))
}

/// Writes `bit` to one register of a set/clear bank (write-1 registers: no read first).
fn write_bank(reg: Option<UniqueMmioPointer<'_, safe_mmio::fields::ReadPureWrite<u32>>>, bit: u32) {
    if let Some(mut r) = reg {
        r.write(bit);
    }
}

fn wait_rwp(d: &Gicd) -> Result<(), GicError> {
    if poll_until(REG_TIMEOUT, || !field_shared!(*d, ctlr).read().rwp()) {
        Ok(())
    } else {
        Err(GicError::DistributorRwpTimeout)
    }
}

/// GICD_CTLR.
pub fn gicd_ctlr(hw: &GicHw) -> GicdCtlr {
    let d = hw.distributor();
    field_shared!(*d, ctlr).read()
}

/// GICD_TYPER.
pub fn gicd_typer(hw: &GicHw) -> GicdTyper {
    let d = hw.distributor();
    field_shared!(*d, typer).read()
}

/// [`GicIrqState`] with the distributor and redistributor locks it was built under.
pub struct IrqState<'a> {
    // Declared first, so dropped before the guards that make it sound.
    state: GicIrqState<'a>,
    _gicd: SpinLockGuard<'a, Gicd>,
    _gicr: SpinLockGuard<'a, Gicr>,
}

impl PhysIrqState for IrqState<'_> {
    fn is_pending(&self, pintid: PIntId) -> bool {
        self.state.is_pending(pintid)
    }
    fn is_active(&self, pintid: PIntId) -> bool {
        self.state.is_active(pintid)
    }
    fn set_active(&mut self, pintid: PIntId, active: bool) {
        self.state.set_active(pintid, active);
    }
}

/// The ITS control frame, lent to the ITS driver: holds [`GicHw`]'s lock on it until dropped
/// (with the driver). Implements the driver's register trait, and dereferences to the block
/// for registers the trait does not name (GITS_PIDR2).
pub struct ItsFrame(SpinLockGuard<'static, UniqueMmioPointer<'static, GitsRegs>>);

impl Deref for ItsFrame {
    type Target = UniqueMmioPointer<'static, GitsRegs>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ItsFrame {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl ItsRegisters for ItsFrame {
    fn ctlr(&self) -> GitsCtlr {
        self.0.ctlr()
    }
    fn set_ctlr(&mut self, v: GitsCtlr) {
        self.0.set_ctlr(v);
    }
    fn iidr(&self) -> u32 {
        self.0.iidr()
    }
    fn typer(&self) -> GitsTyper {
        self.0.typer()
    }
    fn cbaser(&self) -> GitsCbaser {
        self.0.cbaser()
    }
    fn set_cbaser(&mut self, v: GitsCbaser) {
        self.0.set_cbaser(v);
    }
    fn cwriter(&self) -> GitsCwriter {
        self.0.cwriter()
    }
    fn set_cwriter(&mut self, v: GitsCwriter) {
        self.0.set_cwriter(v);
    }
    fn creadr(&self) -> GitsCreadr {
        self.0.creadr()
    }
    fn baser(&self, n: usize) -> GitsBaser {
        self.0.baser(n)
    }
    fn set_baser(&mut self, n: usize, v: GitsBaser) {
        self.0.set_baser(n, v);
    }
}

// ---------------------------------------------------------------------------------------------
// The CPU interface of the calling CPU (system registers).

/// ICC_SRE_EL2: SRE | DFB | DIB | Enable (EL1 may use ICC_SRE_EL1).
const ICC_SRE_EL2_VALUE: u64 = 0b1111;

fn cpuif_init() {
    // SAFETY: enabling the system-register interface and unmasking priorities only lets the GIC
    // signal interrupts; PSTATE.I still masks them until a scenario unmasks, and the vectors
    // are installed.
    unsafe {
        write_sysreg!(icc_sre_el2, ICC_SRE_EL2_VALUE);
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(icc_pmr_el1, 0xff);
        write_sysreg!(icc_ctlr_el1, 0);
        write_sysreg!(icc_igrpen1_el1, 1);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Sends SGI `intid` (< 16) to the calling CPU (ICC_SGI1R_EL1, Aff0 target list).
pub fn send_sgi_to_self(intid: u32) {
    let aff0 = common::platform::cpu_index() as u64;
    let value = (u64::from(intid & 0xf) << 24) | (1 << (aff0 & 0xf));
    // SAFETY: generating an SGI only makes an interrupt pending; the handlers are installed.
    unsafe {
        write_sysreg!(icc_sgi1r_el1, value);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Sends SGI `intid` (< 16) to CPU `cpu` (ICC_SGI1R_EL1: Aff3-Aff1 = 0, target list bit
/// `cpu`, so CPUs 0-15).
pub fn send_sgi(intid: u32, cpu: usize) {
    if cpu >= 16 {
        return;
    }
    let value = (u64::from(intid & 0xf) << 24) | (1 << cpu);
    // SAFETY: generating an SGI only makes an interrupt pending at the target's redistributor.
    unsafe {
        write_sysreg!(icc_sgi1r_el1, value);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Acknowledges the highest-priority pending Group 1 interrupt (ICC_IAR1_EL1).
pub fn ack() -> u32 {
    (read_sysreg!(icc_iar1_el1) & 0xff_ffff) as u32
}

/// Ends an interrupt (ICC_EOIR1_EL1; with EOImode = 0 this also deactivates it).
pub fn eoi(intid: u32) {
    // SAFETY: EOI of an interrupt this CPU acknowledged only changes GIC state.
    unsafe {
        write_sysreg!(icc_eoir1_el1, intid);
        core::arch::asm!("isb", options(nostack));
    }
}

/// ICC_HPPIR1_EL1: the highest-priority pending Group 1 interrupt at this CPU's physical CPU
/// interface (1023 if none), without acknowledging it.
pub fn hppir() -> u32 {
    (read_sysreg!(icc_hppir1_el1) & 0xff_ffff) as u32
}
