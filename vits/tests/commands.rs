// SPDX-License-Identifier: MIT OR Apache-2.0
//! Each command, good and bad, on the recording backend: the operations it becomes, and for
//! each bad case its architectural outcome (ignored, or stalled) and the registers after.

mod common;

use common::*;
use its_core::cmd::Command;
use its_core::ids::{EventId, VLpi};
use vits::{
    AssignedDevice, CommandError, DevicePool, LpiConfigTable, LpiProp, Op, PhysEvent, Recorder,
    RecorderError, VcpuId, Vits, VitsConfig,
};

/// Room for 4 devices, 8 events, 8 collections.
type V = Vits<Recorder<256>, 4, 8, 8>;

const NVME: u32 = 0x8;
const NET: u32 = 0x10;
/// NET's physical DeviceID (not the identity).
const NET_PHYS: u32 = 0x210;
const POOL: u32 = 0xf000;

struct Rig {
    its: V,
    ram: Ram,
    g: GuestDriver,
}

fn config(assigned: &[AssignedDevice]) -> VitsConfig<'_> {
    let mut cfg = VitsConfig::new(
        2,
        16,
        assigned,
        DevicePool {
            first: dev(POOL),
            count: 2,
        },
    );
    cfg.event_bits = 4;
    cfg
}

/// Probed, LPI table given (every LPI disabled), collections 0 and 1 on vCPUs 0 and 1.
fn rig() -> Rig {
    let assigned = [
        AssignedDevice::identity(dev(NVME)),
        AssignedDevice {
            guest: dev(NET),
            phys: dev(NET_PHYS),
        },
    ];
    let mut its = Vits::new(config(&assigned), Recorder::new()).unwrap();
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    for i in 0..256 {
        ram.set_prop(8192 + i, PROP_OFF);
    }
    its.set_lpi_config(
        &ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    g.send(&mut its, &mut ram, &[mapc(0, 0, true), mapc(1, 1, true)]);
    Rig { its, ram, g }
}

impl Rig {
    fn send(&mut self, cmds: &[Command]) -> u64 {
        self.g.send(&mut self.its, &mut self.ram, cmds)
    }

    /// The backend operations made by `cmds`.
    fn ops(&mut self, cmds: &[Command]) -> Vec<Op> {
        self.its.backend_mut().clear_log();
        let creadr = self.send(cmds);
        assert_eq!(creadr, u64::from(self.g.wr), "completed, not stalled");
        self.its.backend().log().to_vec()
    }

    /// Sends one bad command: it must be ignored (CREADR moves past it, Stalled clear, no
    /// backend operation) with this error.
    fn ignored(&mut self, cmd: Command, error: CommandError<RecorderError>) {
        let before = self.its.stats().ignored;
        let ops = self.ops(&[cmd]);
        assert_eq!(ops, [], "{cmd}: no backend operation");
        assert_eq!(self.its.stats().ignored, before + 1, "{cmd}");
        let last = self.its.errors().last().copied().expect("recorded");
        assert_eq!(last.error, error, "{cmd}");
        assert!(!last.stalled && !self.its.is_stalled());
        assert_eq!(last.command, cmd.encode());
        assert_eq!(
            last.offset,
            Some((self.g.wr + QUEUE_BYTES - 32) % QUEUE_BYTES)
        );
        assert_eq!(
            self.its.read(&self.ram, CREADR, 8).unwrap(),
            u64::from(self.g.wr)
        );
    }

    fn creadr(&mut self) -> u64 {
        self.its.read(&self.ram, CREADR, 8).unwrap()
    }
}

fn pe(d: u32, e: u32) -> PhysEvent {
    PhysEvent {
        device: dev(d),
        event: EventId::new(e),
    }
}

fn v(n: u32) -> VLpi {
    VLpi::new(n).unwrap()
}

fn vc(n: u16) -> VcpuId {
    VcpuId::new(n)
}

const OFF: LpiProp = LpiProp::from_byte(PROP_OFF);
const ON: LpiProp = LpiProp::from_byte(PROP_ON);

fn map_vlpi(d: u32, e: u32, cpu: u16, intid: u32, prop: LpiProp) -> Op {
    Op::MapVlpi {
        ev: pe(d, e),
        vcpu: vc(cpu),
        vintid: v(intid),
        prop,
    }
}

// ---- MAPD ---------------------------------------------------------------------------------

#[test]
fn mapd_maps_assigned_and_made_up_devices() {
    let mut r = rig();
    assert_eq!(
        r.ops(&[mapd(NVME, 2, true)]),
        [Op::MapDevice {
            device: dev(NVME),
            event_bits: 2
        }]
    );
    assert_eq!(
        r.ops(&[mapd(NET, 4, true)]),
        [Op::MapDevice {
            device: dev(NET_PHYS),
            event_bits: 4
        }],
        "the assigned physical DeviceID, not the guest's"
    );
    // Made-up DeviceIDs get the pool's, lowest free first.
    assert_eq!(
        r.ops(&[mapd(0x77, 1, true), mapd(0x78, 1, true)]),
        [
            Op::MapDevice {
                device: dev(POOL),
                event_bits: 1
            },
            Op::MapDevice {
                device: dev(POOL + 1),
                event_bits: 1
            }
        ]
    );
    let made_up: Vec<_> = r.its.devices().filter(|d| d.made_up).collect();
    assert_eq!(made_up.len(), 2);
    // Unmapping one frees its pool ID for the next.
    r.ops(&[mapd(0x77, 1, false)]);
    assert_eq!(
        r.ops(&[mapd(0x79, 3, true)]),
        [Op::MapDevice {
            device: dev(POOL),
            event_bits: 3
        }]
    );
}

#[test]
fn mapd_bad_cases_are_ignored() {
    let mut r = rig();
    // Devbits is 16.
    r.ignored(
        mapd(0x1_0000, 1, true),
        CommandError::DeviceOutOfRange {
            device: 0x1_0000,
            limit: 1 << 16,
        },
    );
    // IDbits is 4: Size may ask for 4 bits at most.
    r.ignored(
        mapd(NVME, 5, true),
        CommandError::IttTooLarge {
            device: NVME,
            bits: 5,
        },
    );
    // The pool has two IDs.
    r.send(&[mapd(0x70, 1, true), mapd(0x71, 1, true)]);
    r.ignored(
        mapd(0x72, 1, true),
        CommandError::PoolExhausted { device: 0x72 },
    );
    // Room for 4 devices.
    r.send(&[mapd(NVME, 1, true), mapd(NET, 1, true)]);
    r.send(&[mapd(0x70, 1, false)]);
    r.send(&[mapd(0x73, 1, true)]);
    assert_eq!(r.its.devices().count(), 4);
    r.ignored(mapd(0x74, 1, true), CommandError::DevicesExhausted);
}

#[test]
fn mapd_is_bounded_by_the_device_table_the_guest_gave() {
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let mut its: V = Vits::new(config(&assigned), Recorder::new()).unwrap();
    let mut ram = Ram::new();
    // A flat device table of one 4 KiB page: 512 DeviceIDs.
    its.write(&ram, BASER0, 8, 1 << 63 | DEVICE_TABLE).unwrap();
    its.write(&ram, BASER0 + 8, 8, 1 << 63 | COLLECTION_TABLE)
        .unwrap();
    its.write(&ram, CBASER, 8, 1 << 63 | QUEUE | 15).unwrap();
    its.write(&ram, CTLR, 4, 1).unwrap();
    let mut g = GuestDriver::new(QUEUE, QUEUE_BYTES);
    g.send(
        &mut its,
        &mut ram,
        &[mapd(512, 1, true), mapd(511, 1, true)],
    );
    let e: Vec<_> = its.errors().map(|e| e.error).collect();
    assert_eq!(
        e,
        [CommandError::DeviceOutOfRange {
            device: 512,
            limit: 512
        }]
    );
    assert_eq!(
        its.devices().map(|d| d.guest.get()).collect::<Vec<_>>(),
        [511]
    );
}

#[test]
fn mapd_without_a_valid_device_table_maps_nothing() {
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let mut its: V = Vits::new(config(&assigned), Recorder::new()).unwrap();
    let mut ram = Ram::new();
    its.write(&ram, CBASER, 8, 1 << 63 | QUEUE).unwrap();
    its.write(&ram, CTLR, 4, 1).unwrap();
    let mut g = GuestDriver::new(QUEUE, 4096);
    g.send(&mut its, &mut ram, &[mapd(NVME, 1, true)]);
    assert_eq!(
        its.errors().last().unwrap().error,
        CommandError::DeviceOutOfRange {
            device: NVME,
            limit: 0
        }
    );
    assert!(its.backend().log().is_empty());
}

#[test]
fn mapd_v0_unmaps_the_events_then_the_device() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 0),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 7), // collection 7 not mapped: parked
    ]);
    let ops = r.ops(&[mapd(NVME, 2, false)]);
    assert_eq!(ops.len(), 3);
    assert!(ops[..2].contains(&Op::UnmapVlpi { ev: pe(NVME, 0) }));
    assert!(ops[..2].contains(&Op::UnmapVlpi { ev: pe(NVME, 1) }));
    assert_eq!(ops[2], Op::UnmapDevice { device: dev(NVME) });
    assert_eq!(r.its.events().count(), 0);
    assert_eq!(r.its.devices().count(), 0);
    // Unmapping a device that is not mapped does nothing, and is no error.
    assert_eq!(r.ops(&[mapd(NVME, 2, false)]), []);
    assert_eq!(r.its.stats().ignored, 0);
}

#[test]
fn mapd_of_a_mapped_device_forgets_its_events() {
    let mut r = rig();
    r.send(&[mapd(NVME, 2, true), mapti(NVME, 0, 8192, 0)]);
    // Same size: the physical device stays.
    assert_eq!(
        r.ops(&[mapd(NVME, 2, true)]),
        [Op::UnmapVlpi { ev: pe(NVME, 0) }]
    );
    r.send(&[mapti(NVME, 1, 8193, 0)]);
    // Another size: mapped again with it.
    assert_eq!(
        r.ops(&[mapd(NVME, 3, true)]),
        [
            Op::UnmapVlpi { ev: pe(NVME, 1) },
            Op::UnmapDevice { device: dev(NVME) },
            Op::MapDevice {
                device: dev(NVME),
                event_bits: 3
            }
        ]
    );
    assert_eq!(r.its.events().count(), 0);
}

// ---- MAPC ---------------------------------------------------------------------------------

#[test]
fn mapc_moves_parks_and_restores_its_events() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 1),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 0),
    ]);
    // To another vCPU: its live events move (VMOVI), the others stay.
    let ops = r.ops(&[mapc(1, 0, true)]);
    assert_eq!(ops.len(), 2);
    for e in [0, 1] {
        assert!(ops.contains(&Op::MoveVlpi {
            ev: pe(NVME, e),
            vcpu: vc(0)
        }));
    }
    // Unmapped: its events are parked (unmapped in the backend, still the guest's).
    let ops = r.ops(&[mapc(1, 0, false)]);
    assert_eq!(ops.len(), 2);
    assert!(ops.iter().all(|o| matches!(o, Op::UnmapVlpi { .. })));
    assert_eq!(r.its.events().count(), 3);
    assert_eq!(r.its.events().filter(|e| e.live.is_none()).count(), 2);
    // Mapped again: they are mapped again, with the configuration the guest has now.
    r.ram.set_prop(8192, PROP_ON);
    let ops = r.ops(&[mapc(1, 1, true)]);
    assert_eq!(ops.len(), 2);
    assert!(ops.contains(&map_vlpi(NVME, 0, 1, 8192, ON)));
    assert!(ops.contains(&map_vlpi(NVME, 1, 1, 8193, OFF)));
    // The same mapping again: nothing to do.
    assert_eq!(r.ops(&[mapc(1, 1, true)]), []);
}

#[test]
fn mapc_bad_cases_are_ignored() {
    let mut r = rig();
    // 8 collections (CIDbits = 2).
    r.ignored(
        mapc(8, 0, true),
        CommandError::CollectionOutOfRange { icid: 8, limit: 8 },
    );
    // 2 vCPUs: RDbase 2 names none.
    r.ignored(
        mapc(2, 2, true),
        CommandError::RdbaseOutOfRange { rdbase: 2 },
    );
    assert_eq!(r.its.collection(icid(2)), None);
    // V = 0 ignores RDbase.
    assert_eq!(r.ops(&[mapc(1, 0xffff, false)]), []);
    assert_eq!(r.its.collection(icid(1)), None);
}

// ---- MAPTI / MAPI -------------------------------------------------------------------------

#[test]
fn mapti_maps_the_guest_intid_with_its_configuration() {
    let mut r = rig();
    r.ram.set_prop(8200, 0x40 | 2 | 1);
    r.send(&[mapd(NET, 3, true)]);
    assert_eq!(
        r.ops(&[mapti(NET, 5, 8200, 1)]),
        [map_vlpi(NET_PHYS, 5, 1, 8200, LpiProp::from_byte(0x41))]
    );
    // MAPI: the INTID is the EventID.
    r.send(&[mapd(0x99, 4, true)]);
    let mapi = Command::Mapi {
        device: dev(0x99),
        event: ev(0xa),
        icid: icid(0),
    };
    // EventID 10 is not an LPI: ignored.
    r.ignored(mapi, CommandError::IntidOutOfRange { intid: 0xa });
    // Into a collection that is not mapped: kept, parked, no backend operation.
    assert_eq!(r.ops(&[mapti(NET, 6, 8201, 5)]), []);
    let e = r.its.events().find(|e| e.phys == pe(NET_PHYS, 6)).unwrap();
    assert_eq!((e.live, e.vintid), (None, v(8201)));
    assert_eq!(
        r.ops(&[mapc(5, 0, true)]),
        [map_vlpi(NET_PHYS, 6, 0, 8201, OFF)]
    );
}

#[test]
fn mapti_bad_cases_are_ignored() {
    let mut r = rig();
    r.ignored(
        mapti(NVME, 0, 8192, 0),
        CommandError::DeviceNotMapped { device: NVME },
    );
    r.send(&[mapd(NVME, 1, true)]);
    // ITT overflow: Size 1 covers events 0 and 1.
    r.ignored(
        mapti(NVME, 2, 8192, 0),
        CommandError::EventOutOfRange {
            device: NVME,
            event: 2,
            limit: 2,
        },
    );
    r.ignored(
        mapti(NVME, 0, 8192, 8),
        CommandError::CollectionOutOfRange { icid: 8, limit: 8 },
    );
    // Not LPIs of the VM (16-bit vINTIDs).
    r.ignored(
        mapti(NVME, 0, 8191, 0),
        CommandError::IntidOutOfRange { intid: 8191 },
    );
    r.ignored(
        mapti(NVME, 0, 0x1_0000, 0),
        CommandError::IntidOutOfRange { intid: 0x1_0000 },
    );
    // Mapped twice (UNPREDICTABLE): the first mapping stays.
    r.send(&[mapti(NVME, 0, 8192, 0)]);
    r.ignored(
        mapti(NVME, 0, 8300, 1),
        CommandError::EventMapped {
            device: NVME,
            event: 0,
        },
    );
    assert_eq!(
        r.its
            .backend()
            .vlpi(pe(NVME, 0))
            .map(|m| (m.vintid, m.vcpu)),
        Some((v(8192), vc(0)))
    );
}

#[test]
fn mapti_beyond_the_event_room_is_ignored() {
    let mut r = rig();
    r.send(&[mapd(NVME, 4, true)]);
    let cmds: Vec<_> = (0..8).map(|e| mapti(NVME, e, 8192 + e, 0)).collect();
    r.send(&cmds);
    assert_eq!(r.its.events().count(), 8);
    r.ignored(mapti(NVME, 8, 8200, 0), CommandError::ItesExhausted);
}

// ---- INV / INVALL -------------------------------------------------------------------------

#[test]
fn inv_updates_only_what_changed() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 0, 8192, 0)]);
    assert_eq!(r.ops(&[inv(NVME, 0)]), [], "unchanged");
    r.ram.set_prop(8192, 0x80 | 2 | 1);
    assert_eq!(
        r.ops(&[inv(NVME, 0)]),
        [Op::UpdateVlpi {
            ev: pe(NVME, 0),
            prop: LpiProp::from_byte(0x81),
            inv: true
        }]
    );
    // Bit 1 (RES1) is not configuration.
    r.ram.set_prop(8192, 0x80 | 1);
    assert_eq!(r.ops(&[inv(NVME, 0)]), []);
}

#[test]
fn inv_bad_cases_are_ignored() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 1, 8193, 6)]);
    r.ignored(
        inv(NVME, 0),
        CommandError::EventNotMapped {
            device: NVME,
            event: 0,
        },
    );
    r.ignored(inv(NVME, 1), CommandError::CollectionNotMapped { icid: 6 });
    r.ignored(inv(0x55, 0), CommandError::DeviceNotMapped { device: 0x55 });
}

#[test]
fn invall_updates_the_collection_then_invalidates_its_vcpu() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 1),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 0),
    ]);
    for i in 0..3 {
        r.ram.set_prop(8192 + i, PROP_ON);
    }
    let ops = r.ops(&[invall(1)]);
    assert_eq!(ops.len(), 3);
    for e in [0, 1] {
        assert!(ops[..2].contains(&Op::UpdateVlpi {
            ev: pe(NVME, e),
            prop: ON,
            inv: false
        }));
    }
    assert_eq!(ops[2], Op::Invall { vcpu: vc(1) });
    // Collection 0's event was not touched.
    assert_eq!(r.its.backend().vlpi(pe(NVME, 2)).unwrap().prop, OFF);
    // Nothing changed: still a VINVALL (the vCPU has live vLPIs of the collection).
    assert_eq!(r.ops(&[invall(1)]), [Op::Invall { vcpu: vc(1) }]);
    // A mapped collection with no live event: nothing.
    r.send(&[mapc(3, 1, true)]);
    assert_eq!(r.ops(&[invall(3)]), []);
}

#[test]
fn invall_bad_cases_are_ignored() {
    let mut r = rig();
    r.ignored(invall(4), CommandError::CollectionNotMapped { icid: 4 });
    r.ignored(
        invall(9),
        CommandError::CollectionOutOfRange { icid: 9, limit: 8 },
    );
}

// ---- DISCARD, MOVI, MOVALL ----------------------------------------------------------------

#[test]
fn discard_unmaps_and_forgets() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 1, true),
        mapti(NVME, 0, 8192, 0),
        mapti(NVME, 1, 8193, 5),
    ]);
    assert_eq!(
        r.ops(&[discard(NVME, 0)]),
        [Op::UnmapVlpi { ev: pe(NVME, 0) }]
    );
    // Parked: forgotten, nothing to unmap.
    assert_eq!(r.ops(&[discard(NVME, 1)]), []);
    assert_eq!(r.its.events().count(), 0);
    r.ignored(
        discard(NVME, 0),
        CommandError::EventNotMapped {
            device: NVME,
            event: 0,
        },
    );
    // The event can be mapped again.
    assert_eq!(
        r.ops(&[mapti(NVME, 0, 8300, 1)]),
        [map_vlpi(NVME, 0, 1, 8300, OFF)]
    );
}

#[test]
fn movi_moves_to_the_collections_vcpu() {
    let mut r = rig();
    r.send(&[mapc(2, 0, true)]);
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 0, 8192, 0)]);
    assert_eq!(
        r.ops(&[movi(NVME, 0, 1)]),
        [Op::MoveVlpi {
            ev: pe(NVME, 0),
            vcpu: vc(1)
        }]
    );
    // Another collection on the same vCPU: only the ICID changes.
    r.send(&[mapc(3, 1, true)]);
    assert_eq!(r.ops(&[movi(NVME, 0, 3)]), []);
    assert_eq!(r.its.events().next().unwrap().icid, icid(3));
    // A parked event moved to a mapped collection is mapped.
    r.send(&[mapti(NVME, 1, 8193, 6)]);
    assert_eq!(
        r.ops(&[movi(NVME, 1, 2)]),
        [map_vlpi(NVME, 1, 0, 8193, OFF)]
    );
}

#[test]
fn movi_bad_cases_are_ignored() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 0, 8192, 0)]);
    r.ignored(
        movi(NVME, 0, 4),
        CommandError::CollectionNotMapped { icid: 4 },
    );
    r.ignored(
        movi(NVME, 0, 8),
        CommandError::CollectionOutOfRange { icid: 8, limit: 8 },
    );
    r.ignored(
        movi(NVME, 1, 1),
        CommandError::EventNotMapped {
            device: NVME,
            event: 1,
        },
    );
    assert_eq!(r.its.events().next().unwrap().icid, icid(0));
}

#[test]
fn movall_and_sync_do_nothing_but_check_rdbase() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 0, 8192, 0)]);
    let movall = |a, b| Command::Movall {
        rdbase1: rd(a),
        rdbase2: rd(b),
    };
    assert_eq!(r.ops(&[movall(0, 1), sync(1), sync(0)]), []);
    r.ignored(movall(0, 2), CommandError::RdbaseOutOfRange { rdbase: 2 });
    r.ignored(
        movall(0x1_0000, 0),
        CommandError::RdbaseOutOfRange { rdbase: 0x1_0000 },
    );
    r.ignored(sync(5), CommandError::RdbaseOutOfRange { rdbase: 5 });
    // The vLPI stayed where it was.
    assert_eq!(r.its.backend().vlpi(pe(NVME, 0)).unwrap().vcpu, vc(0));
}

// ---- INT / CLEAR --------------------------------------------------------------------------

#[test]
fn int_and_clear_reach_the_backend() {
    let mut r = rig();
    r.send(&[mapd(0x42, 1, true), mapti(0x42, 1, 8192, 1)]);
    // A made-up device: a real vLPI on the pool's DeviceID.
    assert_eq!(r.ops(&[int(0x42, 1)]), [Op::Int { ev: pe(POOL, 1) }]);
    assert!(r.its.backend().vlpi(pe(POOL, 1)).unwrap().pending);
    assert_eq!(r.ops(&[clear(0x42, 1)]), [Op::Clear { ev: pe(POOL, 1) }]);
    assert!(!r.its.backend().vlpi(pe(POOL, 1)).unwrap().pending);
}

#[test]
fn int_and_clear_bad_cases_are_ignored() {
    let mut r = rig();
    r.send(&[mapd(0x42, 1, true), mapti(0x42, 1, 8192, 7)]);
    r.ignored(int(0x42, 1), CommandError::CollectionNotMapped { icid: 7 });
    r.ignored(
        clear(0x42, 1),
        CommandError::CollectionNotMapped { icid: 7 },
    );
    r.ignored(
        int(0x42, 0),
        CommandError::EventNotMapped {
            device: 0x42,
            event: 0,
        },
    );
    r.ignored(
        int(0x42, 2),
        CommandError::EventOutOfRange {
            device: 0x42,
            event: 2,
            limit: 2,
        },
    );
    r.ignored(
        clear(0x43, 0),
        CommandError::DeviceNotMapped { device: 0x43 },
    );
}

// ---- opcodes ------------------------------------------------------------------------------

#[test]
fn gicv4_and_unknown_commands_are_ignored() {
    let mut r = rig();
    for opcode in [0x29u8, 0x2a, 0x21, 0x22, 0x25, 0x2d] {
        let before = r.its.stats().ignored;
        let creadr =
            r.g.send_raw(&mut r.its, &mut r.ram, &[[u64::from(opcode), 0, 0, 0]]);
        assert_eq!(creadr, u64::from(r.g.wr));
        assert_eq!(r.its.stats().ignored, before + 1);
        assert_eq!(
            r.its.errors().last().unwrap().error,
            CommandError::VirtualCommand { opcode }
        );
    }
    for opcode in [0x00u8, 0x02, 0x07, 0x10, 0x23, 0x2e, 0xff] {
        r.g.send_raw(&mut r.its, &mut r.ram, &[[u64::from(opcode), 0, 0, 0]]);
        let e = r.its.errors().last().unwrap().error;
        // VSGI and INVDB are GICv4.1 commands.
        if opcode == 0x23 || opcode == 0x2e {
            assert_eq!(e, CommandError::VirtualCommand { opcode });
        } else {
            assert_eq!(e, CommandError::UnknownOpcode { opcode });
        }
    }
    assert!(!r.its.is_stalled());
    assert_eq!(r.its.backend().count(), 0);
}

#[test]
fn reserved_bits_are_ignored() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true)]);
    let mut raw = mapti(NVME, 0, 8192, 0).encode();
    raw[0] |= 0xff00;
    raw[2] |= 0xffff_0000;
    raw[3] = u64::MAX;
    r.its.backend_mut().clear_log();
    r.g.send_raw(&mut r.its, &mut r.ram, &[raw]);
    assert_eq!(r.its.backend().log(), [map_vlpi(NVME, 0, 0, 8192, OFF)]);
}

// ---- stalls -------------------------------------------------------------------------------

#[test]
fn an_unreadable_configuration_byte_stalls_until_retried() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true)]);
    r.its
        .set_lpi_config(
            &r.ram,
            Some(LpiConfigTable {
                base: 0x1_0000_0000,
                id_bits: 16,
            }),
        )
        .unwrap();
    let at = r.g.wr;
    let creadr = r.send(&[mapti(NVME, 0, 8192, 0), sync(0)]);
    assert_eq!(creadr, u64::from(at) | 1, "stalled on the MAPTI");
    let e = r.its.errors().last().copied().unwrap();
    assert!(e.stalled);
    assert_eq!(e.offset, Some(at));
    assert_eq!(e.error, CommandError::PropertyRead { gpa: 0x1_0000_0000 });
    assert_eq!(r.its.events().count(), 0);
    // More commands and CWRITER writes do not move it.
    r.send(&[sync(1)]);
    assert_eq!(r.creadr(), u64::from(at) | 1);
    // The table is fixed and the guest retries: the MAPTI and the rest run.
    r.its
        .set_lpi_config(
            &r.ram,
            Some(LpiConfigTable {
                base: PROP,
                id_bits: 16,
            }),
        )
        .unwrap();
    r.its
        .write(&r.ram, CWRITER, 8, u64::from(r.g.wr) | 1)
        .unwrap();
    assert_eq!(r.creadr(), u64::from(r.g.wr));
    assert_eq!(
        r.its.backend().vlpi(pe(NVME, 0)).map(|m| m.vintid),
        Some(v(8192))
    );
    assert_eq!(r.its.stats().stalls, 1);
}

#[test]
fn lpis_beyond_the_configuration_table_are_disabled() {
    let mut r = rig();
    r.its
        .set_lpi_config(
            &r.ram,
            Some(LpiConfigTable {
                base: PROP,
                id_bits: 14,
            }),
        )
        .unwrap();
    r.ram.set_prop(0x4000 + 8192, PROP_ON);
    r.send(&[mapd(NVME, 1, true)]);
    assert_eq!(
        r.ops(&[mapti(NVME, 0, 0x4000 + 8192, 0)]),
        [map_vlpi(NVME, 0, 0, 0x4000 + 8192, LpiProp::NONE)]
    );
}

#[test]
fn a_backend_failure_stalls_and_a_retry_completes_the_command() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 0),
        mapti(NVME, 1, 8193, 0),
        mapti(NVME, 2, 8194, 1),
    ]);
    // MAPD V = 0 fails at its second unmap.
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n + 1));
    let at = r.g.wr;
    let creadr = r.send(&[mapd(NVME, 2, false), sync(0)]);
    assert_eq!(creadr, u64::from(at) | 1);
    let e = r.its.errors().last().copied().unwrap();
    assert!(matches!(
        e.error,
        CommandError::Backend(RecorderError::Injected { .. })
    ));
    // The vITS's records are the backend's: one vLPI gone, two left, the device mapped.
    assert_eq!(r.its.events().count(), 2);
    assert_eq!(r.its.backend().vlpis().count(), 2);
    assert_eq!(r.its.backend().devices().count(), 1);
    // Retry: the rest of the MAPD, then the SYNC.
    r.its
        .write(&r.ram, CWRITER, 8, u64::from(r.g.wr) | 1)
        .unwrap();
    assert_eq!(r.creadr(), u64::from(r.g.wr));
    assert_eq!(r.its.events().count(), 0);
    assert_eq!(r.its.backend().vlpis().count(), 0);
    assert_eq!(r.its.backend().devices().count(), 0);
    assert_eq!(r.its.devices().count(), 0);
}

#[test]
fn a_failed_mapc_converges_on_retry() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 1),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 1),
    ]);
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n + 1));
    r.send(&[mapc(1, 0, true)]);
    assert!(r.its.is_stalled());
    r.its
        .write(&r.ram, CWRITER, 8, u64::from(r.g.wr) | 1)
        .unwrap();
    assert!(!r.its.is_stalled());
    for e in 0..3 {
        assert_eq!(r.its.backend().vlpi(pe(NVME, e)).unwrap().vcpu, vc(0));
    }
    assert!(r.its.events().all(|e| e.live.map(|l| l.0) == Some(vc(0))));
}

#[test]
fn a_failed_map_device_leaves_no_device_and_a_retry_maps_it() {
    let mut r = rig();
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n));
    r.send(&[mapd(0x60, 1, true)]);
    assert!(r.its.is_stalled());
    assert_eq!(r.its.devices().count(), 0);
    r.its
        .write(&r.ram, CWRITER, 8, u64::from(r.g.wr) | 1)
        .unwrap();
    assert_eq!(
        r.its.devices().map(|d| d.phys).collect::<Vec<_>>(),
        [dev(POOL)]
    );
}

#[test]
fn a_cbaser_write_clears_a_stall() {
    let mut r = rig();
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n));
    r.send(&[mapd(NVME, 1, true)]);
    assert!(r.its.is_stalled());
    r.its.write(&r.ram, CTLR, 4, 0).unwrap();
    let cb = r.its.read(&r.ram, CBASER, 8).unwrap();
    r.its.write(&r.ram, CBASER, 8, cb).unwrap();
    assert_eq!(r.creadr(), 0);
    assert!(!r.its.is_stalled());
}

#[test]
fn set_lpi_config_brings_live_vlpis_in_step() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 0),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 5),
    ]);
    r.its.backend_mut().clear_log();
    // LPIs disabled again: every live vLPI is disabled, each vCPU invalidated.
    r.its.set_lpi_config(&r.ram, None).unwrap();
    let ops = r.its.backend().log().to_vec();
    assert_eq!(
        ops,
        [
            Op::UpdateVlpi {
                ev: pe(NVME, 0),
                prop: LpiProp::NONE,
                inv: false
            },
            Op::UpdateVlpi {
                ev: pe(NVME, 1),
                prop: LpiProp::NONE,
                inv: false
            },
            Op::Invall { vcpu: vc(0) },
            Op::Invall { vcpu: vc(1) },
        ]
    );
}

#[test]
fn changing_a_table_forgets_what_it_held() {
    let mut r = rig();
    r.send(&[mapd(NVME, 1, true), mapti(NVME, 0, 8192, 0)]);
    r.its.write(&r.ram, CTLR, 4, 0).unwrap();
    r.its.backend_mut().clear_log();
    // The same value again: no change.
    let b1 = r.its.read(&r.ram, BASER0 + 8, 8).unwrap();
    r.its.write(&r.ram, BASER0 + 8, 8, b1).unwrap();
    assert_eq!(r.its.backend().log(), []);
    // A new collection table: collections gone, the event parked.
    r.its.write(&r.ram, BASER0 + 8, 8, b1 ^ 0x1_0000).unwrap();
    assert_eq!(r.its.backend().log(), [Op::UnmapVlpi { ev: pe(NVME, 0) }]);
    assert_eq!(r.its.collection(icid(0)), None);
    assert_eq!(r.its.events().count(), 1);
    // A new device table: devices gone.
    r.its.write(&r.ram, BASER0, 8, 0).unwrap();
    assert_eq!(r.its.devices().count(), 0);
    assert_eq!(r.its.events().count(), 0);
    assert_eq!(r.its.backend().devices().count(), 0);
}

/// Found by the fuzz target: a MAPC that stalls half done and is then abandoned (the guest
/// rewrites GITS_CBASER instead of retrying) left events parked in a mapped collection. The
/// vITS now finishes the half-done work before it runs the next command.
#[test]
fn an_abandoned_half_done_mapc_is_finished_before_the_next_command() {
    let mut r = rig();
    r.send(&[
        mapd(NVME, 2, true),
        mapti(NVME, 0, 8192, 1),
        mapti(NVME, 1, 8193, 1),
        mapti(NVME, 2, 8194, 1),
    ]);
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n + 1));
    r.send(&[mapc(1, 0, true)]);
    assert!(r.its.is_stalled() && !r.its.is_consistent());
    // Abandoned: disable, new queue, enable.
    r.its.write(&r.ram, CTLR, 4, 0).unwrap();
    let cb = r.its.read(&r.ram, CBASER, 8).unwrap();
    r.its.write(&r.ram, CBASER, 8, cb).unwrap();
    r.its.write(&r.ram, CWRITER, 8, 0).unwrap();
    r.its.write(&r.ram, CTLR, 4, 1).unwrap();
    assert!(!r.its.is_stalled());
    r.g = GuestDriver::new(QUEUE, QUEUE_BYTES);
    r.send(&[sync(0)]);
    assert!(r.its.is_consistent());
    for e in 0..3 {
        assert_eq!(r.its.backend().vlpi(pe(NVME, e)).unwrap().vcpu, vc(0));
    }
    // If catching up fails, the queue stalls at the next command, which has not run.
    r.send(&[mapc(1, 1, true)]);
    assert!(r.its.is_consistent());
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n + 1));
    r.send(&[mapc(1, 0, true)]);
    r.its.write(&r.ram, CTLR, 4, 0).unwrap();
    r.its.write(&r.ram, CBASER, 8, cb).unwrap();
    r.its.write(&r.ram, CWRITER, 8, 0).unwrap();
    r.its.write(&r.ram, CTLR, 4, 1).unwrap();
    r.g = GuestDriver::new(QUEUE, QUEUE_BYTES);
    let n = r.its.backend().count();
    r.its.backend_mut().fail_at(Some(n));
    let creadr = r.send(&[int(NVME, 0)]);
    assert_eq!(creadr, 1, "stalled at offset 0, before the INT");
    assert!(
        !r.its
            .backend()
            .log()
            .iter()
            .any(|o| matches!(o, Op::Int { .. }))
    );
    r.its.write(&r.ram, CWRITER, 8, 32 | 1).unwrap();
    assert_eq!(r.creadr(), 32);
    assert!(r.its.is_consistent());
    assert!(r.its.backend().vlpi(pe(NVME, 0)).unwrap().pending);
}
