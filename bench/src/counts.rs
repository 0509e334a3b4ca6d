// SPDX-License-Identifier: MIT OR Apache-2.0
//! Command-queue traffic, counted on the host model (deterministic: no timing).
//!
//! For each batch size N the same mapping is done twice on one model, each time on a fresh
//! device, and `QueueStats` is read around it:
//!
//! - this driver: its batch API (`Its::map_events`, `GicV4::map_vlpis`): the commands written
//!   contiguously, one GITS_CWRITER write and one completion wait per batch that fits the ring;
//! - Linux's scheme (`its_send_single_command` / `its_send_single_vcommand`): each command
//!   followed by its own SYNC or VSYNC, posted with one GITS_CWRITER write and waited for
//!   before the next, done here with the same queue's one-command post + wait
//!   (`CmdQueue::post(&[cmd], &[sync])` then `CmdQueue::wait`).

use its_cmdq::{QueueStats, SyncTarget};
use its_core::cmd::Command;
use its_core::ids::{DeviceId, EventId, IntId, Lpi, VLpi};
use its_model::ModelConfig;
use vpe_sched::{VlpiConfig, VmConfig};

use its_testkit::ModelIts;

use crate::{QUEUE_BYTES, model_rig, model_v4};

/// Batch sizes: 1, 2, 4, ..., 4096.
pub const SIZES: [u32; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// What one mapping cost the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Commands written (SYNC/VSYNC included).
    pub cmds: u64,
    /// GITS_CWRITER writes.
    pub cwriter_writes: u64,
    /// Completion waits (`CmdQueue::wait` calls).
    pub waits: u64,
    /// Waits for room in the ring (a batch larger than the ring).
    pub room_waits: u64,
}

impl Cost {
    fn between(a: QueueStats, b: QueueStats) -> Self {
        Self {
            cmds: b.commands - a.commands,
            cwriter_writes: b.cwriter_writes - a.cwriter_writes,
            waits: b.waits - a.waits,
            room_waits: b.full_waits - a.full_waits,
        }
    }

    fn fields(&self, who: &str) -> String {
        format!(
            "{who}_cmds={} {who}_cwriter_writes={} {who}_waits={} {who}_room_waits={}",
            self.cmds, self.cwriter_writes, self.waits, self.room_waits
        )
    }
}

/// Runs `f` and returns what it cost the queue of `its`.
fn counted(its: &ModelIts, f: impl FnOnce()) -> Cost {
    let a = its.queue().stats();
    f();
    Cost::between(a, its.queue().stats())
}

/// Linux's scheme: every command posted alone with its sync, then waited for.
fn one_at_a_time(its: &ModelIts, n: u32, cmd: impl Fn(u32) -> (Command, SyncTarget)) {
    for i in 0..n {
        let (c, s) = cmd(i);
        let t = its.queue().post(&[c], &[s]).expect("post");
        its.queue().wait(t).expect("wait");
    }
}

/// Undoes mappings the driver does not know about (made by [`one_at_a_time`]): one DISCARD
/// batch.
fn discard_all(its: &ModelIts, dev: DeviceId, n: u32, sync: SyncTarget) {
    let out = its
        .execute(
            n as usize,
            |e| Command::Discard {
                device: dev,
                event: EventId::new(e as u32),
            },
            &[sync],
        )
        .expect("DISCARD batch");
    assert!(out.error().is_none(), "DISCARD batch: {:?}", out.error());
}

fn lpi(i: u32) -> Lpi {
    Lpi::new(8192 + i).expect("an LPI")
}

/// `cmdq-batch`: mapping N events of one device to physical LPIs (MAPTI), `Its::map_events`
/// vs one MAPTI + SYNC at a time.
pub fn cmdq_batch() {
    let rig = model_rig(ModelConfig::qemu(1));
    let its = rig.its();
    let cpu0 = *its.cpu(0).expect("cpu0");
    println!(
        "cmdq-batch: map N events of one device (MAPTI), counted on the host model \
         (its_model::GicModel, {} KiB queue)",
        QUEUE_BYTES / 1024
    );
    println!(
        "  {:>5}  {:>24}  {:>24}",
        "N", "this driver: cmd/CWR/wait", "Linux: cmd/CWR/wait"
    );
    for (k, &n) in SIZES.iter().enumerate() {
        let mut dev = its
            .map_device(DeviceId::new(0x100 + 2 * k as u32), n)
            .expect("MAPD");
        let items: Vec<(u32, Lpi, usize)> = (0..n).map(|e| (e, lpi(e), 0)).collect();
        let ours = counted(its, || {
            its.map_events(&mut dev, &items).expect("map_events")
        });
        its.unmap_device(&mut dev).expect("unmap");

        let mut dev = its
            .map_device(DeviceId::new(0x101 + 2 * k as u32), n)
            .expect("MAPD");
        let id = dev.id();
        let linux = counted(its, || {
            one_at_a_time(its, n, |e| {
                (
                    Command::Mapti {
                        device: id,
                        event: EventId::new(e),
                        pintid: lpi(e).intid(),
                        icid: cpu0.icid,
                    },
                    SyncTarget::Redist(cpu0.rdbase),
                )
            })
        });
        discard_all(its, id, n, SyncTarget::Redist(cpu0.rdbase));
        its.unmap_device(&mut dev).expect("unmap");
        println!(
            "  {n:>5}  {:>24}  {:>24}",
            format!(
                "{}/{}/{}",
                ours.cmds,
                ours.cwriter_writes,
                ours.waits + ours.room_waits
            ),
            format!(
                "{}/{}/{}",
                linux.cmds,
                linux.cwriter_writes,
                linux.waits + linux.room_waits
            ),
        );
        println!(
            "@@M cmdq_batch n={n} {} {}",
            ours.fields("ours"),
            linux.fields("linux")
        );
    }
    rig.model.assert_no_errors();
}

/// `vlpi-map`: mapping N events to vLPIs of one vPE, `GicV4::map_vlpis` vs Linux's VMAPTI +
/// VSYNC per vLPI; for fresh events, and for events that had a host LPI (Linux then sends
/// DISCARD + SYNC before each VMAPTI + VSYNC; `map_vlpis` one DISCARD batch, then the VMAPTI
/// batch).
pub fn vlpi_map() {
    let r = model_v4(ModelConfig::qemu(1));
    let its = r.its();
    let cpu0 = *its.cpu(0).expect("cpu0");
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .expect("VM");
    let vpe = vm.vpe(0).expect("vPE 0").id();
    let cfg = |e: u32| VlpiConfig {
        vintid: VLpi::new(8192 + e).expect("a vINTID"),
        priority: 0xa0,
        enabled: true,
        doorbell: false,
    };
    println!(
        "vlpi-map: map N events to vLPIs of one vPE, counted on the host model (GICv4.0, proxy \
         doorbells)"
    );
    println!(
        "  {:>9}  {:>5}  {:>24}  {:>24}",
        "events", "N", "this driver: cmd/CWR/wait", "Linux: cmd/CWR/wait"
    );
    let mut next_dev = 0x200;
    let mut device = |n: u32| {
        next_dev += 1;
        its.map_device(DeviceId::new(next_dev), n).expect("MAPD")
    };
    for forwarded in [false, true] {
        let kind = if forwarded { "forwarded" } else { "fresh" };
        for &n in &SIZES {
            let host: Vec<(u32, Lpi, usize)> = (0..n).map(|e| (e, lpi(e), 0)).collect();
            // This driver.
            let mut dev = device(n);
            if forwarded {
                its.map_events(&mut dev, &host).expect("host LPIs");
            }
            let items: Vec<(u32, usize, VlpiConfig)> = (0..n).map(|e| (e, 0, cfg(e))).collect();
            let ours = counted(its, || {
                r.g.map_vlpis(its, &mut dev, &vm, &items)
                    .expect("map_vlpis")
            });
            for e in 0..n {
                r.g.unmap_vlpi(its, &mut dev, e, &vm, false)
                    .expect("unmap_vlpi");
            }
            its.unmap_device(&mut dev).expect("unmap");

            // Linux.
            let mut dev = device(n);
            if forwarded {
                its.map_events(&mut dev, &host).expect("host LPIs");
            }
            let id = dev.id();
            let linux = counted(its, || {
                for e in 0..n {
                    if forwarded {
                        one_at_a_time(its, 1, |_| {
                            (
                                Command::Discard {
                                    device: id,
                                    event: EventId::new(e),
                                },
                                SyncTarget::Redist(cpu0.rdbase),
                            )
                        });
                    }
                    one_at_a_time(its, 1, |_| {
                        (
                            Command::Vmapti {
                                device: id,
                                event: EventId::new(e),
                                vpe,
                                vintid: IntId::new(8192 + e),
                                db: IntId::NONE,
                            },
                            SyncTarget::Vpe(vpe),
                        )
                    });
                }
            });
            discard_all(its, id, n, SyncTarget::Vpe(vpe));
            if forwarded {
                // The driver still records the host mappings Linux's scheme replaced: forget
                // them, their ITEs are gone.
                for e in 0..n {
                    dev.set_event(e, Default::default()).expect("event state");
                }
            }
            its.unmap_device(&mut dev).expect("unmap");
            println!(
                "  {kind:>9}  {n:>5}  {:>24}  {:>24}",
                format!(
                    "{}/{}/{}",
                    ours.cmds,
                    ours.cwriter_writes,
                    ours.waits + ours.room_waits
                ),
                format!(
                    "{}/{}/{}",
                    linux.cmds,
                    linux.cwriter_writes,
                    linux.waits + linux.room_waits
                ),
            );
            println!(
                "@@M vlpi_map events={kind} n={n} {} {}",
                ours.fields("ours"),
                linux.fields("linux")
            );
        }
    }
    r.g.destroy_vm(&mut vm).expect("destroy_vm");
    r.model.assert_no_errors();
}
