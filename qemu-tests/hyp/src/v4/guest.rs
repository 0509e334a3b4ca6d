// SPDX-License-Identifier: MIT OR Apache-2.0
//! The vLPI guest, driven by orders: the hyp side of `HVC_VLPI_STEP`.
//!
//! The guest program (`guest/src/programs/vlpi.rs`) counts every interrupt it takes at EL1 per
//! vINTID, in counters whose address it gives at HELLO (no stage 2: the hyp reads them in
//! place), and otherwise only carries out orders: spin until N vLPIs arrived, WFI until they
//! did, make `edu` raise its MSI. A scenario is then plain sequential code on the hyp side:
//!
//! ```text
//! let mut g = GuestLink::new();  g.load();  g.start()?;     // guest at its HELLO
//! (map vLPIs, make the vPE resident, issue INTs ...)
//! let r = g.order(Order::Wait { total: 4, quiet }, |_, _| None)?;
//! r.exits.exits() == 0                                       // EL2 exits while it waited
//! g.received(8192) == 1
//! ```
//!
//! Between orders the guest sits in its NEXT hypercall. [`GuestLink::load`] / [`GuestLink::put`]
//! carry the vCPU between CPUs: its EL1 system registers and its virtual CPU interface state
//! (ICH_VMCR_EL2, ICH_AP1R0_EL2), with ICH_HCR_EL2.En set while it is loaded.

use core::time::Duration;

use common::hvc_abi::{HVC_DONE, HVC_VLPI_STEP, program, vlpi_order, vlpi_step};
use common::platform::{GUEST_BASE, GUEST_SIZE, cpu_index};
use common::{read_sysreg, write_sysreg};

use crate::exits::{self, ExitCounts};
use crate::fwd::el1::El1Context;
use crate::vcpu::{Exit, Flow, Vcpu};

/// The first vINTID the guest's counters cover.
pub const VLPI_BASE: u32 = 8192;

/// What the guest is told to do next.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Order {
    /// Spin, with no exit, until `total` vLPIs were received in all, then `quiet` more (to
    /// catch extras).
    Wait {
        /// The total to reach.
        total: u64,
        /// How long to go on watching.
        quiet: Duration,
    },
    /// WFI until `total` vLPIs were received in all.
    Wfi {
        /// The total to reach.
        total: u64,
    },
    /// `times` times: raise `edu`'s interrupt (its BAR0 at `bar0`), wait for the vLPI,
    /// acknowledge the device.
    Edu {
        /// edu's BAR0.
        bar0: usize,
        /// How many MSIs.
        times: u32,
    },
}

impl Order {
    fn encode(self) -> [u64; 3] {
        match self {
            Self::Wait { total, quiet } => [vlpi_order::WAIT, total, quiet.as_micros() as u64],
            Self::Wfi { total } => [vlpi_order::WFI, total, 0],
            Self::Edu { bar0, times } => [vlpi_order::EDU, bar0 as u64, times.into()],
        }
    }
}

/// What the guest reported when it had carried out an order.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// vLPIs (interrupts) it received so far.
    pub total: u64,
    /// Its own anomalies so far (waits that timed out, vINTIDs outside its counters).
    pub anomalies: u64,
    /// EL2 exits while it carried the order out (its NEXT hypercall not counted).
    pub exits: ExitCounts,
    /// The CPU it ran on.
    pub cpu: usize,
}

/// The vLPI guest's vCPU and what the hyp knows of it.
pub struct GuestLink {
    /// The vCPU.
    pub vcpu: Vcpu,
    recv: usize,
    recv_len: usize,
    el1: Option<El1Context>,
    vmcr: u64,
    ap1r0: u64,
}

impl Default for GuestLink {
    fn default() -> Self {
        Self::new()
    }
}

impl GuestLink {
    /// A vCPU that will run guest program `VLPI`; not started, not loaded.
    pub fn new() -> Self {
        Self {
            vcpu: Vcpu::new(program::VLPI),
            recv: 0,
            recv_len: 0,
            el1: None,
            vmcr: 0,
            ap1r0: 0,
        }
    }

    /// Loads the vCPU on this CPU: its EL1 context if it ran elsewhere, its virtual CPU
    /// interface state, ICH_HCR_EL2.En.
    pub fn load(&mut self) {
        if let Some(ctx) = self.el1.take() {
            ctx.restore();
        }
        // SAFETY: at EL2 with no guest running on this CPU; these only configure the virtual
        // CPU interface EL1 sees (this vCPU's saved VMCR and active priorities, or the reset
        // values before its first run), and the En bit that lets it signal vLPIs.
        unsafe {
            write_sysreg!(ich_vmcr_el2, self.vmcr);
            write_sysreg!(ich_ap1r0_el2, self.ap1r0);
            write_sysreg!(ich_hcr_el2, 1u64);
        }
        common::sysreg::isb();
    }

    /// Puts the vCPU: saves its virtual CPU interface state and EL1 context, clears
    /// ICH_HCR_EL2.En.
    pub fn put(&mut self) {
        self.vmcr = read_sysreg!(ich_vmcr_el2);
        self.ap1r0 = read_sysreg!(ich_ap1r0_el2);
        // SAFETY: at EL2 with no guest running; disabling the virtual CPU interface only stops
        // it signalling virtual interrupts to EL1.
        unsafe { write_sysreg!(ich_hcr_el2, 0u64) };
        common::sysreg::isb();
        self.el1 = Some(El1Context::save());
    }

    /// Runs the guest from its entry to its HELLO (it then waits for its first order).
    ///
    /// # Errors
    /// The exit that stopped it instead.
    pub fn start(&mut self) -> Result<(), Exit> {
        let mut hello = None;
        let r = self.vcpu.run_until_done(|_, exit| match *exit {
            Exit::Hvc {
                nr: HVC_VLPI_STEP,
                args: [vlpi_step::HELLO, addr, len],
            } => {
                hello = Some((addr as usize, len as usize));
                Some(Flow::Done(0))
            }
            _ => None,
        });
        let Some((addr, len)) = hello else {
            return Err(r.map_or_else(
                |e| e,
                |status| Exit::Hvc {
                    nr: HVC_DONE,
                    args: [status, 0, 0],
                },
            ));
        };
        let end = addr.saturating_add(len.saturating_mul(2));
        if addr % 2 != 0 || addr < GUEST_BASE || end > GUEST_BASE + GUEST_SIZE {
            return Err(Exit::Hvc {
                nr: HVC_VLPI_STEP,
                args: [vlpi_step::HELLO, addr as u64, len as u64],
            });
        }
        self.recv = addr;
        self.recv_len = len;
        Ok(())
    }

    /// Gives the guest `order` and runs it until it reports the order carried out. `hook`
    /// sees every other exit first (`None`: the default handling of `Vcpu::run_until_done`).
    ///
    /// # Errors
    /// The exit that stopped the guest instead (a DONE means it gave up).
    pub fn order(
        &mut self,
        order: Order,
        mut hook: impl FnMut(&mut Vcpu, &Exit) -> Option<Flow>,
    ) -> Result<Report, Exit> {
        let [what, a, b] = order.encode();
        self.vcpu.regs.x[0] = what;
        self.vcpu.regs.x[1] = a;
        self.vcpu.regs.x[2] = b;
        let mut next = None;
        let before = exits::snapshot();
        let r = self.vcpu.run_until_done(|vcpu, exit| match *exit {
            Exit::Hvc {
                nr: HVC_VLPI_STEP,
                args: [vlpi_step::NEXT, total, anomalies],
            } => {
                next = Some((total, anomalies));
                Some(Flow::Done(0))
            }
            _ => hook(vcpu, exit),
        });
        let mut exits = exits::snapshot().since(&before);
        let Some((total, anomalies)) = next else {
            return Err(r.map_or_else(
                |e| e,
                |status| Exit::Hvc {
                    nr: HVC_DONE,
                    args: [status, 0, 0],
                },
            ));
        };
        exits.hvc -= 1;
        Ok(Report {
            total,
            anomalies,
            exits,
            cpu: cpu_index(),
        })
    }

    /// Tells the guest to finish and runs it to its DONE. Returns its failed checks.
    ///
    /// # Errors
    /// The exit that stopped it instead.
    pub fn stop(&mut self) -> Result<u64, Exit> {
        self.vcpu.regs.x[0] = vlpi_order::STOP;
        self.vcpu.run_until_done(|_, _| None)
    }

    /// How many times the guest took vINTID `vintid` (`u32::MAX` outside its counters).
    pub fn received(&self, vintid: u32) -> u32 {
        let i = vintid.wrapping_sub(VLPI_BASE) as usize;
        if i >= self.recv_len {
            return u32::MAX;
        }
        // `start` checked the counters lie in guest RAM; the guest updates each u16 atomically.
        crate::rawmem::read_guest_u16(self.recv + 2 * i).map_or(u32::MAX, u32::from)
    }
}
