// SPDX-License-Identifier: MIT OR Apache-2.0
//! EL2 exits by cause, counted per vCPU and summed for the report.
//!
//! Every time the guest stops running and the hypervisor runs instead is one exit. The run
//! loop counts each by what caused it, in the vCPU's own structure (no shared counters), and
//! publishes its counts when the vCPU stops. [`ExitStats::report`] prints them as `@@M`
//! lines, which `cargo xtask qemu-test` and the benches read (`prefix` names a window: the
//! counts between the guest's phase marks are printed again with `window_` in front):
//!
//! ```text
//! @@M exits=N smc=N hvc=N dabt_gicd=N dabt_gicr=N dabt_its=N dabt_marker=N dabt_refused=N sysreg_sgi=N sysreg_other=N irq=N wfx=N other=N
//! @@M irq_vtimer=N irq_spi=N irq_kick=N irq_maint=N irq_spurious=N irq_doorbell=N irq_lpi=N irq_other=N sgis=N
//! @@M disk_exits=N wfi_blocks=N wfi_pending=N doorbell_wakeups=N lpi_wakeups=N lpis_injected=N swaps=N inst_guest=N inst_hyp=N
//! @@M el2_spi33=N el2_spi35=N ...      (forwarded SPIs taken at EL2, by INTID, those seen)
//! ```
//!
//! # Which exits the disk caused
//! An exit is *caused by a disk interrupt* when it is an IRQ exit for an interrupt that
//! exists only because of the disk's MSIs: the doorbell of a vPE (with GICv4 it rings only
//! for a vLPI that found its vPE away, and only the assigned devices' events are vLPIs) or a
//! host LPI of the software backend (each stands for one event of an assigned device).
//! `disk_exits` = `irq_doorbell` + `irq_lpi`. A doorbell or host LPI taken while the vCPU is
//! blocked at EL2 (WFI trapped) is no exit: the CPU was already in the hypervisor (counted in
//! `doorbell_wakeups` and `lpi_wakeups`); the WFI that blocked is counted in `wfx` and
//! `wfi_blocks`.

/// INTIDs of the SPIs counted one by one (32 up to this, exclusive).
pub const SPI_END: usize = 96;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Exits and interrupts, by cause.
        #[derive(Clone, Copy, Debug, Eq, PartialEq)]
        pub struct ExitStats {
            $($(#[$doc])* pub $name: u64,)*
            /// Forwarded SPIs taken at EL2, by INTID (index = INTID - 32).
            pub spi: [u64; SPI_END - 32],
        }

        impl ExitStats {
            /// All counts zero.
            pub const fn zero() -> Self {
                Self { $($name: 0,)* spi: [0; SPI_END - 32] }
            }

            /// Adds `o`'s counts to these.
            pub fn add(&mut self, o: &ExitStats) {
                $(self.$name += o.$name;)*
                for (a, b) in self.spi.iter_mut().zip(o.spi.iter()) {
                    *a += b;
                }
            }

            /// The counts since `before` (counts only grow: saturating, never negative).
            pub fn since(&self, before: &ExitStats) -> ExitStats {
                let mut d = *self;
                $(d.$name = self.$name.saturating_sub(before.$name);)*
                for (a, b) in d.spi.iter_mut().zip(before.spi.iter()) {
                    *a = a.saturating_sub(*b);
                }
                d
            }
        }
    };
}

counters! {
    /// Trapped SMCs (PSCI).
    smc,
    /// HVCs (answered NOT_SUPPORTED).
    hvc,
    /// Data aborts on the distributor frame (emulated).
    dabt_gicd,
    /// Data aborts on a redistributor frame (emulated).
    dabt_gicr,
    /// Data aborts on the ITS control frame (emulated by `vits`).
    dabt_its,
    /// Accesses to the phase marker.
    dabt_marker,
    /// Data aborts refused (anywhere else, or undecodable): an external abort injected.
    dabt_refused,
    /// Trapped writes to ICC_SGI0R/SGI1R/ASGI1R_EL1 (the guest's IPIs).
    sysreg_sgi,
    /// Other trapped system registers (an UNDEFINED exception injected).
    sysreg_other,
    /// Physical IRQs taken while the guest ran.
    irq,
    /// Trapped WFI/WFE (none while they are not trapped).
    wfx,
    /// Any other exception class (an UNDEFINED exception injected).
    other,
    /// IRQs: the virtual timer's PPI, forwarded.
    irq_vtimer,
    /// IRQs: forwarded SPIs (UART, PCIe INTx).
    irq_spi,
    /// IRQs: kicks from another CPU (the vGIC has work for this vCPU).
    irq_kick,
    /// IRQs: maintenance interrupts (list registers full or drained).
    irq_maint,
    /// IRQs: spurious acknowledges.
    irq_spurious,
    /// IRQs: a vPE's doorbell (a vLPI found its vPE away).
    irq_doorbell,
    /// IRQs: a host LPI standing for a guest event (software injection).
    irq_lpi,
    /// IRQs: anything else (deactivated, dropped).
    irq_other,
    /// SGIs the guest sent (deliveries, one per target).
    sgis,
    /// WFI exits that blocked the vCPU at EL2.
    wfi_blocks,
    /// WFI exits that found an interrupt pending for the vCPU (re-entered at once).
    wfi_pending,
    /// Doorbells taken at EL2 while the vCPU was blocked (woke it; no exit).
    doorbell_wakeups,
    /// Host LPIs of guest events taken at EL2 while the vCPU was blocked (no exit).
    lpi_wakeups,
    /// Guest LPIs listed through the vCPU's list registers (software injection).
    lpis_injected,
    /// Times the vCPU moved to another CPU.
    swaps,
    /// Instructions the guest executed (EL0 and EL1), when counted (`Options::pmu`).
    inst_guest,
    /// Instructions the hypervisor executed (EL2), when counted (`Options::pmu`).
    inst_hyp,
}

impl Default for ExitStats {
    fn default() -> Self {
        Self::zero()
    }
}

impl ExitStats {
    /// All exits.
    pub fn exits(&self) -> u64 {
        self.smc
            + self.hvc
            + self.dabt_gicd
            + self.dabt_gicr
            + self.dabt_its
            + self.dabt_marker
            + self.dabt_refused
            + self.sysreg_sgi
            + self.sysreg_other
            + self.irq
            + self.wfx
            + self.other
    }

    /// Exits caused by disk interrupts (see the module documentation).
    pub fn disk_exits(&self) -> u64 {
        self.irq_doorbell + self.irq_lpi
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

    /// Prints the counts as `@@M` lines (see the module documentation), each key with
    /// `prefix` in front.
    pub fn report(&self, prefix: &str) {
        common::report::metrics_prefixed(
            prefix,
            &[
                ("exits", self.exits()),
                ("smc", self.smc),
                ("hvc", self.hvc),
                ("dabt_gicd", self.dabt_gicd),
                ("dabt_gicr", self.dabt_gicr),
                ("dabt_its", self.dabt_its),
                ("dabt_marker", self.dabt_marker),
                ("dabt_refused", self.dabt_refused),
                ("sysreg_sgi", self.sysreg_sgi),
                ("sysreg_other", self.sysreg_other),
                ("irq", self.irq),
                ("wfx", self.wfx),
                ("other", self.other),
            ],
        );
        common::report::metrics_prefixed(
            prefix,
            &[
                ("irq_vtimer", self.irq_vtimer),
                ("irq_spi", self.irq_spi),
                ("irq_kick", self.irq_kick),
                ("irq_maint", self.irq_maint),
                ("irq_spurious", self.irq_spurious),
                ("irq_doorbell", self.irq_doorbell),
                ("irq_lpi", self.irq_lpi),
                ("irq_other", self.irq_other),
                ("sgis", self.sgis),
            ],
        );
        common::report::metrics_prefixed(
            prefix,
            &[
                ("disk_exits", self.disk_exits()),
                ("wfi_blocks", self.wfi_blocks),
                ("wfi_pending", self.wfi_pending),
                ("doorbell_wakeups", self.doorbell_wakeups),
                ("lpi_wakeups", self.lpi_wakeups),
                ("lpis_injected", self.lpis_injected),
                ("swaps", self.swaps),
                ("inst_guest", self.inst_guest),
                ("inst_hyp", self.inst_hyp),
            ],
        );
        if self.spi.iter().any(|n| *n != 0) {
            common::println!("@@M{}", SpiCounts(prefix, &self.spi));
        }
    }
}

/// ` <prefix>el2_spiN=count` for each SPI taken at least once.
struct SpiCounts<'a>(&'a str, &'a [u64; SPI_END - 32]);

impl core::fmt::Display for SpiCounts<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, n) in self.1.iter().enumerate() {
            if *n != 0 {
                write!(f, " {}el2_spi{}={n}", self.0, i + 32)?;
            }
        }
        Ok(())
    }
}
