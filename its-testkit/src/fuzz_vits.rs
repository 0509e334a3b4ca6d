// SPDX-License-Identifier: MIT OR Apache-2.0
//! The stateful fuzz harness of the guest-facing ITS: a guest's register accesses and command
//! queues against a [`Vits`] over the vpe-sched backend, on the host model of QEMU's GICv4.
//!
//! An input is a setup byte and a sequence of [`Step`]s in a small byte code that every
//! byte string decodes to ([`decode`]; [`encode`] writes it, for seeds). After every step
//! the harness checks, and panics (the fuzzer's finding) when one fails:
//! - nothing panicked, and the model of the physical GIC recorded no error (every physical
//!   command the driver sent was one the ITS accepts);
//! - every physical command naming a DeviceID names an assigned device's physical ID, one
//!   of the pool's, or the doorbells' proxy device; every VMAPTI's vINTID is within the VM's
//!   range and its vPE one of the VM's;
//! - the vITS never asked the backend for something it refused (no backend error);
//! - the vITS's records match the physical ITS: a live event has a virtual ITE with the
//!   guest's INTID and the vPE of its vCPU, a parked one none; a mapped device a valid DTE,
//!   others none; and while the queue is not stalled and no command is left half done
//!   ([`Vits::is_consistent`]) an event is live exactly when its collection is mapped;
//! - a device MSI for a live event makes its vINTID pending in that vPE's pending table;
//! - after [`Vits::teardown`] and the VM's destruction, every byte of memory the VM
//!   and its devices took is free again.
//!
//! Used by the cargo-fuzz target `vits` (`fuzz/fuzz_targets/vits.rs`) and by the stable
//! replay of its corpus (`its-testkit/tests/fuzz_corpus.rs`).

use core::time::Duration;

use its_core::addr::PhysAddr;
use its_core::cmd::Command;
use its_core::ids::DeviceId;
use its_model::{GicModel, ItsHandle, ModelConfig};
use vits::{
    AssignedDevice, CommandError, DevicePool, GuestMemory, GuestMemoryError, LpiConfigTable, Vits,
    VitsConfig, VpeSchedBackend,
};
use vpe_sched::{V4Config, Vm, VmConfig};

use crate::rig::{P, PROXY_DEVICE, Rig, Settings};

type Backend<'a> = VpeSchedBackend<'a, 'a, ItsHandle, P, 8>;
type V<'a> = Vits<Backend<'a>, 8, 64, 8>;

/// Guest RAM: 1 MiB at this guest-physical address.
pub const RAM_BASE: u64 = 0x4000_0000;
const RAM_BYTES: usize = 0x10_0000;
/// Where seeds and guided register values put the queue, the LPI configuration table, the
/// device table, the collection table and the ITTs.
pub const QUEUE: u64 = RAM_BASE;
/// The LPI configuration table (64 KiB: 16-bit INTIDs).
pub const PROP: u64 = RAM_BASE + 0x1_0000;
/// The device table.
pub const DEVICE_TABLE: u64 = RAM_BASE + 0x2_0000;
/// The collection table.
pub const COLLECTION_TABLE: u64 = RAM_BASE + 0x3_0000;
/// ITTs.
pub const ITT: u64 = RAM_BASE + 0x4_0000;
/// Memory that is not the VM's.
pub const NOT_RAM: u64 = 0x1_0000_0000;

/// The assigned devices: (guest DeviceID, physical DeviceID).
pub const ASSIGNED: [(u32, u32); 3] = [(0x10, 0x10), (0x18, 0x18), (0x20, 0x120)];
/// The pool of physical DeviceIDs for made-up devices.
pub const POOL: (u32, u32) = (0x8000, 3);
/// The doorbells' proxy device.
pub const PROXY: u32 = PROXY_DEVICE;
/// Guest DeviceIDs the structured commands pick from: the assigned ones, then made-up ones
/// (more than the pool holds).
pub const DEVICE_CHOICES: [u32; 8] = [0x10, 0x18, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34];

/// The registers a [`Step::Write`] or [`Step::Read`] selects (`sel & 0x1f`): offsets into
/// the control frame, including bad ones.
pub const REGISTERS: [u64; 32] = [
    0x0, 0x4, 0x8, 0xc, 0x80, 0x84, 0x88, 0x8c, 0x90, 0x94, 0x100, 0x108, 0x110, 0x118, 0x120,
    0x128, 0x130, 0x138, 0x104, 0x10c, 0xffe8, 0x10, 0xffd0, 0x1_0000, 0x3, 0x88, 0x88, 0x0, 0x80,
    0x100, 0x108, 0x90,
];

/// One command of a [`Step::Commands`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestCmd {
    /// A command built from a kind (`kind % 16`, see [`GuestCmd::build`]) and 8 bytes of
    /// fields, biased towards IDs that exist.
    Structured {
        /// The kind.
        kind: u8,
        /// Field bytes.
        f: [u8; 8],
    },
    /// A raw 32-byte command (kind 12).
    Raw([u64; 4]),
}

/// One step of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A register write: `sel & 0x1f` picks from [`REGISTERS`], `sel & 0x20` makes it 64-bit,
    /// `sel & 0x40` guides the value (a queue, tables, a CWRITER in RAM and in range).
    Write {
        /// Selector.
        sel: u8,
        /// Value.
        value: u64,
    },
    /// A register read (as [`Step::Write`]'s selector).
    Read {
        /// Selector.
        sel: u8,
    },
    /// Commands written at the guest's write offset, then a 64-bit GITS_CWRITER write.
    Commands(Vec<GuestCmd>),
    /// The guest writes a byte of its LPI configuration table.
    Prop {
        /// INTID - 8192 (modulo 8192).
        index: u16,
        /// The byte.
        byte: u8,
    },
    /// The hypervisor hands over the LPI configuration table (`sel % 4`: none, 16 bits,
    /// 14 to 16 bits, an address that is not RAM).
    LpiConfig {
        /// Selector.
        sel: u8,
    },
    /// A device MSI for the `sel`-th live event (through the physical GITS_TRANSLATER).
    Msi {
        /// Selector.
        sel: u8,
    },
    /// [`Vits::process`].
    Process,
    /// GITS_CWRITER written with Retry at the guest's write offset.
    Retry,
}

/// Reads bytes, giving zeros once the input is used up.
struct Reader<'d> {
    data: &'d [u8],
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
}

/// The setup byte: vCPUs (1 to 4) and the work budget per trap (4, 16, 64 or 256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup(pub u8);

impl Setup {
    fn vcpus(self) -> usize {
        usize::from(self.0 & 3) + 1
    }

    fn work(self) -> u32 {
        [4, 16, 64, 256][usize::from(self.0 >> 2 & 3)]
    }
}

/// Decodes an input (every byte string is one): the setup, then at most 256 steps.
pub fn decode(data: &[u8]) -> (Setup, Vec<Step>) {
    let mut r = Reader { data };
    let setup = Setup(r.u8());
    let mut steps = Vec::new();
    while !r.data.is_empty() && steps.len() < 256 {
        let step = match r.u8() % 8 {
            0 => Step::Write {
                sel: r.u8(),
                value: r.u64(),
            },
            1 => Step::Read { sel: r.u8() },
            2 => {
                let n = usize::from(r.u8() % 8) + 1;
                let cmds = (0..n)
                    .map(|_| {
                        let kind = r.u8();
                        if kind % 16 == 12 {
                            GuestCmd::Raw([r.u64(), r.u64(), r.u64(), r.u64()])
                        } else {
                            GuestCmd::Structured {
                                kind,
                                f: r.u64().to_le_bytes(),
                            }
                        }
                    })
                    .collect();
                Step::Commands(cmds)
            }
            3 => Step::Prop {
                index: u16::from(r.u8()) | u16::from(r.u8()) << 8,
                byte: r.u8(),
            },
            4 => Step::LpiConfig { sel: r.u8() },
            5 => Step::Msi { sel: r.u8() },
            6 => Step::Process,
            _ => Step::Retry,
        };
        steps.push(step);
    }
    (setup, steps)
}

/// Encodes an input ([`decode`] gives it back).
pub fn encode(setup: Setup, steps: &[Step]) -> Vec<u8> {
    let mut out = vec![setup.0];
    for s in steps {
        match s {
            Step::Write { sel, value } => {
                out.push(0);
                out.push(*sel);
                out.extend(value.to_le_bytes());
            }
            Step::Read { sel } => out.extend([1, *sel]),
            Step::Commands(cmds) => {
                out.push(2);
                out.push((cmds.len().clamp(1, 8) - 1) as u8);
                for c in cmds.iter().take(8) {
                    match c {
                        GuestCmd::Structured { kind, f } => {
                            // Kind 12 is the raw form.
                            out.push(if kind % 16 == 12 { 14 } else { *kind });
                            out.extend(f);
                        }
                        GuestCmd::Raw(raw) => {
                            out.push(12);
                            for d in raw {
                                out.extend(d.to_le_bytes());
                            }
                        }
                    }
                }
            }
            Step::Prop { index, byte } => {
                out.push(3);
                out.extend(index.to_le_bytes());
                out.push(*byte);
            }
            Step::LpiConfig { sel } => out.extend([4, *sel]),
            Step::Msi { sel } => out.extend([5, *sel]),
            Step::Process => out.push(6),
            Step::Retry => out.push(7),
        }
    }
    out
}

impl GuestCmd {
    /// The command's doublewords. Kinds: 0 MAPD, 1 MAPC, 2 MAPTI, 3 MAPI, 4 INV, 5 INVALL,
    /// 6 DISCARD, 7 MOVI, 8 MOVALL, 9 INT, 10 CLEAR, 11 SYNC, 13 a GICv4 command, 14 and
    /// 15 MAPTI again (the command that builds the most state).
    pub fn build(&self, vcpus: usize) -> [u64; 4] {
        let (kind, f) = match *self {
            Self::Raw(raw) => return raw,
            Self::Structured { kind, f } => (kind % 16, f),
        };
        // The top bit of a field byte asks for a raw (likely bad) value.
        let device = if f[0] & 0x80 != 0 {
            u32::from(f[0] & 0x7f) << 8 | u32::from(f[1])
        } else {
            DEVICE_CHOICES[usize::from(f[0]) % DEVICE_CHOICES.len()]
        };
        let event = u32::from(f[2] % 40);
        let icid = u16::from(f[3] % 10);
        let rdbase = u64::from(f[4]) % (vcpus as u64 + 1);
        let intid = if f[5] & 0x80 != 0 {
            u32::from(f[5] & 0x7f) << 9 | u32::from(f[6])
        } else {
            8192 + u32::from(f[6] % 96)
        };
        let valid = f[7] % 4 != 0;
        let dev = u64::from(device) << 32;
        match kind {
            0 => [
                0x08 | dev,
                u64::from(f[1] % 7),
                u64::from(valid) << 63 | ITT,
                0,
            ],
            1 => [
                0x09,
                0,
                u64::from(valid) << 63 | rdbase << 16 | u64::from(icid),
                0,
            ],
            3 => [0x0b | dev, u64::from(event), u64::from(icid), 0],
            4 => [0x0c | dev, u64::from(event), 0, 0],
            5 => [0x0d, 0, u64::from(icid), 0],
            6 => [0x0f | dev, u64::from(event), 0, 0],
            7 => [0x01 | dev, u64::from(event), u64::from(icid), 0],
            8 => [
                0x0e,
                0,
                rdbase << 16,
                (u64::from(f[7]) % (vcpus as u64 + 1)) << 16,
            ],
            9 => [0x03 | dev, u64::from(event), 0, 0],
            10 => [0x04 | dev, u64::from(event), 0, 0],
            11 => [0x05, 0, rdbase << 16, 0],
            13 => [
                u64::from([0x29u8, 0x2a, 0x2b, 0x21, 0x22, 0x25, 0x2d][usize::from(f[7] % 7)]),
                u64::from(f[1]) << 32,
                0,
                0,
            ],
            // 2, 14, 15: MAPTI.
            _ => [
                0x0a | dev,
                u64::from(event) | u64::from(intid) << 32,
                u64::from(icid),
                0,
            ],
        }
    }
}

/// A finding: the harness panics with it.
fn fail(msg: String) -> ! {
    panic!("vITS property violated: {msg}");
}

struct Ram(Vec<u8>);

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let off = gpa.checked_sub(RAM_BASE).ok_or(GuestMemoryError)?;
        let off = usize::try_from(off).map_err(|_| GuestMemoryError)?;
        let end = off.checked_add(buf.len()).ok_or(GuestMemoryError)?;
        buf.copy_from_slice(self.0.get(off..end).ok_or(GuestMemoryError)?);
        Ok(())
    }
}

impl Ram {
    /// Writes `data` at `gpa` if all of it is RAM.
    fn write(&mut self, gpa: u64, data: &[u8]) {
        let Some(off) = gpa
            .checked_sub(RAM_BASE)
            .and_then(|o| usize::try_from(o).ok())
        else {
            return;
        };
        if let Some(dst) = off
            .checked_add(data.len())
            .and_then(|end| self.0.get_mut(off..end))
        {
            dst.copy_from_slice(data);
        }
    }
}

/// The guest's state the harness keeps: its RAM and its queue write offset.
struct Guest {
    ram: Ram,
    wr: u32,
}

/// What a run did (for tests of the harness and its seeds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Device MSIs checked to arrive.
    pub msis: u32,
    /// The vITS's counters at the end (before teardown).
    pub stats: vits::Stats,
    /// Most events live at once.
    pub max_live: usize,
}

struct World<'a> {
    model: GicModel,
    summary: Summary,
    vm: &'a Vm<P>,
    its: V<'a>,
    guest: Guest,
    vcpus: usize,
    allowed: Vec<u32>,
}

impl World<'_> {
    fn queue(&mut self) -> (u64, u32) {
        let cb = self.its.read(&self.guest.ram, 0x80, 8).unwrap_or(0);
        let base = cb & 0x000f_ffff_ffff_f000;
        let bytes = ((cb & 0xff) as u32 + 1) * 4096;
        (base, bytes)
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Write { sel, value } => {
                let off = REGISTERS[usize::from(sel & 0x1f)];
                let size = if sel & 0x20 != 0 { 8 } else { 4 };
                let value = if sel & 0x40 != 0 {
                    self.guide(off, value)
                } else {
                    value
                };
                let _ = self.its.write(&self.guest.ram, off, size, value);
            }
            Step::Read { sel } => {
                let off = REGISTERS[usize::from(sel & 0x1f)];
                let size = if sel & 0x20 != 0 { 8 } else { 4 };
                let _ = self.its.read(&self.guest.ram, off, size);
            }
            Step::Commands(ref cmds) => {
                let (base, bytes) = self.queue();
                self.guest.wr %= bytes;
                for c in cmds {
                    let raw = c.build(self.vcpus);
                    let mut b = [0u8; 32];
                    for (i, d) in raw.iter().enumerate() {
                        b[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
                    }
                    self.guest.ram.write(base + u64::from(self.guest.wr), &b);
                    self.guest.wr = (self.guest.wr + 32) % bytes;
                }
                let _ = self
                    .its
                    .write(&self.guest.ram, 0x88, 8, u64::from(self.guest.wr));
            }
            Step::Prop { index, byte } => {
                self.guest
                    .ram
                    .write(PROP + u64::from(index % 8192), &[byte]);
            }
            Step::LpiConfig { sel } => {
                let t = match sel % 4 {
                    0 => None,
                    1 => Some(LpiConfigTable {
                        base: PROP,
                        id_bits: 16,
                    }),
                    2 => Some(LpiConfigTable {
                        base: PROP,
                        id_bits: 14 + sel / 4 % 3,
                    }),
                    _ => Some(LpiConfigTable {
                        base: NOT_RAM,
                        id_bits: 16,
                    }),
                };
                let _ = self.its.set_lpi_config(&self.guest.ram, t);
            }
            Step::Msi { sel } => self.msi(sel),
            Step::Process => {
                let _ = self.its.process(&self.guest.ram);
            }
            Step::Retry => {
                let _ = self
                    .its
                    .write(&self.guest.ram, 0x88, 8, u64::from(self.guest.wr) | 1);
            }
        }
    }

    /// A guided register value: what a sane guest would write there, with the fuzzer's
    /// bits in the fields that vary.
    fn guide(&mut self, off: u64, value: u64) -> u64 {
        match off {
            0x80 => 1 << 63 | QUEUE | (value & 0xf),
            0x100 => {
                1 << 63 | (value & 1 << 62) | DEVICE_TABLE | (value & 0x3) << 8 | (value >> 8 & 3)
            }
            0x108 => 1 << 63 | COLLECTION_TABLE | (value & 0x3) << 8,
            0x88 => {
                let (_, bytes) = self.queue();
                let slot = value % u64::from(bytes / 32);
                self.guest.wr = (slot * 32) as u32;
                slot * 32
            }
            0x0 => value & 1,
            _ => value,
        }
    }

    /// A device MSI for a live event: its vINTID must become pending in its vPE's table.
    fn msi(&mut self, sel: u8) {
        let live: Vec<_> = self.its.events().filter(|e| e.live.is_some()).collect();
        if live.is_empty() {
            return;
        }
        let e = live[usize::from(sel) % live.len()];
        let Some((vcpu, _)) = e.live else { return };
        self.model
            .translate(0, e.phys.device.get(), e.phys.event.get());
        let Ok(vpe) = self.vm.vpe(vcpu.index()) else {
            fail(format!("{e:?}: no vPE for its vCPU"))
        };
        if !self
            .model
            .vpt_pending(vpe.vpt().get())
            .contains(&e.vintid.get())
        {
            fail(format!(
                "an MSI for {e:?} is not pending in its vPE's table"
            ));
        }
        self.summary.msis += 1;
    }

    fn check(&mut self) {
        let errors = self.model.errors();
        if !errors.is_empty() {
            fail(format!("the GIC model recorded errors: {errors:?}"));
        }
        let vpes: Vec<u16> = self.vm.vpes().iter().map(|v| v.id().get()).collect();
        for (_, c) in self.model.commands(0) {
            let device = match c {
                Command::Mapd { device, .. }
                | Command::Mapti { device, .. }
                | Command::Mapi { device, .. }
                | Command::Movi { device, .. }
                | Command::Discard { device, .. }
                | Command::Int { device, .. }
                | Command::Clear { device, .. }
                | Command::Inv { device, .. }
                | Command::Vmapti { device, .. }
                | Command::Vmapi { device, .. }
                | Command::Vmovi { device, .. } => Some(device.get()),
                _ => None,
            };
            if let Some(d) = device
                && !self.allowed.contains(&d)
            {
                fail(format!("a physical command names DeviceID {d:#x}: {c}"));
            }
            match c {
                Command::Vmapti { vintid, vpe, .. }
                    if !(8192..1 << 16).contains(&vintid.get()) || !vpes.contains(&vpe.get()) =>
                {
                    fail(format!("VMAPTI outside the VM: {c}"))
                }
                Command::Vmapi { .. } => fail(format!("unexpected {c}")),
                Command::Vmovi { vpe, .. } if !vpes.contains(&vpe.get()) => {
                    fail(format!("VMOVI outside the VM: {c}"))
                }
                _ => {}
            }
        }
        self.model.clear_commands(0);
        if let Some(e) = self
            .its
            .errors()
            .find(|e| matches!(e.error, CommandError::Backend(_)))
        {
            fail(format!("the backend refused an operation: {e:?}"));
        }
        let stalled = self.its.is_stalled();
        let live = self.its.events().filter(|e| e.live.is_some()).count();
        self.summary.max_live = self.summary.max_live.max(live);
        for e in self.its.events() {
            let ite = self
                .model
                .ite(0, e.phys.device.get(), e.phys.event.get())
                .filter(|i| i.valid);
            match (e.live, ite) {
                (Some((vcpu, _)), Some(i))
                    if !i.physical
                        && i.intid == e.vintid.get()
                        && self
                            .vm
                            .vpe(vcpu.index())
                            .is_ok_and(|v| v.id().get() == i.vpe) => {}
                (None, None) => {}
                (l, i) => fail(format!("{e:?}: vITS says {l:?}, the ITS has {i:?}")),
            }
            if !stalled
                && self.its.is_consistent()
                && e.live.map(|l| l.0) != self.its.collection(e.icid)
            {
                fail(format!("{e:?}: live does not follow its collection"));
            }
        }
        let backed: Vec<u32> = self
            .its
            .devices()
            .filter(|d| d.backed)
            .map(|d| d.phys.get())
            .collect();
        for &d in &self.allowed {
            if d == PROXY {
                continue;
            }
            let valid = self.model.dte(0, d).is_some_and(|t| t.valid);
            if valid != backed.contains(&d) {
                fail(format!(
                    "DeviceID {d:#x}: DTE valid {valid}, vITS backed {}",
                    backed.contains(&d)
                ));
            }
        }
    }
}

fn allowed() -> Vec<u32> {
    let mut a: Vec<u32> = ASSIGNED.iter().map(|&(_, p)| p).collect();
    a.extend((0..POOL.1).map(|i| POOL.0 + i));
    a.push(PROXY);
    a
}

/// Runs one input with every check (see the module documentation).
///
/// # Panics
/// On any property violation (that is the point).
pub fn run(data: &[u8]) {
    let (setup, steps) = decode(data);
    let _ = run_steps(setup, &steps);
}

/// Runs decoded steps with every check, and says what the run did.
///
/// # Panics
/// On any property violation.
pub fn run_steps(setup: Setup, steps: &[Step]) -> Summary {
    // QEMU's GICv4.0 with 2 CPUs, every wait 1 ms on the model's clock.
    let t = Duration::from_millis(1);
    let rig = Rig::try_with(
        ModelConfig::qemu(2),
        Settings {
            queue_bytes: 0x1_0000,
            timeout: Some(t),
        },
    )
    .unwrap_or_else(|e| fail(format!("bring-up: {e}")));
    let dbs = rig
        .doorbells(rig.doorbell_config(16))
        .unwrap_or_else(|e| fail(format!("doorbells: {e}")));
    let g = rig
        .gicv4(
            &dbs,
            V4Config {
                dirty_timeout: t,
                commit_timeout: t,
                ..V4Config::default()
            },
        )
        .unwrap_or_else(|e| fail(format!("GICv4: {e}")));
    let live0 = rig.plat.live_bytes();
    let l2_0 = rig.l2_bytes();
    let vcpus = setup.vcpus();
    let cpus: Vec<usize> = (0..vcpus).map(|i| i % 2).collect();
    let vm = g
        .create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &cpus,
        })
        .unwrap_or_else(|e| fail(format!("create_vm: {e}")));
    let assigned: Vec<AssignedDevice> = ASSIGNED
        .iter()
        .map(|&(g, p)| AssignedDevice {
            guest: DeviceId::new(g),
            phys: DeviceId::new(p),
        })
        .collect();
    let mut cfg = VitsConfig::new(
        vcpus as u32,
        16,
        &assigned,
        DevicePool {
            first: DeviceId::new(POOL.0),
            count: POOL.1,
        },
    );
    cfg.event_bits = 5;
    cfg.work_per_trap = setup.work();
    let its: V<'_> = Vits::new(cfg, VpeSchedBackend::new(&g, rig.its(), &vm))
        .unwrap_or_else(|e| fail(format!("Vits::new: {e}")));
    rig.model.clear_commands(0);
    let mut w = World {
        model: rig.model.clone(),
        summary: Summary::default(),
        vm: &vm,
        its,
        guest: Guest {
            ram: Ram(vec![0; RAM_BYTES]),
            wr: 0,
        },
        vcpus,
        allowed: allowed(),
    };
    for s in steps {
        w.apply(s);
        w.check();
    }
    w.summary.stats = w.its.stats();
    let summary = w.summary;
    // Teardown: nothing may be left, in the physical ITS or in memory.
    if let Err(e) = w.its.teardown() {
        fail(format!("teardown: {e}"));
    }
    w.check();
    if !w.its.backend().devices().is_empty() {
        fail("teardown left physical devices mapped".into());
    }
    drop(w);
    let mut vm = vm;
    if let Err(e) = g.destroy_vm(&mut vm) {
        fail(format!("destroy_vm: {e}"));
    }
    rig.model.assert_no_errors();
    let expect = live0 + rig.l2_bytes() - l2_0;
    if rig.plat.live_bytes() != expect {
        fail(format!(
            "memory leaked: {} bytes live after teardown, {expect} expected",
            rig.plat.live_bytes()
        ));
    }
    summary
}

// ---- seeds ----------------------------------------------------------------------------------

fn write(reg: usize, wide: bool, value: u64) -> Step {
    Step::Write {
        sel: reg as u8 | if wide { 0x20 } else { 0 },
        value,
    }
}

fn read(reg: usize, wide: bool) -> Step {
    Step::Read {
        sel: reg as u8 | if wide { 0x20 } else { 0 },
    }
}

fn cmds(c: &[Command]) -> Step {
    Step::Commands(c.iter().map(|c| GuestCmd::Raw(c.encode())).collect())
}

fn prop(intid: u32, byte: u8) -> Step {
    Step::Prop {
        index: (intid - 8192) as u16,
        byte,
    }
}

/// Linux 6.1's probe (register indices into [`REGISTERS`]).
fn linux_probe() -> Vec<Step> {
    let mut s = vec![
        read(20, false),
        read(0, false),
        read(2, true),
        read(1, false),
    ];
    for n in 0..8 {
        s.push(read(10 + n, true));
    }
    // Device table: two-level, 64 KiB pages; collections: flat, one page.
    s.push(write(
        10,
        true,
        1 << 63 | 1 << 62 | 7 << 59 | 1 << 56 | 7 << 48 | DEVICE_TABLE | 1 << 10 | 2 << 8,
    ));
    s.push(read(10, true));
    s.push(write(
        11,
        true,
        1 << 63 | 7 << 59 | 4 << 56 | 7 << 48 | COLLECTION_TABLE | 1 << 10 | 2 << 8,
    ));
    s.push(read(11, true));
    s.push(write(4, true, 1 << 63 | 7 << 59 | QUEUE | 1 << 10 | 15));
    s.push(read(4, true));
    s.push(write(6, true, 0));
    s.push(read(0, false));
    s.push(write(0, false, 1));
    s
}

fn c(cmd: Command) -> Command {
    cmd
}

/// The seeds of the corpus, by name: Linux's probe and boot, a made-up device's INT/CLEAR,
/// collection moves and table changes, and hostile register writes.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use its_core::addr::IttAddr;
    use its_core::cmd::IdBits;
    use its_core::ids::{CollectionId, EventId, IntId, RdBase};
    let d = DeviceId::new;
    let e = EventId::new;
    let icid = CollectionId::new;
    let rd = RdBase::from_field;
    let itt = IttAddr::new(PhysAddr::new(ITT)).unwrap_or_else(|_| fail("ITT address".into()));
    let mapd = |dev: u32, bits: u8, valid: bool| Command::Mapd {
        device: d(dev),
        size: IdBits::new(bits).unwrap_or_default(),
        itt,
        valid,
    };
    let mapti = |dev: u32, ev: u32, intid: u32, c: u16| Command::Mapti {
        device: d(dev),
        event: e(ev),
        pintid: IntId::new(intid),
        icid: icid(c),
    };
    let sync = |cpu: u64| Command::Sync { rdbase: rd(cpu) };
    let inv = |dev: u32, ev: u32| Command::Inv {
        device: d(dev),
        event: e(ev),
    };
    let mapc = |c: u16, cpu: u64, valid: bool| Command::Mapc {
        icid: icid(c),
        rdbase: rd(cpu),
        valid,
    };
    let nvme = 0x10;

    // Linux: probe, LPIs on, per CPU MAPC + SYNC and INVALL + SYNC, NVMe one vector
    // (unmask, mask, teardown), then three vectors, an affinity change and MSIs.
    let mut linux = linux_probe();
    for i in 0..8 {
        linux.push(prop(8192 + i, 0xa2));
    }
    linux.push(Step::LpiConfig { sel: 1 });
    for cpu in 0..2u16 {
        linux.push(cmds(&[mapc(cpu, cpu.into(), true), sync(cpu.into())]));
        linux.push(read(8, true));
        linux.push(cmds(&[
            Command::Invall { icid: icid(cpu) },
            sync(cpu.into()),
        ]));
        linux.push(read(8, true));
    }
    linux.push(cmds(&[mapd(nvme, 1, true)]));
    linux.push(cmds(&[mapti(nvme, 0, 8192, 0), sync(0)]));
    linux.push(prop(8192, 0xa3));
    linux.push(cmds(&[inv(nvme, 0), sync(0)]));
    linux.push(prop(8192, 0xa2));
    linux.push(cmds(&[inv(nvme, 0), sync(0)]));
    linux.push(cmds(&[
        c(Command::Discard {
            device: d(nvme),
            event: e(0),
        }),
        sync(0),
    ]));
    linux.push(cmds(&[mapd(nvme, 1, false), sync(0)]));
    linux.push(cmds(&[mapd(nvme, 2, true)]));
    for (ev, cpu) in [(0u32, 0u16), (1, 0), (2, 1)] {
        linux.push(cmds(&[mapti(nvme, ev, 8193 + ev, cpu), sync(cpu.into())]));
        linux.push(prop(8193 + ev, 0xa3));
        linux.push(cmds(&[inv(nvme, ev), sync(cpu.into())]));
    }
    linux.push(Step::Msi { sel: 2 });
    linux.push(cmds(&[
        Command::Movi {
            device: d(nvme),
            event: e(2),
            icid: icid(0),
        },
        sync(1),
        sync(0),
    ]));
    linux.push(Step::Msi { sel: 2 });
    let linux_setup = Setup(1 | 3 << 2); // 2 vCPUs, 256 per trap

    // A made-up device tested with INT and CLEAR, on vCPU 1.
    let mut made_up = linux_probe();
    made_up.push(prop(8300, 0xa3));
    made_up.push(Step::LpiConfig { sel: 1 });
    made_up.push(cmds(&[
        mapc(0, 0, true),
        mapc(1, 1, true),
        mapd(0x30, 1, true),
        mapti(0x30, 1, 8300, 1),
        Command::Int {
            device: d(0x30),
            event: e(1),
        },
        sync(1),
        Command::Clear {
            device: d(0x30),
            event: e(1),
        },
        sync(1),
    ]));

    // Collections moved, parked, mapped again; the collection table replaced.
    let mut moves = linux_probe();
    moves.push(Step::LpiConfig { sel: 1 });
    moves.push(cmds(&[
        mapc(0, 0, true),
        mapd(0x18, 3, true),
        mapti(0x18, 0, 8192, 0),
        mapti(0x18, 1, 8193, 0),
        mapti(0x18, 2, 8194, 3),
        mapc(0, 1, true),
        mapc(3, 0, true),
    ]));
    moves.push(cmds(&[mapc(0, 0, false), mapc(0, 2, true), sync(2)]));
    moves.push(write(0, false, 0));
    moves.push(write(11, true, 1 << 63 | COLLECTION_TABLE | 1 << 8));
    moves.push(write(0, false, 1));
    moves.push(cmds(&[mapc(3, 1, true), mapd(0x18, 3, false)]));

    // Hostile: a queue that is not RAM, CWRITER beyond it, retries, bad accesses.
    let mut hostile = linux_probe();
    hostile.push(write(0, false, 0));
    hostile.push(write(4, true, 1 << 63 | NOT_RAM));
    hostile.push(write(0, false, 1));
    // Stalls on the first command; a CWRITER beyond the 4 KiB queue is ignored; a retry
    // stalls again.
    hostile.push(write(6, true, 0x20));
    hostile.push(write(6, true, 0x2000));
    hostile.push(write(6, true, 0x21));
    hostile.push(read(8, true));
    hostile.push(write(23, false, 1));
    hostile.push(write(24, true, 1));
    hostile.push(write(0, true, 1));

    vec![
        ("linux-boot", encode(linux_setup, &linux)),
        ("made-up-int", encode(Setup(1 | 2 << 2), &made_up)),
        ("collection-moves", encode(Setup(2 | 1 << 2), &moves)),
        ("hostile", encode(Setup(3), &hostile)),
    ]
}
