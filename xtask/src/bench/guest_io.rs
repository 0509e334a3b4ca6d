// SPDX-License-Identifier: MIT OR Apache-2.0
//! One run of the Linux guest's NVMe benchmark as one figure record, for section 2d of the
//! report (`qemu-linux`).
//!
//! A Linux scenario's figures are spread over three outputs: the hypervisor's `@@M` lines
//! (anonymous: exits by cause, the same counts over the guest's I/O window with `window_` in
//! front, the guest's ITS, instruction counts), `/init`'s `@@L` lines on the same console
//! (how many reads, the guest's `/proc/interrupts` before and after them), and QEMU's trace of
//! the ITS's commands in the `-D` log ([`crate::qemu::trace`]). [`record`] gathers them into
//! one `@@M`-style record named [`RECORD`], keyed by the scenario, so that the three modes'
//! runs of one section do not mix:
//!
//! - every `key=value` of the anonymous `@@M` lines (the first of a repeated key);
//! - `reads`: the reads `/init` did (`@@L reads done count=N`);
//! - `disk_irqs`: the NVMe interrupts the guest counted over those reads (its
//!   `/proc/interrupts` lines for `nvme0q*`, all CPUs, after minus before);
//! - `trace_total`, `trace_<command>`: the commands QEMU's ITS processed in the whole run, by
//!   mnemonic; `window_trace_total`, `window_trace_<command>`: those of the I/O window, the
//!   trace's commands from `window_its_first` on, `window_its_commands` of them.

use super::metrics::{self, Metric};
use crate::linux::machine::InitReport;
use crate::qemu::judge::clean_lines;
use crate::qemu::trace;

/// The record's name.
pub const RECORD: &str = "linux_io";

/// The record of scenario `scenario`'s run: its console output `serial` and its `-D` log.
pub fn record(scenario: &str, serial: &str, qemu_log: &str) -> Metric {
    let text = clean_lines(serial).join("\n");
    let mut m = Metric {
        name: RECORD.to_owned(),
        fields: vec![("scenario".to_owned(), scenario.to_owned())],
    };
    let push = |m: &mut Metric, k: &str, v: String| {
        if m.get(k).is_none() {
            m.fields.push((k.to_owned(), v));
        }
    };
    for line in metrics::parse(&text)
        .into_iter()
        .filter(|l| l.name.is_empty())
    {
        for (k, v) in line.fields {
            push(&mut m, &k, v);
        }
    }
    let reads = text
        .lines()
        .find_map(|l| l.split("@@L reads done count=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    if let Some(r) = reads {
        push(&mut m, "reads", r.to_string());
    }
    let init = InitReport::parse(&text);
    let irqs = |when| -> Option<u64> {
        let lines = init.irq_lines(when, "nvme0q");
        (!lines.is_empty()).then(|| lines.iter().map(|l| l.total).sum())
    };
    if let (Some(before), Some(after)) = (irqs("before"), irqs("after")) {
        push(
            &mut m,
            "disk_irqs",
            after.saturating_sub(before).to_string(),
        );
    }
    let whole = trace::count(qemu_log);
    push(&mut m, "trace_total", trace::total(&whole).to_string());
    for (op, count) in &whole {
        push(&mut m, &format!("trace_{op}"), count.to_string());
    }
    let first = m.num("window_its_first").map(|v| v as u64);
    let len = m.num("window_its_commands").map(|v| v as u64);
    if let (Some(first), Some(len)) = (first, len) {
        let window = trace::count_range(qemu_log, first, len);
        push(
            &mut m,
            "window_trace_total",
            trace::total(&window).to_string(),
        );
        for (op, count) in &window {
            push(&mut m, &format!("window_trace_{op}"), count.to_string());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shortened console of `bench_linux_doorbell` (one vCPU) and its trace.
    const SERIAL: &str = "\
@@T start bench_linux_doorbell\r
@@L init mode=nvme uptime=0.75\r
@@L interrupts before\r
           CPU0       \r
 11:        525     GICv3  27 Level     arch_timer\r
 16:         12   ITS-MSI 16384 Edge      nvme0q0\r
 17:          3   ITS-MSI 16385 Edge      nvme0q1\r
@@L interrupts end\r
@@L reads done count=4 from=0.77 to=0.81\r
@@L interrupts after\r
           CPU0       \r
 11:        530     GICv3  27 Level     arch_timer\r
 16:         12   ITS-MSI 16384 Edge      nvme0q0\r
 17:          7   ITS-MSI 16385 Edge      nvme0q1\r
@@L interrupts end\r
@@M exits=605 smc=7 irq=205 wfx=110 swaps=0\r
@@M window_exits=108 window_wfx=100 window_inst_guest=3000\r
@@M window_its_first=2 window_its_commands=3 window_vits_commands=0\r
@@M its_commands=6 its_cwriter_writes=4 doorbell_rings=2 swaps=9\r
@@M bench_other k=1\r
";

    const TRACE: &str = "\
gicv3_its_process_command GICv3 ITS: processing command at offset 0x0: 0x9
gicv3_its_process_command GICv3 ITS: processing command at offset 0x1: 0x5
gicv3_its_process_command GICv3 ITS: processing command at offset 0x2: 0xc
gicv3_its_process_command GICv3 ITS: processing command at offset 0x3: 0x5
gicv3_its_process_command GICv3 ITS: processing command at offset 0x4: 0x4
gicv3_its_process_command GICv3 ITS: processing command at offset 0x5: 0x5
";

    #[test]
    fn a_run_becomes_one_record() {
        let m = record("bench_linux_doorbell", SERIAL, TRACE);
        assert_eq!(m.name, RECORD);
        assert_eq!(m.get("scenario"), Some("bench_linux_doorbell"));
        // The hypervisor's figures; a repeated key keeps its first value; named records
        // are not merged.
        assert_eq!(m.num("window_wfx"), Some(100.0));
        assert_eq!(m.num("its_commands"), Some(6.0));
        assert_eq!(m.num("swaps"), Some(0.0));
        assert_eq!(m.get("k"), None);
        // /init's reads and the guest's NVMe interrupts over them.
        assert_eq!(m.num("reads"), Some(4.0));
        assert_eq!(m.num("disk_irqs"), Some(4.0));
        // QEMU's trace: the run, and the window (commands 2, 3 and 4).
        assert_eq!(m.num("trace_total"), Some(6.0));
        assert_eq!(m.num("trace_sync"), Some(3.0));
        assert_eq!(m.num("trace_mapc"), Some(1.0));
        assert_eq!(m.num("window_trace_total"), Some(3.0));
        assert_eq!(m.num("window_trace_inv"), Some(1.0));
        assert_eq!(m.num("window_trace_clear"), Some(1.0));
        assert_eq!(m.num("window_trace_sync"), Some(1.0));
        assert_eq!(m.num("window_trace_mapc"), None);
    }

    #[test]
    fn what_a_run_lacks_is_left_out() {
        let m = record("x", "@@M exits=3\n", "");
        assert_eq!(m.num("exits"), Some(3.0));
        assert_eq!(m.num("trace_total"), Some(0.0));
        for k in ["reads", "disk_irqs", "window_trace_total"] {
            assert_eq!(m.get(k), None, "{k}");
        }
    }
}
