// SPDX-License-Identifier: MIT OR Apache-2.0
//! EL2 exits by cause, counted per vCPU and summed for the report.
//!
//! Every time the guest stops running and the hypervisor runs instead is one exit. The run
//! loop counts each by what caused it, on the vCPU's own CPU (no shared counters), and
//! publishes its counts when the vCPU stops. [`ExitStats::report`] prints them as `@@M`
//! lines, which `cargo xtask qemu-test` and the benches read:
//!
//! ```text
//! @@M exits=N smc=N hvc=N dabt_gicd=N dabt_gicr=N dabt_refused=N sysreg_sgi=N sysreg_other=N irq=N wfx=N other=N
//! @@M irq_vtimer=N irq_spi=N irq_kick=N irq_maint=N irq_spurious=N irq_other=N sgis=N
//! @@M el2_spi33=N el2_spi35=N ...      (forwarded SPIs taken at EL2, by INTID, those seen)
//! ```

/// INTIDs of the SPIs counted one by one (32 up to this, exclusive).
pub const SPI_END: usize = 96;

/// Exits and interrupts, by cause.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ExitStats {
    /// Trapped SMCs (PSCI).
    pub smc: u64,
    /// HVCs (answered NOT_SUPPORTED).
    pub hvc: u64,
    /// Data aborts on the distributor frame (emulated).
    pub dabt_gicd: u64,
    /// Data aborts on a redistributor frame (emulated).
    pub dabt_gicr: u64,
    /// Data aborts refused (anywhere else, or undecodable): an external abort injected.
    pub dabt_refused: u64,
    /// Trapped writes to ICC_SGI0R/SGI1R/ASGI1R_EL1 (the guest's IPIs).
    pub sysreg_sgi: u64,
    /// Other trapped system registers (an UNDEFINED exception injected).
    pub sysreg_other: u64,
    /// Physical IRQs taken while the guest ran.
    pub irq: u64,
    /// Trapped WFI/WFE (none while they are not trapped).
    pub wfx: u64,
    /// Any other exception class (an UNDEFINED exception injected).
    pub other: u64,
    /// IRQs: the virtual timer's PPI, forwarded.
    pub irq_vtimer: u64,
    /// IRQs: forwarded SPIs (UART, PCIe INTx).
    pub irq_spi: u64,
    /// IRQs: kicks from another CPU (the vGIC has work for this vCPU).
    pub irq_kick: u64,
    /// IRQs: maintenance interrupts (list registers full or drained).
    pub irq_maint: u64,
    /// IRQs: spurious acknowledges.
    pub irq_spurious: u64,
    /// IRQs: anything else (deactivated, dropped).
    pub irq_other: u64,
    /// SGIs the guest sent (deliveries, one per target).
    pub sgis: u64,
    /// Forwarded SPIs taken at EL2, by INTID (index = INTID - 32).
    pub spi: [u64; SPI_END - 32],
}

impl Default for ExitStats {
    fn default() -> Self {
        Self::zero()
    }
}

impl ExitStats {
    /// All counts zero.
    pub const fn zero() -> Self {
        Self {
            smc: 0,
            hvc: 0,
            dabt_gicd: 0,
            dabt_gicr: 0,
            dabt_refused: 0,
            sysreg_sgi: 0,
            sysreg_other: 0,
            irq: 0,
            wfx: 0,
            other: 0,
            irq_vtimer: 0,
            irq_spi: 0,
            irq_kick: 0,
            irq_maint: 0,
            irq_spurious: 0,
            irq_other: 0,
            sgis: 0,
            spi: [0; SPI_END - 32],
        }
    }

    /// All exits.
    pub fn exits(&self) -> u64 {
        self.smc
            + self.hvc
            + self.dabt_gicd
            + self.dabt_gicr
            + self.dabt_refused
            + self.sysreg_sgi
            + self.sysreg_other
            + self.irq
            + self.wfx
            + self.other
    }

    /// Forwarded SPI `intid` taken at EL2 (0 outside the counted range).
    pub fn spi_taken(&self, intid: u32) -> u64 {
        (intid as usize)
            .checked_sub(32)
            .and_then(|i| self.spi.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Counts forwarded SPI `intid` taken at EL2.
    pub fn count_spi(&mut self, intid: u32) {
        if let Some(n) = (intid as usize)
            .checked_sub(32)
            .and_then(|i| self.spi.get_mut(i))
        {
            *n += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, o: &ExitStats) {
        self.smc += o.smc;
        self.hvc += o.hvc;
        self.dabt_gicd += o.dabt_gicd;
        self.dabt_gicr += o.dabt_gicr;
        self.dabt_refused += o.dabt_refused;
        self.sysreg_sgi += o.sysreg_sgi;
        self.sysreg_other += o.sysreg_other;
        self.irq += o.irq;
        self.wfx += o.wfx;
        self.other += o.other;
        self.irq_vtimer += o.irq_vtimer;
        self.irq_spi += o.irq_spi;
        self.irq_kick += o.irq_kick;
        self.irq_maint += o.irq_maint;
        self.irq_spurious += o.irq_spurious;
        self.irq_other += o.irq_other;
        self.sgis += o.sgis;
        for (a, b) in self.spi.iter_mut().zip(o.spi.iter()) {
            *a += b;
        }
    }

    /// Prints the counts as `@@M` lines (see the module documentation).
    pub fn report(&self) {
        common::report::metrics(&[
            ("exits", self.exits()),
            ("smc", self.smc),
            ("hvc", self.hvc),
            ("dabt_gicd", self.dabt_gicd),
            ("dabt_gicr", self.dabt_gicr),
            ("dabt_refused", self.dabt_refused),
            ("sysreg_sgi", self.sysreg_sgi),
            ("sysreg_other", self.sysreg_other),
            ("irq", self.irq),
            ("wfx", self.wfx),
            ("other", self.other),
        ]);
        common::report::metrics(&[
            ("irq_vtimer", self.irq_vtimer),
            ("irq_spi", self.irq_spi),
            ("irq_kick", self.irq_kick),
            ("irq_maint", self.irq_maint),
            ("irq_spurious", self.irq_spurious),
            ("irq_other", self.irq_other),
            ("sgis", self.sgis),
        ]);
        if self.spi.iter().any(|n| *n != 0) {
            common::println!("@@M{}", SpiCounts(&self.spi));
        }
    }
}

/// ` el2_spiN=count` for each SPI taken at least once.
struct SpiCounts<'a>(&'a [u64; SPI_END - 32]);

impl core::fmt::Display for SpiCounts<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if *n != 0 {
                write!(f, " el2_spi{}={n}", i + 32)?;
            }
        }
        Ok(())
    }
}
