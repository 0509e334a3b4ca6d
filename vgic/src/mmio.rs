// SPDX-License-Identifier: MIT OR Apache-2.0
//! The register map: which register an offset is, whether the access size is allowed, and
//! what a read returns or a write changes.
//!
//! Register maps and fields: Arm IHI 0069, "The GIC Distributor register map", "The GIC
//! Redistributor register map", and "GIC memory-mapped register access" for the sizes (see
//! [`crate::access`]).

use crate::access::{AccessSize, Frame, Outcome, RazWi};
use crate::effects::{Effect, Effects};
use crate::ids::VcpuId;
use crate::regs::{self, gicd};
use crate::state::Op;
use crate::vgic::Vgic;

/// The access sizes a register accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// 32-bit only.
    Word,
    /// 8-bit or 32-bit.
    ByteWord,
    /// 32-bit (either half) or 64-bit.
    WordDword,
    /// Anything (reserved and unimplemented space).
    Any,
}

impl Shape {
    const fn allows(self, size: AccessSize) -> bool {
        match self {
            Self::Word => matches!(size, AccessSize::Word),
            Self::ByteWord => matches!(size, AccessSize::Byte | AccessSize::Word),
            Self::WordDword => matches!(size, AccessSize::Word | AccessSize::Dword),
            Self::Any => true,
        }
    }
}

/// The registers with one bit per interrupt, in register-map order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    /// From the offset of a register in 0x080..=0x3FF.
    const fn from_offset(off: u32) -> Self {
        match (off - 0x80) / 0x80 {
            0 => Self::Group,
            1 => Self::SetEnable,
            2 => Self::ClearEnable,
            3 => Self::SetPending,
            4 => Self::ClearPending,
            5 => Self::SetActive,
            _ => Self::ClearActive,
        }
    }
}

/// What an offset names. `bank` is the vCPU whose SGIs and PPIs a redistributor register
/// covers (ignored for SPIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    GicdCtlr,
    GicdTyper,
    Iidr,
    Pidr2,
    Bits {
        kind: BitReg,
        bank: VcpuId,
        first: u32,
    },
    Priority {
        bank: VcpuId,
        first: u32,
    },
    Config {
        bank: VcpuId,
        first: u32,
    },
    Icfgr0,
    Irouter {
        intid: u32,
    },
    GicrCtlr(VcpuId),
    GicrTyper(VcpuId),
    Waker(VcpuId),
    Propbaser(VcpuId),
    Pendbaser(VcpuId),
    Raz(RazWi),
}

/// A 64-bit register's value seen through a 32-bit access to either half, or whole.
const fn read64(v: u64, off: u32, size: AccessSize) -> u64 {
    match size {
        AccessSize::Dword => v,
        _ if off & 4 != 0 => v >> 32,
        _ => v & 0xFFFF_FFFF,
    }
}

/// A 64-bit register after a 32-bit write to either half, or a 64-bit write.
const fn merge64(old: u64, off: u32, size: AccessSize, w: u64) -> u64 {
    match size {
        AccessSize::Dword => w,
        _ if off & 4 != 0 => (old & 0xFFFF_FFFF) | (w << 32),
        _ => (old & !0xFFFF_FFFF) | (w & 0xFFFF_FFFF),
    }
}

impl<const VCPUS: usize, const SPIS: usize> Vgic<VCPUS, SPIS> {
    /// One INTID past the VM's last.
    const INTID_END: u32 = {
        let end = 32 + SPIS as u32;
        if end > 1020 { 1020 } else { end }
    };

    /// Emulates one access of `me` at `off` in `frame`: a read if `w` is `None`.
    pub(crate) fn dispatch(
        &mut self,
        me: VcpuId,
        frame: Frame,
        off: u32,
        size: AccessSize,
        w: Option<u64>,
        fx: &mut Effects,
    ) -> (u64, Outcome) {
        if !off.is_multiple_of(size.bytes()) {
            return (0, Outcome::RazWi(RazWi::Misaligned));
        }
        let (reg, shape) = match frame {
            Frame::Distributor => self.gicd_reg(me, off),
            Frame::RdBase(k) => self.rd_reg(k, off),
            Frame::SgiBase(k) => Self::sgi_reg(k, off),
        };
        if !shape.allows(size) {
            return (0, Outcome::RazWi(RazWi::BadSize));
        }
        self.perform(me, reg, off, size, w, fx)
    }

    fn gicd_reg(&self, me: VcpuId, off: u32) -> (Reg, Shape) {
        let spi = |first: u32| first >= 32 && first < Self::INTID_END;
        // 32-bit registers are matched by their word, so that a narrower access inside one
        // is a bad size rather than a reserved offset.
        match off {
            _ if off & !3 == gicd::CTLR => (Reg::GicdCtlr, Shape::Word),
            0x0004..=0x0007 => (Reg::GicdTyper, Shape::Word),
            0x0008..=0x000B => (Reg::Iidr, Shape::Word),
            // GICD_TYPER2, GICD_STATUSR.
            0x000C..=0x0013 => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            // GICD_SETSPI_NSR .. GICD_CLRSPI_SR: GICD_TYPER.MBIS = 0.
            0x0040..=0x005F => (Reg::Raz(RazWi::NotImplemented), Shape::Any),
            0x0080..=0x03FF => {
                let first = (off % 0x80) / 4 * 32;
                let reg = if first == 0 {
                    Reg::Raz(RazWi::AffinityRouting)
                } else if spi(first) {
                    Reg::Bits {
                        kind: BitReg::from_offset(off),
                        bank: me,
                        first,
                    }
                } else {
                    Reg::Raz(RazWi::NoSuchInterrupt)
                };
                (reg, Shape::Word)
            }
            0x0400..=0x07FF => {
                let first = off - gicd::IPRIORITYR;
                let reg = if first < 32 {
                    Reg::Raz(RazWi::AffinityRouting)
                } else if spi(first) {
                    Reg::Priority { bank: me, first }
                } else {
                    Reg::Raz(RazWi::NoSuchInterrupt)
                };
                (reg, Shape::ByteWord)
            }
            0x0800..=0x0BFF => (Reg::Raz(RazWi::AffinityRouting), Shape::ByteWord),
            0x0C00..=0x0CFF => {
                let first = (off - gicd::ICFGR) / 4 * 16;
                let reg = if first < 32 {
                    Reg::Raz(RazWi::AffinityRouting)
                } else if spi(first) {
                    Reg::Config { bank: me, first }
                } else {
                    Reg::Raz(RazWi::NoSuchInterrupt)
                };
                (reg, Shape::Word)
            }
            0x0D00..=0x0D7F | 0x0E00..=0x0EFF => {
                (Reg::Raz(RazWi::SingleSecurityState), Shape::Word)
            }
            0x0F00..=0x0F03 => (Reg::Raz(RazWi::AffinityRouting), Shape::Word),
            0x0F10..=0x0F2F => (Reg::Raz(RazWi::AffinityRouting), Shape::ByteWord),
            // GICD_INMIR<n> (NMI), the extended SPI range, GICD_IROUTER<n>E.
            0x0F80..=0x0FFF | 0x1000..=0x5FFF | 0x8000..=0x9FFF => {
                (Reg::Raz(RazWi::NotImplemented), Shape::Any)
            }
            0x6000..=0x7FFF => {
                let intid = (off - gicd::IROUTER) / 8;
                let reg = if !(32..1020).contains(&intid) {
                    Reg::Raz(RazWi::Reserved)
                } else if spi(intid) {
                    Reg::Irouter { intid }
                } else {
                    Reg::Raz(RazWi::NoSuchInterrupt)
                };
                (reg, Shape::WordDword)
            }
            _ if off & !3 == gicd::PIDR2 => (Reg::Pidr2, Shape::Word),
            0xFFD0..=0xFFFF => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            _ => (Reg::Raz(RazWi::Reserved), Shape::Any),
        }
    }

    fn rd_reg(&self, k: VcpuId, off: u32) -> (Reg, Shape) {
        let lpis = self.cfg.lpis.is_some();
        match off {
            0x0000..=0x0003 => (Reg::GicrCtlr(k), Shape::Word),
            0x0004..=0x0007 => (Reg::Iidr, Shape::Word),
            0x0008..=0x000F => (Reg::GicrTyper(k), Shape::WordDword),
            0x0014..=0x0017 => (Reg::Waker(k), Shape::Word),
            // GICR_STATUSR, GICR_MPAMIDR, GICR_PARTIDR.
            0x0010..=0x0013 | 0x0018..=0x001F => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            0x0070..=0x0077 if lpis => (Reg::Propbaser(k), Shape::WordDword),
            0x0078..=0x007F if lpis => (Reg::Pendbaser(k), Shape::WordDword),
            // GICR_SETLPIR, GICR_CLRLPIR, GICR_PROPBASER and GICR_PENDBASER without LPIs,
            // GICR_INVLPIR, GICR_INVALLR, GICR_SYNCR: GICR_TYPER.DirectLPI = 0.
            0x0040..=0x004F | 0x0070..=0x007F | 0x00A0..=0x00C7 => {
                (Reg::Raz(RazWi::NotImplemented), Shape::WordDword)
            }
            _ if off & !3 == regs::gicr::PIDR2 => (Reg::Pidr2, Shape::Word),
            0xFFD0..=0xFFFF => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            _ => (Reg::Raz(RazWi::Reserved), Shape::Any),
        }
    }

    fn sgi_reg(k: VcpuId, off: u32) -> (Reg, Shape) {
        match off {
            0x0080..=0x03FF => {
                let reg = match (off % 0x80) / 4 {
                    0 => Reg::Bits {
                        kind: BitReg::from_offset(off),
                        bank: k,
                        first: 0,
                    },
                    // The extended PPI range: GICR_TYPER.PPInum = 0.
                    1 | 2 => Reg::Raz(RazWi::NotImplemented),
                    _ => Reg::Raz(RazWi::Reserved),
                };
                (reg, Shape::Word)
            }
            0x0400..=0x041F => (
                Reg::Priority {
                    bank: k,
                    first: off - regs::sgi_base::IPRIORITYR,
                },
                Shape::ByteWord,
            ),
            0x0420..=0x045F => (Reg::Raz(RazWi::NotImplemented), Shape::ByteWord),
            0x0C00..=0x0C03 => (Reg::Icfgr0, Shape::Word),
            0x0C04..=0x0C07 => (Reg::Config { bank: k, first: 16 }, Shape::Word),
            0x0C08..=0x0C17 => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            0x0D00..=0x0D0B | 0x0E00..=0x0E03 => {
                (Reg::Raz(RazWi::SingleSecurityState), Shape::Word)
            }
            // GICR_INMIR0 and GICR_INMIR<n>E: no NMIs.
            0x0F80..=0x0F8B => (Reg::Raz(RazWi::NotImplemented), Shape::Word),
            _ => (Reg::Raz(RazWi::Reserved), Shape::Any),
        }
    }

    fn perform(
        &mut self,
        me: VcpuId,
        reg: Reg,
        off: u32,
        size: AccessSize,
        w: Option<u64>,
        fx: &mut Effects,
    ) -> (u64, Outcome) {
        let read_only = |v: u64| match w {
            None => (v, Outcome::Register),
            Some(_) => (0, Outcome::ReadOnly),
        };
        let done = |v: u64| (v, Outcome::Register);
        match reg {
            Reg::Raz(r) => (0, Outcome::RazWi(r)),
            Reg::GicdTyper => read_only(u64::from(self.gicd_typer())),
            Reg::Iidr => read_only(u64::from(self.cfg.iidr)),
            Reg::Pidr2 => read_only(u64::from(regs::PIDR2_GICV3)),
            Reg::Icfgr0 => read_only(u64::from(regs::ICFGR_ALL_EDGE)),
            Reg::GicrTyper(k) => read_only(read64(self.gicr_typer(k), off, size)),
            Reg::GicdCtlr => done(self.gicd_ctlr(me, w, fx)),
            Reg::Bits { kind, bank, first } => done(self.bits(me, kind, bank, first, w, fx)),
            Reg::Priority { bank, first } => done(self.priority(me, bank, first, size, w, fx)),
            Reg::Config { bank, first } => done(self.config_bits(me, bank, first, w, fx)),
            Reg::Irouter { intid } => {
                let old = self.irq(me, intid).map_or(0, |i| i.irouter);
                if let Some(w) = w {
                    let new = merge64(old, off, size, w) & regs::IROUTER_MASK;
                    self.set_route(me, intid, new, fx);
                }
                done(read64(old, off, size))
            }
            Reg::GicrCtlr(k) => done(self.gicr_ctlr(k, w, fx)),
            Reg::Waker(k) => done(self.waker(me, k, w, fx)),
            Reg::Propbaser(k) | Reg::Pendbaser(k) => {
                let prop = matches!(reg, Reg::Propbaser(_));
                self.lpi_base(k, prop, off, size, w)
            }
        }
    }

    pub(crate) fn gicd_typer(&self) -> u32 {
        let it_lines = SPIS as u32 / 32;
        let cpus = (self.cfg.nr_vcpus as u32 - 1).min(7) << 5;
        let (lpis, id_bits) = match self.cfg.lpis {
            Some(l) => (regs::TYPER_LPIS, u32::from(l.id_bits)),
            None => (0, 10),
        };
        it_lines
            | cpus
            | lpis
            | ((id_bits - 1) << 19)
            | regs::TYPER_A3V
            | regs::TYPER_NO1N
            | regs::TYPER_RSS
    }

    pub(crate) fn gicr_typer(&self, k: VcpuId) -> u64 {
        let aff = self
            .cfg
            .affinities
            .get(k.index())
            .copied()
            .unwrap_or_default();
        let plpis = if self.cfg.lpis.is_some() {
            regs::GICR_TYPER_PLPIS
        } else {
            0
        };
        let last = if k.index() + 1 == self.cfg.nr_vcpus {
            regs::GICR_TYPER_LAST
        } else {
            0
        };
        (u64::from(aff.to_packed()) << 32) | ((k.index() as u64) << 8) | last | plpis
    }

    fn gicd_ctlr(&mut self, me: VcpuId, w: Option<u64>, fx: &mut Effects) -> u64 {
        if let Some(w) = w {
            let (g0, g1) = (
                w & u64::from(regs::CTLR_ENABLE_GRP0) != 0,
                w & u64::from(regs::CTLR_ENABLE_GRP1) != 0,
            );
            if (g0, g1) != (self.grp0, self.grp1) {
                self.grp0 = g0;
                self.grp1 = g1;
                self.reconfigure_all(me, fx);
            }
        }
        let mut v = regs::CTLR_ARE | regs::CTLR_DS;
        if self.grp0 {
            v |= regs::CTLR_ENABLE_GRP0;
        }
        if self.grp1 {
            v |= regs::CTLR_ENABLE_GRP1;
        }
        u64::from(v)
    }

    fn bits(
        &mut self,
        me: VcpuId,
        kind: BitReg,
        bank: VcpuId,
        first: u32,
        w: Option<u64>,
        fx: &mut Effects,
    ) -> u64 {
        let mut v = 0u64;
        for i in 0..32 {
            let intid = first + i;
            if intid >= Self::INTID_END {
                break;
            }
            let Some(irq) = self.irq(bank, intid) else {
                continue;
            };
            let Some(w) = w else {
                let (set, state) = match kind {
                    BitReg::Group => (irq.group1, false),
                    BitReg::SetEnable | BitReg::ClearEnable => (irq.enabled, false),
                    BitReg::SetPending | BitReg::ClearPending => (irq.pending(), true),
                    BitReg::SetActive | BitReg::ClearActive => (irq.active, true),
                };
                if set {
                    v |= 1 << i;
                }
                if state && let Some(h) = irq.holder.filter(|h| *h != me) {
                    // Its state is as of h's last sync: make h publish fresh state.
                    fx.kick(h);
                }
                continue;
            };
            let on = w & (1 << i) != 0;
            let (fwd, edge, group1, enabled) = (irq.fwd, irq.edge, irq.group1, irq.enabled);
            match kind {
                BitReg::Group if on != group1 => {
                    if let Some(irq) = self.irq_mut(bank, intid) {
                        irq.group1 = on;
                    }
                    self.post(Some(me), bank, intid, Op::Cfg, fx);
                }
                BitReg::SetEnable | BitReg::ClearEnable if on => {
                    let en = kind == BitReg::SetEnable;
                    if en != enabled {
                        if let Some(irq) = self.irq_mut(bank, intid) {
                            irq.enabled = en;
                        }
                        self.post(Some(me), bank, intid, Op::Cfg, fx);
                        if let (Some(f), true) = (fwd, intid >= 32) {
                            fx.push(Effect::SetPhysEnabled {
                                pintid: f.pintid,
                                enabled: en,
                            });
                        }
                    }
                }
                BitReg::SetPending if on => self.post(Some(me), bank, intid, Op::Latch(true), fx),
                BitReg::ClearPending if on => {
                    self.post(Some(me), bank, intid, Op::Latch(false), fx);
                    if fwd.is_some() && !edge {
                        // A forwarded level line is re-sampled: the physical interrupt is
                        // made inactive and fires again if the device still asserts it.
                        self.post(Some(me), bank, intid, Op::Line(false), fx);
                    }
                }
                BitReg::SetActive if on => self.post(Some(me), bank, intid, Op::Active(true), fx),
                BitReg::ClearActive if on => {
                    self.post(Some(me), bank, intid, Op::Active(false), fx);
                }
                _ => {}
            }
        }
        v
    }

    fn priority(
        &mut self,
        me: VcpuId,
        bank: VcpuId,
        first: u32,
        size: AccessSize,
        w: Option<u64>,
        fx: &mut Effects,
    ) -> u64 {
        let mask = self.cfg.priority_mask();
        let mut v = 0u64;
        for j in 0..size.bytes() {
            let intid = first + j;
            let Some(irq) = self.irq(bank, intid).filter(|_| intid < Self::INTID_END) else {
                continue;
            };
            match w {
                None => v |= u64::from(irq.priority) << (8 * j),
                Some(w) => {
                    let p = (w >> (8 * j)) as u8 & mask;
                    if p != irq.priority {
                        if let Some(irq) = self.irq_mut(bank, intid) {
                            irq.priority = p;
                        }
                        self.post(Some(me), bank, intid, Op::Cfg, fx);
                    }
                }
            }
        }
        v
    }

    /// `GICD_ICFGR<n>` / GICR_ICFGR1: Int_config\[1\] (bit 2F + 1) is 1 for edge. SGIs and
    /// forwarded interrupts are read-only; Int_config\[0\] is RES0.
    fn config_bits(
        &mut self,
        me: VcpuId,
        bank: VcpuId,
        first: u32,
        w: Option<u64>,
        fx: &mut Effects,
    ) -> u64 {
        let mut v = 0u64;
        for j in 0..16 {
            let intid = first + j;
            let Some(irq) = self.irq(bank, intid).filter(|_| intid < Self::INTID_END) else {
                continue;
            };
            match w {
                None => {
                    if irq.edge {
                        v |= 2 << (2 * j);
                    }
                }
                Some(w) => {
                    let edge = w & (2 << (2 * j)) != 0;
                    if intid >= 16 && irq.fwd.is_none() && edge != irq.edge {
                        if let Some(irq) = self.irq_mut(bank, intid) {
                            irq.edge = edge;
                        }
                        self.post(Some(me), bank, intid, Op::Cfg, fx);
                    }
                }
            }
        }
        v
    }

    fn gicr_ctlr(&mut self, k: VcpuId, w: Option<u64>, fx: &mut Effects) -> u64 {
        if self.cfg.lpis.is_none() {
            return 0;
        }
        let Some(c) = self.cpus.get_mut(k.index()) else {
            return 0;
        };
        if let Some(w) = w {
            let en = w & u64::from(regs::GICR_CTLR_ENABLE_LPIS) != 0;
            if en != c.lpi.enabled {
                c.lpi.enabled = en;
                fx.push(Effect::LpisEnabled {
                    vcpu: k,
                    enabled: en,
                });
            }
        }
        let en = if c.lpi.enabled {
            regs::GICR_CTLR_ENABLE_LPIS
        } else {
            0
        };
        u64::from(en | regs::GICR_CTLR_CES)
    }

    /// GICR_WAKER: writes take effect at once, so ChildrenAsleep always equals
    /// ProcessorSleep and a guest polling it after clearing ProcessorSleep reads 0 at once.
    /// While ProcessorSleep = 1 nothing is delivered to the vCPU.
    fn waker(&mut self, me: VcpuId, k: VcpuId, w: Option<u64>, fx: &mut Effects) -> u64 {
        let Some(c) = self.cpus.get_mut(k.index()) else {
            return 0;
        };
        if let Some(w) = w {
            let sleep = w & u64::from(regs::WAKER_PROCESSOR_SLEEP) != 0;
            if sleep != c.sleep {
                c.sleep = sleep;
                if c.attached {
                    c.all_cfg = true;
                    if k != me {
                        fx.kick(k);
                    }
                }
            }
        }
        if c.sleep {
            u64::from(regs::WAKER_PROCESSOR_SLEEP | regs::WAKER_CHILDREN_ASLEEP)
        } else {
            0
        }
    }

    /// GICR_PROPBASER / GICR_PENDBASER: RES0 fields read as 0, PTZ is write-only, and a
    /// write while GICR_CTLR.EnableLPIs = 1 (UNPREDICTABLE in the architecture) is ignored.
    fn lpi_base(
        &mut self,
        k: VcpuId,
        prop: bool,
        off: u32,
        size: AccessSize,
        w: Option<u64>,
    ) -> (u64, Outcome) {
        let Some(c) = self.cpus.get_mut(k.index()) else {
            return (0, Outcome::RazWi(RazWi::Reserved));
        };
        let old = if prop {
            c.lpi.propbaser
        } else {
            c.lpi.pendbaser
        };
        let Some(w) = w else {
            return (read64(old, off, size), Outcome::Register);
        };
        if c.lpi.enabled {
            return (0, Outcome::WriteIgnored);
        }
        let new = merge64(old, off, size, w);
        if prop {
            c.lpi.propbaser = new & regs::PROPBASER_MASK;
        } else {
            c.lpi.pendbaser = new & regs::PENDBASER_MASK;
            if size == AccessSize::Dword || off & 4 != 0 {
                c.lpi.ptz = new & regs::PENDBASER_PTZ != 0;
            }
        }
        (0, Outcome::Register)
    }
}
