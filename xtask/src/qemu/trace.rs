// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS commands QEMU processed, from its own trace: the count the judge and the benchmarks
//! compare with what the hypervisor says it wrote.
//!
//! A scenario with [`Scenario::its_trace`](super::scenarios::Scenario::its_trace) runs with
//! `-d guest_errors,unimp,trace:gicv3_its_process_command`: QEMU writes one line per command
//! its ITS processes into the `-D` log, whoever wrote it, in the same form on QEMU 7.2 and
//! 10.0:
//!
//! ```text
//! gicv3_its_process_command GICv3 ITS: processing command at offset 0x1f: 0xa
//! ```
//!
//! The last number is the command's opcode (DW0\[7:0\]); [`count`] tallies the lines by the
//! command's mnemonic, from `its-core`'s layouts, and [`count_range`] those of a stretch of
//! the run given by command sequence numbers (the hypervisor prints where the guest's I/O
//! window starts: `@@M window_its_first=N window_its_commands=M`).

use std::collections::BTreeMap;

use its_core::cmd::{ItsVersion, layout_for};

/// The trace event QEMU emits for each ITS command it processes.
pub const EVENT: &str = "gicv3_its_process_command";

/// Whether `line` of the `-D` log is a trace line of [`EVENT`].
pub fn is_trace_line(line: &str) -> bool {
    line.trim_start().starts_with(EVENT)
}

/// The commands of a `-D` log, counted by lower-case mnemonic (`mapti`, `vmovp`, ...; an
/// opcode no ITS version defines as `op0xNN`, a line whose opcode does not parse as
/// `unparsed`).
pub fn count(qemu_log: &str) -> BTreeMap<String, u64> {
    count_range(qemu_log, 0, u64::MAX)
}

/// As [`count`], for the `len` commands from the `first`-th (0-based, in processing order):
/// the commands the hypervisor wrote from its `first`-th on, since QEMU's ITS processes them
/// in the order they are written.
pub fn count_range(qemu_log: &str, first: u64, len: u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let lines = qemu_log.lines().filter(|l| is_trace_line(l));
    let skip = usize::try_from(first).unwrap_or(usize::MAX);
    let take = usize::try_from(len).unwrap_or(usize::MAX);
    for line in lines.skip(skip).take(take) {
        let opcode = line
            .rsplit(':')
            .next()
            .map(str::trim)
            .and_then(|v| v.strip_prefix("0x"))
            .and_then(|v| u8::from_str_radix(v, 16).ok());
        let name = match opcode {
            Some(op) => layout_for(op, ItsVersion::V4_1)
                .map_or_else(|| format!("op{op:#04x}"), |l| l.mnemonic.to_lowercase()),
            None => "unparsed".to_owned(),
        };
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// Every command in `counts`.
pub fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as QEMU 7.2.22 and 10.0.2 wrote them (bench_linux_soft, beginning).
    const LOG: &str = "\
gicv3_its_process_command GICv3 ITS: processing command at offset 0x0: 0x9
gicv3_its_process_command GICv3 ITS: processing command at offset 0x1: 0xd
gicv3_its_process_command GICv3 ITS: processing command at offset 0x2: 0x5
gicv3_its_process_command GICv3 ITS: processing command at offset 0x3: 0x22
gicv3_its_process_command GICv3 ITS: processing command at offset 0x4: 0x21
gicv3_its_process_command GICv3 ITS: processing command at offset 0x5: 0x5
gicv3_its_process_command GICv3 ITS: processing command at offset 0x6: 0x7f
gicv3_its_process_command GICv3 ITS: processing command at offset 0x7: zz
gicv3_its_process_mapti: invalid interrupt ID 0x5
";

    #[test]
    fn commands_are_counted_by_mnemonic() {
        let c = count(LOG);
        let want: BTreeMap<String, u64> = [
            ("mapc", 1),
            ("invall", 1),
            ("sync", 2),
            ("vmovp", 1),
            ("vmovi", 1),
            ("op0x7f", 1),
            ("unparsed", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(c, want);
        assert_eq!(total(&c), 8);
    }

    #[test]
    fn a_range_counts_the_commands_in_processing_order() {
        let c = count_range(LOG, 2, 3);
        let want: BTreeMap<String, u64> = [("sync", 1), ("vmovp", 1), ("vmovi", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(c, want);
        assert!(count_range(LOG, 8, 5).is_empty());
        assert_eq!(total(&count_range(LOG, 0, 0)), 0);
        assert_eq!(count_range(LOG, 0, u64::MAX), count(LOG));
    }

    #[test]
    fn only_the_event_lines_are_trace_lines() {
        assert!(is_trace_line(
            "gicv3_its_process_command GICv3 ITS: processing command at offset 0x0: 0x9"
        ));
        assert!(!is_trace_line(
            "gicv3_its_process_mapti: invalid interrupt ID 0x5"
        ));
        assert!(!is_trace_line("gic: unimplemented register"));
        assert!(count("").is_empty());
    }
}
