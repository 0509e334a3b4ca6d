// SPDX-License-Identifier: MIT OR Apache-2.0
//! Golden test of the whole report: the Markdown and every plot rendered from fixed figures,
//! compared byte for byte with the files in `fixtures/`.
//!
//! Those files were written once by the report code as it was before its prose moved into a
//! template (`report.md`), so this test holds the template-based report to exactly that
//! output. Three inputs: every section with figures like a real run's (`full`); sections
//! whose figures are partial, odd or missing (`partial`: missing keys, a missed target, a
//! varying round, no QEMU version); and no figures at all (`empty`).
//!
//! After a deliberate change to the report (its prose in `report.md`, a table, a plot),
//! `XTASK_BLESS_REPORT=1 cargo test -p xtask fixture` writes these files anew from the current
//! code instead of comparing; review their diff like the change itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::metrics::parse;
use super::{Env, Figures, Report, build};

fn env(qemu: Option<&str>) -> Env {
    Env {
        host_cpu: "AMD EPYC (2 CPUs available)".into(),
        qemu: qemu.map(str::to_owned),
        rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
        commit: "`6352f89387cf`, with uncommitted changes to `xtask/src/bench.rs`".into(),
        date: "2026-11-21 07:50 UTC".into(),
        command: "cargo xtask bench --publish".into(),
    }
}

/// `@@M` lines for every N = 1, 2, 4, ..., 4096 from `line(n)`.
fn powers_of_two(line: impl Fn(u64) -> String) -> String {
    (0..=12).map(|k| line(1 << k)).collect()
}

/// Figures of every section, shaped like a real run's.
fn full_figures() -> Figures {
    let mut f = Figures::new();
    f.insert(
        "cmd-encode".into(),
        parse(
            "@@M cmd_encode commands=2048 samples=101 encode_median_ns=7.64 encode_min_ns=6.70 \
             store_median_ns=0.52 store_min_ns=0.52 passes=3/4\n",
        ),
    );
    let ring = 2047;
    f.insert(
        "cmdq-batch".into(),
        parse(&powers_of_two(|n| {
            let writes = (n + 1).div_ceil(ring);
            format!(
                "@@M cmdq_batch n={n} ours_cmds={} ours_cwriter_writes={writes} ours_waits=1 \
                 ours_room_waits={} linux_cmds={} linux_cwriter_writes={n} linux_waits={n} \
                 linux_room_waits=0\n",
                n + 1,
                writes - 1,
                2 * n
            )
        })),
    );
    f.insert(
        "vlpi-map".into(),
        parse(
            &[
                powers_of_two(|n| {
                    format!(
                        "@@M vlpi_map events=fresh n={n} ours_cmds={} ours_cwriter_writes={} \
                         linux_cmds={} linux_cwriter_writes={n}\n",
                        n + 1,
                        (n + 1).div_ceil(ring),
                        2 * n
                    )
                }),
                powers_of_two(|n| {
                    format!(
                        "@@M vlpi_map events=forwarded n={n} ours_cmds={} \
                         ours_cwriter_writes={} linux_cmds={} linux_cwriter_writes={}\n",
                        2 * n + 2,
                        2 * (n + 1).div_ceil(ring),
                        4 * n,
                        2 * n
                    )
                }),
            ]
            .concat(),
        ),
    );
    f.insert(
        "table-memory".into(),
        parse(
            "@@M table_memory_vpe_table bring_up_bytes=65664 indirect=1 page_bytes=65536 \
             entry_bytes=8 table_bytes=65536 l2_pages=0 dist_id_bits=16 vpe_id_bits=16 \
             allocs=128@8,65536@65536\n\
             @@M table_memory vintid_bits=14 per_vm_bytes=16384 per_vpe_bytes=4096 \
             first_vm_extra_bytes=65536 vm1_allocs=16384@65536,4096@65536\n\
             @@M table_memory vintid_bits=16 per_vm_bytes=65536 per_vpe_bytes=8192 \
             first_vm_extra_bytes=65536 vm1_allocs=65536@65536,8192@65536\n",
        ),
    );
    f.insert(
        "qemu-latency".into(),
        parse(
            "@@M bench_latency_method counter=pmu reps=100\n\
             @@M bench_latency path=direct reps=100 insns_min=64 insns_median=64 insns_max=64 \
             el2_exits=0 el2_exits_per_irq=0.00 wfi_exits=0 irq_exits=0 el2_irqs=0\n\
             @@M bench_latency path=doorbell reps=100 insns_min=4242 insns_median=4242 \
             insns_max=4242 el2_exits=100 el2_exits_per_irq=1.00 wfi_exits=100 irq_exits=0 \
             el2_irqs=100\n\
             @@M bench_latency path=software reps=100 insns_min=959 insns_median=959 \
             insns_max=966 el2_exits=100 el2_exits_per_irq=1.00 wfi_exits=0 irq_exits=100 \
             el2_irqs=0\n",
        ),
    );
    let mut vpe = String::new();
    for (op, r, w, cmds, writes) in [
        ("schedule", 0, 2, 2, 1),
        ("deschedule_doorbell", 2, 1, 2, 1),
        ("schedule_after_doorbell", 0, 2, 3, 1),
        ("deschedule", 2, 1, 0, 0),
    ] {
        vpe += &format!(
            "@@M bench_vpe_mmio op={op} rounds=4 constant=1 gicr_reads={r} gicr_writes={w} \
             its_cmds={cmds} cwriter_writes={writes} creadr_reads={writes}\n"
        );
    }
    for n in [1, 8, 64, 256] {
        vpe += &format!(
            "@@M bench_vlpi_map n={n} ours_cmds={} ours_cwriter_writes=1 ours_waits=1 \
             linux_cmds={} linux_cwriter_writes={n} linux_waits={n}\n",
            n + 1,
            2 * n
        );
    }
    f.insert("qemu-vpe".into(), parse(&vpe));
    f.insert(
        "qemu-exits".into(),
        parse(
            "@@M vlpi_direct el2_exits_per_vlpi=0.00 vlpis=8 map_cmds_per_vlpi=2 \
             map_cwriter_writes_per_vlpi=1 batch_map_cmds_per_vlpi=1.142857 \
             batch_map_cwriter_writes_per_vlpi=0.142857\n\
             @@M vlpi_edu_passthrough el2_exits_per_vlpi=0.00 vlpis=4\n\
             @@M vlpi_doorbell el2_exits_per_wakeup=1.00 wakeups=8 \
             driver_its_cmds_per_wakeup=5.00 driver_cwriter_writes_per_wakeup=2.00\n\
             @@M vlpi_many vlpis=1024 vpes=4 map_cmds=1028 map_cwriter_writes=4\n\
             @@M fwd_vtimer_hw exits_per_irq=1.00 irqs=10\n\
             @@M fwd_vtimer_sw exits_per_irq=2.00 irqs=10\n\
             @@M fwd_vtimer_wfi exits_per_irq=1.00 irqs=10\n",
        ),
    );
    f.insert("qemu-linux".into(), parse(LINUX_IO));
    f
}

/// The records of `cargo xtask bench qemu-linux` (QEMU 7.2.22), the keys the report reads.
const LINUX_IO: &str = "\
@@M linux_io scenario=bench_linux_vlpi window_exits=11 window_irq_lpi=0 window_irq_doorbell=0 \
window_wfx=0 window_irq_vtimer=11 window_irq_kick=0 window_sysreg_sgi=0 \
window_doorbell_wakeups=0 window_wfi_blocks=0 window_inst_guest=33831744 window_inst_hyp=39168 \
window_its_first=35 window_its_commands=0 window_vits_commands=0 vits_commands=32 \
its_commands=46 reads=2048 disk_irqs=2048 trace_total=46 trace_discard=3 trace_inv=6 \
trace_invall=1 trace_mapc=1 trace_mapd=5 trace_mapti=1 trace_sync=2 trace_vinvall=4 \
trace_vmapp=1 trace_vmapti=3 trace_vmovi=6 trace_vsync=13 window_trace_total=0
@@M linux_io scenario=bench_linux_doorbell window_exits=60 window_irq_lpi=0 \
window_irq_doorbell=0 window_wfx=51 window_irq_vtimer=9 window_irq_kick=0 window_sysreg_sgi=0 \
window_doorbell_wakeups=44 window_wfi_blocks=46 window_inst_guest=33511424 \
window_inst_hyp=522240 window_its_first=35 window_its_commands=234 window_vits_commands=0 \
vits_commands=32 its_commands=304 reads=2048 disk_irqs=2048 trace_total=304 trace_clear=61 \
trace_discard=3 trace_inv=96 trace_invall=1 trace_mapc=1 trace_mapd=5 trace_mapti=1 \
trace_sync=109 trace_vinvall=4 trace_vmapp=1 trace_vmapti=3 trace_vmovi=6 trace_vsync=13 \
window_trace_total=234 window_trace_clear=51 window_trace_inv=88 window_trace_sync=95
@@M linux_io scenario=bench_linux_soft window_exits=2061 window_irq_lpi=2048 \
window_irq_doorbell=0 window_wfx=0 window_irq_vtimer=13 window_irq_kick=0 window_sysreg_sgi=0 \
window_doorbell_wakeups=0 window_wfi_blocks=0 window_inst_guest=34082816 \
window_inst_hyp=5249024 window_its_first=28 window_its_commands=0 window_vits_commands=0 \
vits_commands=32 its_commands=37 reads=2048 disk_irqs=2048 trace_total=37 trace_discard=3 \
trace_inv=9 trace_invall=1 trace_mapc=1 trace_mapd=4 trace_mapti=3 trace_sync=16 \
window_trace_total=0
";

fn full_times() -> BTreeMap<String, f64> {
    [
        ("cmd-encode", 0.71),
        ("cmdq-batch", 0.08),
        ("qemu-exits", 1.62),
        ("qemu-latency", 0.31),
        ("qemu-linux", 25.8),
        ("qemu-vpe", 0.79),
        ("table-memory", 0.01),
        ("vlpi-map", 0.2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Figures with gaps and surprises: keys missing, a missed target, rounds that vary.
fn partial_figures() -> Figures {
    let mut f = Figures::new();
    // No store loop figures: the ratio row has nothing to divide.
    f.insert(
        "cmd-encode".into(),
        parse("@@M cmd_encode commands=2048 encode_median_ns=7.5 encode_min_ns=6\n"),
    );
    // N = 1024 took two writes: the target is missed; a size without `n`.
    f.insert(
        "cmdq-batch".into(),
        parse(
            "@@M cmdq_batch n=1 ours_cmds=2 ours_cwriter_writes=1 ours_waits=1 \
             ours_room_waits=0 linux_cmds=2 linux_cwriter_writes=1 linux_waits=1\n\
             @@M cmdq_batch n=1024 ours_cmds=1025 ours_cwriter_writes=2 ours_waits=1 \
             ours_room_waits=0 linux_cmds=2048 linux_cwriter_writes=1024 linux_waits=1024\n\
             @@M cmdq_batch ours_cmds=7 ours_cwriter_writes=1\n",
        ),
    );
    // Fresh events only, one without `n` (per vLPI: NaN).
    f.insert(
        "vlpi-map".into(),
        parse(
            "@@M vlpi_map events=fresh n=3 ours_cmds=4 ours_cwriter_writes=1 linux_cmds=6 \
             linux_cwriter_writes=3\n\
             @@M vlpi_map events=fresh ours_cmds=4\n",
        ),
    );
    // Defaults for the geometry, sizes that are not whole KiB, no per-VM records.
    f.insert(
        "table-memory".into(),
        parse("@@M table_memory_vpe_table bring_up_bytes=1000 table_bytes=4096\n"),
    );
    // No method record, no doorbell path.
    f.insert(
        "qemu-latency".into(),
        parse(
            "@@M bench_latency path=direct insns_min=70 insns_median=71.5 insns_max=80 \
             el2_exits_per_irq=0.25 wfi_exits=0 irq_exits=1 el2_irqs=1\n\
             @@M bench_latency path=software insns_min=900 insns_median=950 insns_max=999 \
             el2_exits_per_irq=1 wfi_exits=0 irq_exits=4 el2_irqs=0\n",
        ),
    );
    // A first round that differs, a row that varies, a row missing, no map records.
    f.insert(
        "qemu-vpe".into(),
        parse(
            "@@M bench_vpe_mmio op=schedule constant=1 gicr_reads=0 gicr_writes=2 its_cmds=2 \
             cwriter_writes=1 creadr_reads=1\n\
             @@M bench_vpe_mmio op=schedule_first gicr_reads=1 gicr_writes=3 its_cmds=4\n\
             @@M bench_vpe_mmio op=deschedule_doorbell constant=0 gicr_reads=2 gicr_writes=1 \
             its_cmds=2 cwriter_writes=1 creadr_reads=3\n\
             @@M bench_vpe_mmio op=deschedule constant=1 gicr_reads=2 gicr_writes=1\n",
        ),
    );
    // Some scenarios only.
    f.insert(
        "qemu-exits".into(),
        parse(
            "@@M vlpi_direct el2_exits_per_vlpi=0.5 map_cmds_per_vlpi=2\n\
             @@M vlpi_many vlpis=1024 map_cmds=1028\n\
             @@M fwd_vtimer_wfi exits_per_irq=1.00\n",
        ),
    );
    // No doorbell run; an exit caused by the disk with the vPE resident (a missed target);
    // the software run without the guest's interrupt count (no rates, no verdict).
    f.insert(
        "qemu-linux".into(),
        parse(
            "@@M linux_io scenario=bench_linux_vlpi window_exits=5 window_irq_lpi=0 \
             window_irq_doorbell=1 window_wfx=0 window_irq_vtimer=3 window_irq_kick=1 \
             window_sysreg_sgi=0 reads=16 disk_irqs=16 window_inst_guest=1600 \
             trace_total=2 trace_sync=2 window_trace_total=0\n\
             @@M linux_io scenario=bench_linux_soft window_exits=20 window_irq_lpi=16 \
             reads=16\n",
        ),
    );
    f
}

/// Sections present but without the records the report reads: each is "not measured".
fn empty_figures() -> Figures {
    let mut f = Figures::new();
    for section in [
        "cmdq-batch",
        "vlpi-map",
        "qemu-latency",
        "qemu-vpe",
        "qemu-linux",
    ] {
        f.insert(section.into(), parse("@@M unrelated x=1\n"));
    }
    f.insert("qemu-exits".into(), Vec::new());
    f
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench/report/fixtures")
}

/// Compares `r` with `fixtures/NAME.md` and the plots with `fixtures/NAME/*.svg` (all of them,
/// and no others).
fn assert_matches_fixture(name: &str, r: &Report) {
    let dir = fixtures();
    if std::env::var_os("XTASK_BLESS_REPORT").is_some() {
        bless(&dir, name, r);
    }
    let md = std::fs::read_to_string(dir.join(format!("{name}.md"))).expect("fixture");
    assert!(
        r.markdown == md,
        "{name}.md differs; first differing line: {:?}",
        r.markdown
            .lines()
            .zip(md.lines())
            .find(|(a, b)| a != b)
            .or(Some(("(length)", "(length)")))
    );
    let mut want: Vec<String> = std::fs::read_dir(dir.join(name))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    want.sort();
    let mut got: Vec<String> = r.plots.iter().map(|p| p.file.clone()).collect();
    got.sort();
    assert_eq!(got, want, "{name}: plot files");
    for p in &r.plots {
        let svg = std::fs::read_to_string(dir.join(name).join(&p.file)).expect("plot fixture");
        assert!(p.svg == svg, "{name}/{} differs", p.file);
    }
}

/// Writes `r` as the fixture `name` (its Markdown, and its plots in place of the old ones).
fn bless(dir: &Path, name: &str, r: &Report) {
    let plots = dir.join(name);
    let _ = std::fs::remove_dir_all(&plots);
    if !r.plots.is_empty() {
        std::fs::create_dir_all(&plots).expect("fixture directory");
    }
    std::fs::write(dir.join(format!("{name}.md")), &r.markdown).expect("write fixture");
    for p in &r.plots {
        std::fs::write(plots.join(&p.file), &p.svg).expect("write plot fixture");
    }
}

#[test]
fn full_report_is_byte_identical_to_the_fixture() {
    let r = build(
        &env(Some(
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)",
        )),
        &full_figures(),
        &full_times(),
        Some(29.4),
        "bench/",
    );
    assert_matches_fixture("full", &r);
}

#[test]
fn partial_report_is_byte_identical_to_the_fixture() {
    let times = [("cmd-encode".to_owned(), 0.5)].into_iter().collect();
    let r = build(&env(None), &partial_figures(), &times, Some(0.5), "");
    assert_matches_fixture("partial", &r);
}

#[test]
fn empty_report_is_byte_identical_to_the_fixture() {
    let r = build(
        &env(None),
        &empty_figures(),
        &BTreeMap::new(),
        None,
        "bench/",
    );
    assert_matches_fixture("empty", &r);
}
