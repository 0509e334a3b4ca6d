// SPDX-License-Identifier: MIT OR Apache-2.0
//! The command queue against the host model: wrap-around, backpressure, timeouts, stalls,
//! write ordering, concurrency.

use std::sync::Arc;

use its_cmdq::{ItsError, Recovery, SyncTarget, Trace};
use its_core::cmd::Command;
use its_core::ids::{CollectionId, DeviceId, EventId, IntId, ProcessorNumber, RdBase};
use its_model::{Delay, Event, ModelConfig};
use its_testkit::{Rig, Settings};

fn rd(n: u16) -> RdBase {
    RdBase::from_processor(ProcessorNumber::new(n))
}

fn invall(icid: u16) -> Command {
    Command::Invall {
        icid: CollectionId::new(icid),
    }
}

/// Commands the model processed since the rig was built (the bring-up's MAPC/INVALL/SYNC are
/// dropped).
fn processed(r: &Rig) -> Vec<(usize, Command)> {
    r.model.commands(0)
}

#[test]
fn wraps_around_the_ring_end() {
    // 4 KiB ring: 127 usable slots. 10 batches of 51 commands go round it four times.
    let r = Rig::with(ModelConfig::qemu(2), Settings::default().queue(0x1000));
    r.model.clear_commands(0);
    let q = r.its().queue();
    for b in 0..10u16 {
        let cmds: Vec<Command> = (0..50).map(|_| invall(b % 2)).collect();
        q.submit(&cmds, &[SyncTarget::Redist(rd(b % 2))]).unwrap();
    }
    let log = processed(&r);
    assert_eq!(log.len(), 510);
    let mut wrapped = 0;
    for (i, w) in log.windows(2).enumerate() {
        let expect = (w[0].0 + 32) % 0x1000;
        assert_eq!(w[1].0, expect, "slot {i} is not followed by the next slot");
        if w[1].0 < w[0].0 {
            wrapped += 1;
        }
    }
    assert!(
        wrapped >= 3,
        "the batches went round the ring {wrapped} times"
    );
    for (b, batch) in log.chunks(51).enumerate() {
        assert!(batch[..50].iter().all(|(_, c)| *c == invall(b as u16 % 2)));
        assert_eq!(
            batch[50].1,
            Command::Sync {
                rdbase: rd(b as u16 % 2)
            }
        );
    }
    r.model.assert_no_errors();
    // One CWRITER write and one wait per batch (and two of bring-up's: MAPCs, INVALLs).
    let s = q.stats();
    assert_eq!(s.batches, 10 + 2);
    assert_eq!(s.cwriter_writes, 10 + 2);
}

#[test]
fn batch_larger_than_the_free_space_waits_for_room() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.set_delay(0, Delay::AfterPolls(3));
    let q = r.its().queue();
    let before = q.stats();
    let t1 = q.post(&vec![invall(0); 100], &[]).unwrap();
    // 27 slots free: the next batch must wait for the ITS to consume the first.
    let t2 = q
        .post(&vec![invall(0); 100], &[SyncTarget::Redist(rd(0))])
        .unwrap();
    q.wait(t1).unwrap();
    q.wait(t2).unwrap();
    let s = q.stats();
    assert_eq!(s.full_waits - before.full_waits, 1);
    assert_eq!(s.cwriter_writes - before.cwriter_writes, 2);
    assert_eq!(r.model.counters(0).0, 3 + 201);
    r.model.assert_no_errors();
}

#[test]
fn batch_larger_than_the_ring_goes_in_ring_sized_pieces() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.clear_commands(0);
    let q = r.its().queue();
    let before = q.stats();
    q.submit(&vec![invall(0); 300], &[SyncTarget::Redist(rd(0))])
        .unwrap();
    let s = q.stats();
    // 301 commands, at most 127 per CWRITER write.
    assert_eq!(s.cwriter_writes - before.cwriter_writes, 3);
    assert_eq!(s.commands - before.commands, 301);
    let log = processed(&r);
    assert_eq!(log.len(), 301);
    assert!(log[..300].iter().all(|(_, c)| *c == invall(0)));
    r.model.assert_no_errors();
}

#[test]
fn full_queue_is_a_bounded_wait_then_an_error() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.set_delay(0, Delay::Never);
    let q = r.its().queue();
    let _t = q.post(&vec![invall(0); 100], &[]).unwrap();
    let e = q.post(&vec![invall(0); 100], &[]).unwrap_err();
    match e {
        ItsError::QueueFull {
            needed: 100,
            free: 27,
            waited_ns,
            ..
        } => {
            assert!(waited_ns >= 5_000_000, "waited only {waited_ns} ns");
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the refused batch reached the ITS.
    r.model.clear_commands(0);
    r.model.process_now(0);
    assert_eq!(processed(&r).len(), 100);
}

#[test]
fn dead_its_times_out_with_the_last_commands() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.set_delay(0, Delay::Never);
    let q = r.its().queue();
    let t = q
        .post(&[invall(0), invall(0)], &[SyncTarget::Redist(rd(0))])
        .unwrap();
    let start = r.plat.clock().peek();
    let e = q.wait(t).unwrap_err();
    let ItsError::Timeout {
        waited_ns,
        creadr,
        cwriter,
    } = e
    else {
        panic!("{e:?}")
    };
    // The last commands stay with the queue, read on demand.
    let trace = q.last_commands();
    assert!(waited_ns >= 5_000_000);
    assert!(
        r.plat.clock().peek().0 - start.0 < 50_000_000,
        "the wait is bounded"
    );
    // The bring-up left CREADR after its own commands; ours are the three after it.
    assert_eq!(cwriter - creadr, 3 * 32);
    let last: Vec<Command> = trace
        .iter()
        .map(|e| Command::decode(&e.raw, its_core::cmd::ItsVersion::V4_0).unwrap())
        .collect();
    assert_eq!(
        &last[last.len() - 3..],
        &[invall(0), invall(0), Command::Sync { rdbase: rd(0) }]
    );
    // Three bring-up commands (MAPC, INVALL, SYNC) and ours: fewer than the trace holds.
    assert_eq!(trace.len(), 6);
    assert!(trace.len() <= Trace::LEN);
    let seqs: Vec<u64> = trace.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (0..6).collect::<Vec<_>>(),
        "sequence numbers in order"
    );
    assert!(trace.to_string().contains("INVALL icid=0x0"), "{trace}");
    assert!(
        r.its().last_commands() == trace,
        "Its::last_commands reads the same ring"
    );
}

#[test]
fn stall_is_reported_with_the_command_and_retried() {
    let r = Rig::new(ModelConfig::qemu(1));
    let q = r.its().queue();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 2));
    let cmds = [
        invall(0),
        invall(0),
        Command::Int {
            device: DeviceId::new(3),
            event: EventId::new(4),
        },
    ];
    let t = q.post(&cmds, &[]).unwrap();
    let e = q.wait(t).unwrap_err();
    let ItsError::Stalled {
        seq,
        offset,
        opcode,
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(seq, done + 2);
    assert_eq!(opcode, cmds[2].opcode());
    let written = q.command(seq).unwrap();
    assert_eq!(written.offset, offset);
    assert_eq!(written.command(q.version()), Some(cmds[2]));
    assert_eq!(offset as usize, r.model.commands(0).last().unwrap().0 + 32);
    q.recover(Recovery::Retry).unwrap();
    // Retry runs the INT; the device is not mapped, which the model logs (the stall was
    // injected): exactly that one error besides the injected stall.
    q.wait(t).unwrap();
    let errors = r.model.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[1].message.contains("invalid dte for 3"));
}

#[test]
fn stall_recovered_by_skipping_the_command() {
    let r = Rig::new(ModelConfig::qemu(1));
    let q = r.its().queue();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 1));
    let bad = Command::Int {
        device: DeviceId::new(3),
        event: EventId::new(4),
    };
    let posted = q
        .post_with(2, |i| if i == 0 { invall(0) } else { bad }, &[])
        .unwrap();
    assert!(matches!(
        q.wait(posted.ticket),
        Err(ItsError::Stalled { .. })
    ));
    q.recover(Recovery::Skip).unwrap();
    q.wait(posted.ticket).unwrap();
    let skipped = q.skipped_in(&posted);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, 1);
    assert_eq!(skipped[0].1.raw, bad.encode());
    // The ITS ran a SYNC in its place: only the injected stall was logged.
    assert_eq!(
        r.model.commands(0).last().unwrap().1,
        Command::Sync { rdbase: rd(0) }
    );
    assert_eq!(r.model.errors().len(), 1);
    // Recovering a queue that is not stalled does nothing.
    let before = q.stats();
    q.recover(Recovery::Skip).unwrap();
    assert_eq!(q.stats().cwriter_writes, before.cwriter_writes);
}

fn order_of(events: &[Event], reg: &'static str) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Reg { reg: r, .. } if *r == reg))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn shareable_queue_writes_slots_then_barrier_then_cwriter() {
    let r = Rig::new(ModelConfig::qemu(1));
    assert!(!r.its().queue().cleans_to_poc());
    r.plat.clear_events();
    r.its()
        .queue()
        .submit(&[invall(0), invall(0)], &[SyncTarget::Redist(rd(0))])
        .unwrap();
    let ev = r.plat.events();
    let cw = order_of(&ev, "GITS_CWRITER");
    assert_eq!(cw.len(), 1);
    let writes: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Write { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(writes.len(), 3 * 4, "four doubleword stores per command");
    let dsb = ev.iter().position(|e| *e == Event::DsbIshst).unwrap();
    assert!(writes.iter().all(|&w| w < dsb) && dsb < cw[0], "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, Event::Clean { .. })));
}

#[test]
fn non_shareable_queue_cleans_every_command_before_cwriter() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.non_shareable = true;
    let r = Rig::new(cfg);
    assert!(r.its().queue().cleans_to_poc());
    r.plat.clear_events();
    r.its()
        .queue()
        .submit(&[invall(0), invall(0)], &[SyncTarget::Redist(rd(0))])
        .unwrap();
    let ev = r.plat.events();
    let cw = order_of(&ev, "GITS_CWRITER")[0];
    let last_write = ev
        .iter()
        .rposition(|e| matches!(e, Event::Write { .. }))
        .unwrap();
    let clean = ev
        .iter()
        .position(|e| matches!(e, Event::Clean { len: 96, .. }))
        .expect("one clean of the three slots");
    let dsb = ev.iter().position(|e| *e == Event::DsbSy).unwrap();
    assert!(last_write < clean && clean < dsb && dsb < cw, "{ev:?}");
    // The model read the queue through the point-of-coherency view and saw every command.
    r.model.assert_no_errors();
    assert_eq!(
        r.model.commands(0).last().unwrap().1,
        Command::Sync { rdbase: rd(0) }
    );
}

#[test]
fn invalid_command_is_refused_before_anything_is_written() {
    let r = Rig::new(ModelConfig::qemu(1));
    let q = r.its().queue();
    let before = (q.stats(), r.model.counters(0));
    let bad = Command::Mapti {
        device: DeviceId::new(1),
        event: EventId::new(0),
        pintid: IntId::new(5),
        icid: CollectionId::new(0),
    };
    let e = q.post(&[invall(0), bad], &[]).unwrap_err();
    assert!(
        matches!(e, ItsError::InvalidCommand { index: 1, .. }),
        "{e:?}"
    );
    let e = q
        .post(
            &[],
            &[SyncTarget::Redist(RdBase::from_raw(0x1_0000).unwrap())],
        )
        .unwrap_err();
    assert!(
        matches!(e, ItsError::InvalidCommand { index: 0, .. }),
        "{e:?}"
    );
    assert_eq!((q.stats(), r.model.counters(0)), before);
}

#[test]
fn concurrent_batches_are_never_interleaved() {
    const THREADS: u16 = 4;
    const BATCHES: usize = 50;
    const LEN: usize = 7;
    let r = Arc::new(Rig::with(
        ModelConfig::qemu(4),
        Settings::default().queue(0x1000),
    ));
    r.model.clear_commands(0);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for _ in 0..BATCHES {
                    r.its()
                        .queue()
                        .submit(&vec![invall(t); LEN], &[SyncTarget::Redist(rd(t))])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let log = processed(&r);
    assert_eq!(log.len(), THREADS as usize * BATCHES * (LEN + 1));
    for batch in log.chunks(LEN + 1) {
        let Command::Invall { icid } = batch[0].1 else {
            panic!("batch does not start with INVALL: {batch:?}")
        };
        assert!(
            batch[..LEN].iter().all(|(_, c)| *c == invall(icid.get())),
            "interleaved: {batch:?}"
        );
        assert_eq!(
            batch[LEN].1,
            Command::Sync {
                rdbase: rd(icid.get())
            }
        );
    }
    r.model.assert_no_errors();
}

#[cfg(feature = "test-hooks")]
#[test]
fn raw_unchecked_commands_reach_the_its() {
    let r = Rig::new(ModelConfig::qemu(1));
    let bad = Command::Mapti {
        device: DeviceId::new(1),
        event: EventId::new(0),
        pintid: IntId::new(5),
        icid: CollectionId::new(0),
    };
    let t = r.its().queue().post_raw_unchecked(&[bad.encode()]).unwrap();
    r.its().queue().wait(t).unwrap();
    let e = r.model.errors();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("no valid DTE for devid 0x1"));
}

#[test]
fn a_stall_after_a_finished_batch_is_not_its_waiters_error() {
    let r = Rig::new(ModelConfig::qemu(1));
    let q = r.its().queue();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 1));
    // A first batch of one command runs; a second one stalls on its first command.
    let first = q.post(&[invall(0)], &[]).unwrap();
    let second = q.post(&[invall(0), invall(0)], &[]).unwrap();
    assert!(matches!(q.wait(second), Err(ItsError::Stalled { .. })));
    // The first batch is done: waiting for it reports no one else's stall.
    q.wait(first).unwrap();
    q.recover(Recovery::Skip).unwrap();
    q.wait(second).unwrap();
}

#[test]
fn a_batch_larger_than_the_ring_is_never_left_half_posted() {
    // 4 KiB ring: 127 usable slots, so 300 commands go in three pieces. The ITS stalls on a
    // command of the first piece while the second waits for room.
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.clear_commands(0);
    let q = r.its().queue();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 10));
    let posted = q
        .post_with(300, |_| invall(0), &[SyncTarget::Redist(rd(0))])
        .unwrap();
    q.wait(posted.ticket).unwrap();
    // The stalled command was skipped so the rest could follow, and is reported.
    let skipped = q.skipped_in(&posted);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, 10);
    // Everything else ran: 300 + SYNC, minus the skipped one replaced by a SYNC.
    let log = processed(&r);
    assert_eq!(log.len(), 301);
    assert_eq!(log.iter().filter(|(_, c)| *c == invall(0)).count(), 299);
    assert_eq!(r.model.errors().len(), 1, "only the injected stall");
}
