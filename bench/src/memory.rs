// SPDX-License-Identifier: MIT OR Apache-2.0
//! `table-memory`: the DMA memory this driver allocates per VM, per vPE and for the vPE
//! table, measured through `FakePlatform`'s allocation accounting (live bytes and the
//! allocation log), never computed from a formula.
//!
//! - The vPE table: live bytes after bringing up the ITS on a GICv4.0 model, minus the same on
//!   a GICv3 model (no `GITS_BASER<n>` of type vPE), everything else equal; the allocations that
//!   make the difference are listed from the allocation log.
//! - Per VM and per vPE, for each vINTID width: live bytes added by `create_vm` with 1 vPE and
//!   with 4 vPEs, on a layer that already created (and destroyed) a VM, so the vPE table's
//!   second-level page, which the driver keeps once allocated, is not counted twice; that page
//!   is reported separately (the first VM's extra bytes).
//!
//! Linux's figures are printed by `cargo xtask bench` from the parameters printed here (the
//! model's GICD_TYPER.IDbits, GITS_BASER2's page and entry size).

use its_core::cmd::ItsVersion;
use its_model::{Event, ModelConfig};
use vpe_sched::VmConfig;

use its_testkit::{Rig, V4};

use crate::{model_rig, model_v4};

/// vINTID widths measured.
pub const WIDTHS: [u8; 2] = [14, 16];
/// vPEs of the larger VM.
const VPES: usize = 4;

/// The allocations recorded (and not freed) since the log was cleared, as `size@align`
/// words.
fn allocs(r: &Rig) -> Vec<String> {
    let events = r.plat.events();
    let freed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Free { pa, .. } => Some(*pa),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Alloc { pa, size, align } if !freed.contains(pa) => {
                Some(format!("{size}@{align}"))
            }
            _ => None,
        })
        .collect()
}

/// The words of `a` not in `b` (a multiset difference, in `a`'s order).
fn alloc_difference(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest = b.to_vec();
    a.iter()
        .filter(|w| match rest.iter().position(|x| x == *w) {
            Some(i) => {
                rest.remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

/// Live bytes `create_vm` adds for a VM of `vpes` vPEs; the VM is destroyed again.
fn vm_bytes(r: &V4<'static>, bits: u8, vpes: usize) -> (usize, String) {
    let cpus = vec![0; vpes];
    r.plat.set_recording(true);
    r.plat.clear_events();
    let before = r.plat.live_bytes();
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: bits,
            vpes: &cpus,
        })
        .expect("VM");
    let added = r.plat.live_bytes() - before;
    let log = allocs(r.rig).join(",");
    r.plat.set_recording(false);
    r.g.destroy_vm(&mut vm).expect("destroy_vm");
    (added, log)
}

/// Prints the section.
pub fn table_memory() {
    let v4 = ModelConfig::qemu(1);
    let v3 = ModelConfig {
        version: ItsVersion::V3,
        ..ModelConfig::qemu(1)
    };
    let with = model_rig(v4.clone());
    let without = model_rig(v3);
    let vpe_table = with.plat.live_bytes() - without.plat.live_bytes();
    let extra = alloc_difference(&allocs(&with), &allocs(&without));
    let t = with.its().vpe_table().expect("vPE table");
    println!("table-memory: DMA memory allocated, from FakePlatform's accounting (live bytes)");
    println!(
        "  vPE table      {vpe_table} bytes at bring-up ({}, {} KiB pages; GICv4.0 ITS minus \
         GICv3 ITS), allocations (size@align): {}",
        if t.is_indirect() { "two-level" } else { "flat" },
        t.page_size().bytes() / 1024,
        extra.join(",")
    );
    println!(
        "@@M table_memory_vpe_table bring_up_bytes={vpe_table} indirect={} page_bytes={} \
         entry_bytes={} table_bytes={} l2_pages={} dist_id_bits={} vpe_id_bits=16 allocs={}",
        u8::from(t.is_indirect()),
        t.page_size().bytes(),
        t.entry_bytes(),
        t.bytes(),
        t.l2_pages(),
        v4.dist_id_bits,
        extra.join(","),
    );
    drop((with, without));

    for bits in WIDTHS {
        let r = model_v4(ModelConfig::qemu(1));
        // The first VM also allocates the vPE table's second-level page (kept afterwards).
        let (first, _) = vm_bytes(&r, bits, 1);
        let (one, log) = vm_bytes(&r, bits, 1);
        let (many, _) = vm_bytes(&r, bits, VPES);
        let per_vpe = (many - one) / (VPES - 1);
        let per_vm = one - per_vpe;
        println!(
            "  {bits} vINTID bits: per VM {per_vm} bytes, per vPE {per_vpe} bytes, first VM \
             +{} bytes (vPE table page); allocations of a 1-vPE VM (size@align): {log}",
            first - one
        );
        println!(
            "@@M table_memory vintid_bits={bits} per_vm_bytes={per_vm} per_vpe_bytes={per_vpe} \
             first_vm_extra_bytes={} vm1_bytes={one} vm{VPES}_bytes={many} vm1_allocs={log}",
            first - one
        );
        r.model.assert_no_errors();
    }
}
