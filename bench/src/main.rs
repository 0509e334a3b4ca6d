// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmarks behind `cargo xtask bench`, run as a release build.
//!
//! `its-bench SECTION...` runs the named sections (`its-bench --list` names them). The harness
//! is hand-rolled: a warm-up of at least [`WARM_UP`], then [`SAMPLES`] samples, each timed with
//! [`Instant`] around enough passes to last at least [`MIN_SAMPLE`]; inputs and outputs go
//! through [`black_box`] so the optimiser can neither precompute nor drop the work. Figures are
//! per item (ns per command): the median and the minimum over the samples.
//!
//! The other sections count rather than time: command-queue traffic ([`counts`]) and table
//! memory ([`memory`]) on the host GIC model, brought up by the test kit's rig ([`model_rig`]).
//!
//! Besides its human-readable lines, every section prints its figures as `@@M <name> key=value
//! ...` lines, the protocol of the QEMU images, which `cargo xtask bench` parses into its
//! report.

mod counts;
mod memory;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use its_core::addr::{IttAddr, PhysAddr};
use its_core::cmd::{CmdBlock, Command, IdBits};
use its_core::ids::{CollectionId, DeviceId, EventId, IntId, ProcessorNumber, RdBase, VpeId};
use its_model::ModelConfig;
use its_testkit::{Rig, Settings, V4};
use vpe_sched::V4Config;
use zerocopy::little_endian::U64;

/// Samples per figure.
const SAMPLES: usize = 101;
/// Minimum warm-up time per figure.
const WARM_UP: Duration = Duration::from_millis(300);
/// Minimum duration of one sample (many timer ticks, so the clock's resolution does not
/// matter).
const MIN_SAMPLE: Duration = Duration::from_micros(200);

/// Commands in a 64 KiB command queue: 16 pages of 4 KiB (GITS_CBASER.Size = 15).
const RING_COMMANDS: usize = 64 * 1024 / CmdBlock::SIZE;

/// The command queue of every rig: Linux's size, 64 KiB (2048 slots).
pub const QUEUE_BYTES: usize = 0x1_0000;

/// The host GIC the counting sections run against: the test kit's rig on `cfg` (QEMU's
/// GICv4.0 model: commands run during the GITS_CWRITER write, as QEMU does), with the
/// drivers' default waits, as a hypervisor leaves them, and a [`QUEUE_BYTES`] queue.
///
/// The bring-up's events stay in the platform's log (`table-memory` reads its allocations);
/// the counting sections run thousands of commands, so nothing more is recorded.
///
/// # Panics
/// If bring-up fails: the model is QEMU's, so that is a bug in the crates.
pub fn model_rig(cfg: ModelConfig) -> Rig {
    let rig = Rig::with(
        cfg,
        Settings {
            queue_bytes: QUEUE_BYTES,
            timeout: None,
        },
    );
    rig.plat.set_recording(false);
    rig
}

/// [`model_rig`] plus the GICv4 layer (256 doorbells through a proxy device: QEMU has no
/// DirectLPI; the drivers' default waits), leaked: `GicV4` borrows the layers below it, and a
/// benchmark process builds a handful.
///
/// # Panics
/// If bring-up fails.
pub fn model_v4(cfg: ModelConfig) -> V4<'static> {
    let rig = model_rig(cfg);
    let dbs = rig.doorbell_config(256);
    V4::leak(rig, dbs, V4Config::default())
}

/// Per-item timing of one loop.
struct Figures {
    median_ns: f64,
    min_ns: f64,
    passes_per_sample: u32,
}

/// Times `pass`, which handles `items` items per call.
fn measure(items: usize, mut pass: impl FnMut()) -> Figures {
    let start = Instant::now();
    let mut warm_passes = 0u32;
    while start.elapsed() < WARM_UP || warm_passes < 10 {
        pass();
        warm_passes += 1;
    }
    // Passes per sample, from the warm-up rate.
    let per_pass = start.elapsed() / warm_passes;
    let passes = (MIN_SAMPLE.as_nanos() / per_pass.as_nanos().max(1) + 1) as u32;
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..passes {
                pass();
            }
            t.elapsed().as_nanos() as f64 / f64::from(passes) / items as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Figures {
        median_ns: samples[SAMPLES / 2],
        min_ns: samples[0],
        passes_per_sample: passes,
    }
}

/// The command mix of one 16-command round `r`, a plausible hypervisor workload: map a device
/// and its events (physical and virtual), synchronise, then the run-time commands (invalidate,
/// move, retarget, discard).
fn round(r: u32) -> [Command; 16] {
    let device = DeviceId::new(r % 64);
    let event = EventId::new(r % 32);
    let vpe = VpeId::new((r % 16) as u16);
    let icid = CollectionId::new((r % 4) as u16);
    let rdbase = RdBase::from_processor(ProcessorNumber::new((r % 4) as u16));
    let lpi = IntId::new(8192 + r);
    let no_db = IntId::new(1023);
    let itt =
        IttAddr::new(PhysAddr::new(0x4000_0000 + u64::from(r) * 0x1000)).expect("4 KiB aligned");
    let size = IdBits::new(5).expect("5 bits");
    let event2 = EventId::new(r % 32 + 1);
    [
        Command::Mapd {
            device,
            size,
            itt,
            valid: true,
        },
        Command::Mapti {
            device,
            event,
            pintid: lpi,
            icid,
        },
        Command::Mapti {
            device,
            event: event2,
            pintid: IntId::new(lpi.get() + 1),
            icid,
        },
        Command::Sync { rdbase },
        Command::Vmapti {
            device,
            event,
            vpe,
            vintid: lpi,
            db: no_db,
        },
        Command::Vmapti {
            device,
            event: event2,
            vpe,
            vintid: IntId::new(lpi.get() + 1),
            db: IntId::new(8192 + 4096 + r % 16),
        },
        Command::Vsync { vpe },
        Command::Inv { device, event },
        Command::Int { device, event },
        Command::Movi {
            device,
            event,
            icid: CollectionId::new(((r + 1) % 4) as u16),
        },
        Command::Vmovi {
            device,
            event,
            vpe: VpeId::new(((r + 1) % 16) as u16),
            d: false,
            db: no_db,
        },
        Command::Vmovp {
            seq: 0,
            its_list: 0,
            vpe,
            rdbase,
        },
        Command::Vsync { vpe },
        Command::Discard { device, event },
        Command::Clear { device, event },
        Command::Sync { rdbase },
    ]
}

/// Encodes every command into its ring slot.
#[inline(never)]
fn encode_pass(commands: &[Command], ring: &mut [CmdBlock]) {
    for (slot, command) in ring.iter_mut().zip(commands) {
        *slot = command.encode_block();
    }
}

/// Stores 32 bytes into every ring slot, with values that cost one add to compute: the same
/// stores as `encode_pass` without the encoding. It builds the block from its public field
/// rather than with `CmdBlock::from_dwords`, which is not inlined across crates and would put
/// a call in the loop.
#[inline(never)]
fn store_pass(seed: u64, ring: &mut [CmdBlock]) {
    for (i, slot) in (0u64..).zip(ring.iter_mut()) {
        *slot = CmdBlock([U64::new(seed + i); 4]);
    }
}

fn cmd_encode() {
    let commands: Vec<Command> = (0..RING_COMMANDS as u32 / 16).flat_map(round).collect();
    let mut ring = vec![CmdBlock::default(); RING_COMMANDS];
    let encode = measure(RING_COMMANDS, || {
        encode_pass(black_box(&commands), black_box(&mut ring));
        black_box(&ring);
    });
    let store = measure(RING_COMMANDS, || {
        store_pass(black_box(7), black_box(&mut ring));
        black_box(&ring);
    });
    println!("cmd-encode: Command::encode_block of a full command queue vs a plain store loop");
    println!(
        "  workload  {RING_COMMANDS} commands per pass into a [CmdBlock; {RING_COMMANDS}] \
         ({} KiB ring), a 16-command mix repeated:",
        RING_COMMANDS * CmdBlock::SIZE / 1024
    );
    println!(
        "            MAPD MAPTI MAPTI SYNC VMAPTI VMAPTI VSYNC INV INT MOVI VMOVI VMOVP VSYNC \
         DISCARD CLEAR SYNC"
    );
    println!(
        "  method    {SAMPLES} samples of {}/{} passes after >= {} ms warm-up; Instant, \
         black_box on input and ring",
        encode.passes_per_sample,
        store.passes_per_sample,
        WARM_UP.as_millis()
    );
    println!(
        "  encode    median {:6.2} ns/command   min {:6.2} ns/command",
        encode.median_ns, encode.min_ns
    );
    println!(
        "  store     median {:6.2} ns/command   min {:6.2} ns/command   (32-byte store per slot: \
         the memory bound)",
        store.median_ns, store.min_ns
    );
    println!(
        "  ratio     encode / store = {:.2} (medians), {:.2} (mins)",
        encode.median_ns / store.median_ns,
        encode.min_ns / store.min_ns
    );
    println!(
        "@@M cmd_encode commands={RING_COMMANDS} samples={SAMPLES} encode_median_ns={:.3} \
         encode_min_ns={:.3} store_median_ns={:.3} store_min_ns={:.3} passes={}/{}",
        encode.median_ns,
        encode.min_ns,
        store.median_ns,
        store.min_ns,
        encode.passes_per_sample,
        store.passes_per_sample
    );
}

/// A benchmark section: a name and what prints its figures.
struct Section {
    name: &'static str,
    run: fn(),
}

const SECTIONS: &[Section] = &[
    Section {
        name: "cmd-encode",
        run: cmd_encode,
    },
    Section {
        name: "cmdq-batch",
        run: counts::cmdq_batch,
    },
    Section {
        name: "vlpi-map",
        run: counts::vlpi_map,
    },
    Section {
        name: "table-memory",
        run: memory::table_memory,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for s in SECTIONS {
            println!("{}", s.name);
        }
        return ExitCode::SUCCESS;
    }
    let mut chosen = Vec::new();
    for arg in &args {
        match SECTIONS.iter().find(|s| s.name == arg) {
            Some(s) => chosen.push(s),
            None => {
                eprintln!("its-bench: unknown section `{arg}` (--list names them)");
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = SECTIONS.iter().collect();
    }
    for s in chosen {
        (s.run)();
    }
    ExitCode::SUCCESS
}
