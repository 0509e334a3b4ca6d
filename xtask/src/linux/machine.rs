// SPDX-License-Identifier: MIT OR Apache-2.0
//! QEMU's `virt` machine for the Linux guest: its command line, its device-tree dump, and a
//! direct boot of the kernel and initramfs (no hypervisor) with what `/init` reported.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::disk::block_tag;
use super::initramfs::{AFFINITY, FAIL, MARK, POWEROFF, READS_DONE};
use super::run::{run_ok, seconds};

/// The CPU model: `max` with the implementation-defined pointer authentication, which QEMU 7.2
/// emulates much faster than the architected one (about 3x less boot time measured; 10.0 makes
/// it the default).
pub const CPU: &str = "max,pauth-impdef=on";
/// The guest RAM in MiB.
pub const MEMORY_MIB: u32 = 512;
/// How long a `dumpdtb` run may take (QEMU writes the blob and exits at once).
const DUMPDTB_DEADLINE: Duration = Duration::from_secs(60);
/// The flattened device tree magic, big-endian.
pub const FDT_MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];

/// One configuration of QEMU's `virt` machine.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Machine {
    /// `gic-version=` (3 or 4).
    pub gic_version: u8,
    /// `-smp`.
    pub smp: u32,
    /// `-m`, in MiB.
    pub memory_mib: u32,
    /// `-cpu`.
    pub cpu: String,
    /// The raw image behind an NVMe device, if one is attached (read-only: the test
    /// workloads only read, and scenarios running at once share it).
    pub nvme_disk: Option<PathBuf>,
    /// The NVMe device's MSI-X vectors (`msix_qsize`), when not QEMU's default.
    pub nvme_vectors: Option<u16>,
}

impl Machine {
    /// GIC `gic_version`, `smp` CPUs, [`MEMORY_MIB`], [`CPU`], no NVMe.
    pub fn new(gic_version: u8, smp: u32) -> Self {
        Self {
            gic_version,
            smp,
            memory_mib: MEMORY_MIB,
            cpu: CPU.to_owned(),
            nvme_disk: None,
            nvme_vectors: None,
        }
    }

    /// The same with an NVMe device backed by the raw image `disk`.
    pub fn with_nvme(mut self, disk: &Path) -> Self {
        self.nvme_disk = Some(disk.to_path_buf());
        self
    }

    /// QEMU's arguments for this machine, with `dumpdtb=<file>` when `dumpdtb` is given.
    /// Paths with a comma are refused (QEMU would split the option there).
    pub fn args(&self, dumpdtb: Option<&Path>) -> Result<Vec<String>, String> {
        let plain = |p: &Path| {
            let s = p.display().to_string();
            if s.contains(',') {
                Err(format!(
                    "{s}: a path with a comma cannot go in a QEMU option"
                ))
            } else {
                Ok(s)
            }
        };
        let mut m = format!("virt,gic-version={},virtualization=on", self.gic_version);
        if let Some(f) = dumpdtb {
            m.push_str(&format!(",dumpdtb={}", plain(f)?));
        }
        let mut args: Vec<String> = [
            "-M".into(),
            m,
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            self.smp.to_string(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-nographic".into(),
            "-nic".into(),
            "none".into(),
        ]
        .into();
        if let Some(disk) = &self.nvme_disk {
            let mut dev = "nvme,serial=x,drive=d".to_owned();
            if let Some(n) = self.nvme_vectors {
                dev.push_str(&format!(",msix_qsize={n}"));
            }
            args.extend([
                "-device".into(),
                dev,
                "-drive".into(),
                format!("if=none,id=d,file={},format=raw,readonly=on", plain(disk)?),
            ]);
        }
        Ok(args)
    }
}

/// Writes QEMU's own device tree for `machine` to `out` (`-M ...,dumpdtb=out`: QEMU builds the
/// machine, writes the blob and exits without running anything), packed ([`pack_fdt`]: QEMU's
/// blob is 1 MiB, nearly all of it free space). Returns the packed size.
///
/// QEMU puts fresh random `kaslr-seed` and `rng-seed` values in `/chosen` each run, so two
/// dumps of one configuration differ in those bytes only.
pub fn dump_dtb(qemu: &Path, machine: &Machine, out: &Path) -> Result<u64, String> {
    let _ = fs::remove_file(out);
    let args = machine.args(Some(out))?;
    run_ok(
        Command::new(qemu).args(&args),
        DUMPDTB_DEADLINE,
        &format!("{} (dumpdtb)", qemu.display()),
    )?;
    let blob = fs::read(out).map_err(|e| format!("{}: not written: {e}", out.display()))?;
    let packed = pack_fdt(&blob).map_err(|e| format!("{}: {e}", out.display()))?;
    fs::write(out, &packed).map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(packed.len() as u64)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The device tree `blob` without the free space after its last block: the memory
/// reservation map, the structure block and the strings block stay where they are, the blob
/// ends with the last of them and the header's totalsize says so. Nothing else changes.
pub fn pack_fdt(blob: &[u8]) -> Result<Vec<u8>, String> {
    check_fdt(blob)?;
    let field = |n: usize| be32(blob, 4 * n) as usize;
    let (off_struct, off_strings, off_rsvmap) = (field(2), field(3), field(4));
    let (size_strings, size_struct) = (field(8), field(9));
    if field(5) < 17 {
        return Err(format!("device tree version {} (17 needed)", field(5)));
    }
    // The reservation map: 16-byte (address, size) entries up to an all-zero one.
    let mut rsv_end = off_rsvmap;
    loop {
        let entry = blob
            .get(rsv_end..rsv_end + 16)
            .ok_or("the memory reservation map runs past the blob")?;
        rsv_end += 16;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }
    let ends = [
        Some(rsv_end),
        off_struct.checked_add(size_struct),
        off_strings.checked_add(size_strings),
    ];
    let mut end = 40;
    for e in ends {
        match e {
            Some(e) if e <= blob.len() => end = end.max(e),
            _ => return Err("a block runs past the blob".into()),
        }
    }
    let mut packed = blob[..end].to_vec();
    let total = u32::try_from(end).map_err(|_| "too large")?;
    packed[4..8].copy_from_slice(&total.to_be_bytes());
    Ok(packed)
}

/// Checks the flattened device tree header: magic, and a total size that is the blob's.
pub fn check_fdt(blob: &[u8]) -> Result<(), String> {
    if blob.len() < 40 || blob[..4] != FDT_MAGIC {
        return Err("not a flattened device tree (no d00dfeed magic)".into());
    }
    let total = u32::from_be_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if total != blob.len() {
        return Err(format!("header totalsize {total} but {} bytes", blob.len()));
    }
    Ok(())
}

/// A direct boot: the kernel and initramfs on QEMU, no hypervisor.
#[derive(Clone, Debug)]
pub struct DirectBoot {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The machine.
    pub machine: Machine,
    /// The arm64 Image.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
    /// The whole run's deadline.
    pub deadline: Duration,
    /// Where the serial output is saved.
    pub log: PathBuf,
}

/// What a direct boot produced.
#[derive(Debug)]
pub struct BootRun {
    /// The serial output, then QEMU's stderr if any.
    pub serial: String,
    /// QEMU's exit code; `None` if killed.
    pub exit: Option<i32>,
    /// Killed at the deadline.
    pub timed_out: bool,
    /// Wall time from QEMU's start to its exit.
    pub elapsed: Duration,
    /// Wall time from QEMU's start to `/init`'s first line.
    pub to_init: Option<Duration>,
    /// The command line, for the log and messages.
    pub command: String,
}

/// Kills and reaps the child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl DirectBoot {
    /// QEMU's arguments.
    pub fn args(&self) -> Result<Vec<String>, String> {
        let mut args = self.machine.args(None)?;
        args.extend([
            "-kernel".into(),
            self.kernel.display().to_string(),
            "-initrd".into(),
            self.initrd.display().to_string(),
            "-append".into(),
            self.append.clone(),
        ]);
        Ok(args)
    }

    /// Boots, echoing each serial line to `on_line`, until QEMU exits or the deadline passes
    /// (then QEMU is killed). The serial output goes to [`DirectBoot::log`] too.
    pub fn run(&self, on_line: &mut dyn FnMut(&str)) -> Result<BootRun, String> {
        let args = self.args()?;
        let command = std::iter::once(self.qemu.display().to_string())
            .chain(args.iter().map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            }))
            .collect::<Vec<_>>()
            .join(" ");
        let mut log =
            File::create(&self.log).map_err(|e| format!("creating {}: {e}", self.log.display()))?;
        let _ = writeln!(log, "# {command}");
        let start = Instant::now();
        let mut child = KillOnDrop(
            Command::new(&self.qemu)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("starting {}: {e}", self.qemu.display()))?,
        );
        let stdout = child.0.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.0.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel::<(Instant, String)>();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let (etx, erx) = mpsc::channel();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            let _ = etx.send(bytes);
        });

        let deadline = start + self.deadline;
        let init_mark = format!("{MARK} init ");
        let mut serial = String::new();
        let mut to_init = None;
        let mut timed_out = false;
        loop {
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok((at, line)) => {
                    if to_init.is_none() && line.starts_with(&init_mark) {
                        to_init = Some(at - start);
                    }
                    on_line(&line);
                    let _ = writeln!(log, "{line}");
                    serial.push_str(&line);
                    serial.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut exit = None;
        while !timed_out {
            match child.0.try_wait() {
                Ok(Some(s)) => {
                    exit = s.code();
                    break;
                }
                Ok(None) if Instant::now() >= deadline => timed_out = true,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for QEMU: {e}")),
            }
        }
        let elapsed = start.elapsed();
        drop(child);
        if let Ok(bytes) = erx.recv_timeout(Duration::from_secs(5))
            && !bytes.is_empty()
        {
            let text = String::from_utf8_lossy(&bytes);
            let _ = write!(log, "--- qemu stderr ---\n{text}");
            serial.push_str(&text);
        }
        if timed_out {
            let _ = writeln!(log, "--- killed after {} ---", seconds(self.deadline));
        }
        Ok(BootRun {
            serial,
            exit,
            timed_out,
            elapsed,
            to_init,
            command,
        })
    }
}

/// One `/proc/interrupts` line: the interrupt, its count summed over the CPUs, the rest.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IrqLine {
    /// The first column without its colon (`36`, `IPI0`).
    pub irq: String,
    /// The per-CPU counts added up.
    pub total: u64,
    /// What follows the counts (`ITS-MSI 16385 Edge nvme0q1`).
    pub desc: String,
}

/// Parses one `/proc/interrupts` line with `cpus` count columns (`None` for the header line
/// or a line that does not fit).
pub fn parse_irq_line(line: &str, cpus: usize) -> Option<IrqLine> {
    let mut words = line.split_whitespace();
    let irq = words.next()?.strip_suffix(':')?.to_owned();
    let mut total = 0u64;
    for _ in 0..cpus {
        total = total.checked_add(words.next()?.parse::<u64>().ok()?)?;
    }
    Some(IrqLine {
        irq,
        total,
        desc: words.collect::<Vec<_>>().join(" "),
    })
}

/// One batch of `affinity` mode: the interrupt, the CPU it was moved to, and its per-CPU
/// counts (CPU 0, CPU 1) before and after the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AffinityBatch {
    /// The Linux interrupt number.
    pub irq: String,
    /// The CPU it was moved to.
    pub cpu: usize,
    /// Counts before the batch.
    pub before: (u64, u64),
    /// Counts after.
    pub after: (u64, u64),
}

impl AffinityBatch {
    /// The interrupts the batch brought on (CPU 0, CPU 1).
    pub fn delta(&self) -> (u64, u64) {
        (
            self.after.0.saturating_sub(self.before.0),
            self.after.1.saturating_sub(self.before.1),
        )
    }
}

/// What `/init` reported on the serial console.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    /// `vgt.mode` as `/init` read it.
    pub mode: Option<String>,
    /// The kernel's uptime when `/init` started, in seconds.
    pub init_uptime: Option<f64>,
    /// `/sys/devices/system/cpu/online`.
    pub cpus_online: Option<String>,
    /// Each `/proc/interrupts` print: when (`boot`, `before`, `after`) and its lines.
    pub interrupts: Vec<(String, Vec<String>)>,
    /// The `reads done` line was printed.
    pub reads_done: bool,
    /// How long the reads took by the guest's clock, in seconds.
    pub reads_seconds: Option<f64>,
    /// The block read back after the reads, and its tag.
    pub block: Option<(u64, String)>,
    /// `smp` mode: the CPU taken offline and back, the online CPUs while it was off and
    /// after.
    pub hotplug: Option<(String, String, String)>,
    /// `isolation` mode: what the read and the write at the target came to (`sigbus`, ...).
    pub isolation: Option<(String, String)>,
    /// `affinity` mode: each batch of reads, in order.
    pub affinity: Vec<AffinityBatch>,
    /// Every failure line, without the prefix.
    pub failures: Vec<String>,
    /// The poweroff line was printed.
    pub poweroff: bool,
}

impl InitReport {
    /// Reads the report out of the serial output.
    pub fn parse(serial: &str) -> Self {
        let mut r = Self::default();
        let mut table: Option<(String, Vec<String>)> = None;
        for line in serial.lines() {
            let line = line.trim_end();
            if let Some((when, rows)) = table.as_mut() {
                if line == format!("{MARK} interrupts end") {
                    r.interrupts
                        .push((std::mem::take(when), std::mem::take(rows)));
                    table = None;
                } else if !line.starts_with('[') {
                    // Kernel messages ("[    1.23] ...") may land in the middle.
                    rows.push(line.to_owned());
                }
                continue;
            }
            let Some(rest) = line.strip_prefix(MARK).and_then(|l| l.strip_prefix(' ')) else {
                continue;
            };
            if let Some(init) = rest.strip_prefix("init ") {
                for word in init.split_whitespace() {
                    if let Some(m) = word.strip_prefix("mode=") {
                        r.mode = Some(m.to_owned());
                    } else if let Some(u) = word.strip_prefix("uptime=") {
                        r.init_uptime = u.parse().ok();
                    }
                }
            } else if let Some(c) = rest.strip_prefix("cpus online=") {
                r.cpus_online = Some(c.to_owned());
            } else if let Some(when) = rest.strip_prefix("interrupts ") {
                table = Some((when.to_owned(), Vec::new()));
            } else if let Some(done) = line.strip_prefix(READS_DONE) {
                r.reads_done = true;
                let time = |key: &str| -> Option<f64> {
                    done.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|v| v.parse().ok())
                };
                r.reads_seconds = time("from=").zip(time("to=")).map(|(from, to)| to - from);
            } else if let Some(h) = rest.strip_prefix("hotplug ") {
                let mut words = h.split_whitespace();
                let cpu = words.next().unwrap_or("").to_owned();
                let field = |key: &str| {
                    h.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .unwrap_or("")
                        .to_owned()
                };
                r.hotplug = Some((cpu, field("off="), field("on=")));
            } else if let Some(i) = rest.strip_prefix("isolation ") {
                let field = |key: &str| {
                    i.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .unwrap_or("")
                        .to_owned()
                };
                r.isolation = Some((field("read="), field("write=")));
            } else if let Some(a) = line.strip_prefix(AFFINITY) {
                let field = |key: &str| {
                    a.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .unwrap_or("")
                        .to_owned()
                };
                let pair = |v: String| -> (u64, u64) {
                    let (x, y) = v.split_once(',').unwrap_or(("", ""));
                    (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
                };
                r.affinity.push(AffinityBatch {
                    irq: field("irq="),
                    cpu: field("cpu=").parse().unwrap_or(usize::MAX),
                    before: pair(field("before=")),
                    after: pair(field("after=")),
                });
            } else if let Some(b) = rest.strip_prefix("block ") {
                let (n, tag) = b.split_once(" tag=").unwrap_or((b, ""));
                if let Ok(n) = n.parse() {
                    r.block = Some((n, tag.to_owned()));
                }
            } else if let Some(f) = line.strip_prefix(FAIL) {
                r.failures.push(f.trim().to_owned());
            } else if line == POWEROFF {
                r.poweroff = true;
            }
        }
        r
    }

    /// The lines of the `/proc/interrupts` print `when` whose description mentions `device`,
    /// parsed (the CPU count is taken from the print's header line).
    pub fn irq_lines(&self, when: &str, device: &str) -> Vec<IrqLine> {
        let Some((_, rows)) = self.interrupts.iter().find(|(w, _)| w == when) else {
            return Vec::new();
        };
        let cpus = rows.first().map_or(0, |h| {
            h.split_whitespace()
                .filter(|w| w.starts_with("CPU"))
                .count()
        });
        rows.iter()
            .filter_map(|l| parse_irq_line(l, cpus))
            .filter(|l| l.desc.contains(device))
            .collect()
    }

    /// Checks the report against what `mode` must show: `/init` ran that mode, no failure,
    /// the poweroff line; for `nvme` and `affinity`, the reads done, the last block's tag
    /// right and the NVMe I/O queue interrupts counted up across the reads; for `affinity`
    /// also two batches, on CPU 1 then CPU 0, whose interrupts came on that CPU (at most 1%,
    /// or 8, elsewhere); for `smp`, a CPU went offline and came back; for `isolation`, both
    /// accesses died of SIGBUS.
    pub fn verdict(&self, mode: &str) -> Result<(), String> {
        if self.mode.as_deref() != Some(mode) {
            return Err(format!(
                "/init did not run mode {mode} (saw {:?})",
                self.mode
            ));
        }
        if let Some(f) = self.failures.first() {
            return Err(format!("/init reported a failure: {f}"));
        }
        if mode == "nvme" || mode == "affinity" {
            if !self.reads_done {
                return Err("no `reads done` line".into());
            }
            match &self.block {
                Some((n, tag)) if *tag == block_tag(*n) => {}
                other => return Err(format!("block read back wrong: {other:?}")),
            }
            let io = |when| -> u64 {
                self.irq_lines(when, "nvme0q")
                    .iter()
                    .filter(|l| !l.desc.ends_with("nvme0q0"))
                    .map(|l| l.total)
                    .sum()
            };
            let (before, after) = (io("before"), io("after"));
            if after <= before {
                return Err(format!(
                    "NVMe I/O queue interrupts did not count up ({before} -> {after})"
                ));
            }
        }
        if mode == "affinity" {
            let cpus: Vec<usize> = self.affinity.iter().map(|b| b.cpu).collect();
            if cpus != [1, 0] {
                return Err(format!("affinity: batches on CPUs {cpus:?}, not [1, 0]"));
            }
            for b in &self.affinity {
                let (d0, d1) = b.delta();
                let (on, off) = if b.cpu == 1 { (d1, d0) } else { (d0, d1) };
                // One interrupt may already be on its way to the old CPU at the move.
                if on == 0 || off > 8.max((on + off) / 100) {
                    return Err(format!(
                        "affinity: the interrupts did not follow to CPU {}: {b:?}",
                        b.cpu
                    ));
                }
            }
        }
        if mode == "smp" {
            match &self.hotplug {
                Some((_, off, on)) if off != on && Some(on) == self.cpus_online.as_ref() => {}
                other => return Err(format!("CPU hotplug: {other:?}")),
            }
        }
        if mode == "isolation" {
            match &self.isolation {
                Some((r, w)) if r == "sigbus" && w == "sigbus" => {}
                other => {
                    return Err(format!(
                        "the accesses to the hypervisor's memory were not refused with SIGBUS \
                         (read, write): {other:?}"
                    ));
                }
            }
        }
        if !self.poweroff {
            return Err("no poweroff line".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_arguments_carry_the_gic_cpus_and_the_nvme_disk() {
        let m = Machine::new(4, 2).with_nvme(Path::new("/t/disk.img"));
        let line = m.args(None).unwrap().join(" ");
        assert_eq!(
            line,
            "-M virt,gic-version=4,virtualization=on -cpu max,pauth-impdef=on -smp 2 -m 512M \
             -nographic -nic none -device nvme,serial=x,drive=d \
             -drive if=none,id=d,file=/t/disk.img,format=raw,readonly=on"
        );
        // One MSI-X vector on request.
        let mut one = m.clone();
        one.nvme_vectors = Some(1);
        assert!(
            one.args(None)
                .unwrap()
                .contains(&"nvme,serial=x,drive=d,msix_qsize=1".to_owned())
        );
        let dump = Machine::new(3, 4)
            .args(Some(Path::new("/t/x.dtb")))
            .unwrap()
            .join(" ");
        assert!(dump.starts_with("-M virt,gic-version=3,virtualization=on,dumpdtb=/t/x.dtb "));
        assert!(dump.contains("-smp 4 "));
        assert!(!dump.contains("nvme"));
        assert!(Machine::new(4, 1).args(Some(Path::new("/a,b"))).is_err());
        assert!(
            Machine::new(4, 1)
                .with_nvme(Path::new("/a,b"))
                .args(None)
                .is_err()
        );
    }

    #[test]
    fn a_direct_boot_adds_kernel_initrd_and_command_line() {
        let b = DirectBoot {
            qemu: "/q".into(),
            machine: Machine::new(4, 1),
            kernel: "/k/Image".into(),
            initrd: "/k/initramfs.cpio".into(),
            append: "console=ttyAMA0 vgt.mode=boot".into(),
            deadline: Duration::from_secs(1),
            log: "/dev/null".into(),
        };
        let args = b.args().unwrap();
        assert!(args.ends_with(&[
            "-kernel".into(),
            "/k/Image".into(),
            "-initrd".into(),
            "/k/initramfs.cpio".into(),
            "-append".into(),
            "console=ttyAMA0 vgt.mode=boot".into(),
        ]));
    }

    #[test]
    fn fdt_headers_are_checked() {
        let mut blob = vec![0u8; 64];
        blob[..4].copy_from_slice(&FDT_MAGIC);
        blob[4..8].copy_from_slice(&64u32.to_be_bytes());
        assert_eq!(check_fdt(&blob), Ok(()));
        blob[7] = 65;
        assert!(check_fdt(&blob).unwrap_err().contains("totalsize 65"));
        assert!(check_fdt(&[0; 64]).is_err());
        assert!(check_fdt(&FDT_MAGIC).is_err());
    }

    /// A blob laid out as QEMU lays it out: header, reservation map, structure, strings,
    /// free space.
    fn blob(rsv: &[[u64; 2]], total: usize) -> Vec<u8> {
        let mut b = vec![0u8; total];
        let off_rsv = 0x30;
        let off_struct = off_rsv + 16 * (rsv.len() + 1);
        let (size_struct, size_strings) = (0x24, 0x11);
        let off_strings = off_struct + size_struct;
        for (i, v) in [
            0xd00d_feed,
            total,
            off_struct,
            off_strings,
            off_rsv,
            17,
            16,
            0,
            size_strings,
            size_struct,
        ]
        .into_iter()
        .enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
        }
        for (i, [addr, size]) in rsv.iter().enumerate() {
            b[off_rsv + 16 * i..][..8].copy_from_slice(&addr.to_be_bytes());
            b[off_rsv + 16 * i + 8..][..8].copy_from_slice(&size.to_be_bytes());
        }
        for byte in &mut b[off_struct..off_strings + size_strings] {
            *byte = 0xab;
        }
        b
    }

    #[test]
    fn packing_cuts_the_free_space_and_keeps_every_block() {
        let b = blob(&[[0x4000_0000, 0x1000]], 4096);
        let p = pack_fdt(&b).unwrap();
        let end = 0x30 + 32 + 0x24 + 0x11;
        assert_eq!(p.len(), end);
        assert_eq!(be32(&p, 4) as usize, end);
        assert_eq!(p[8..], b[8..end]);
        assert_eq!(check_fdt(&p), Ok(()));
        // Packing a packed blob changes nothing.
        assert_eq!(pack_fdt(&p).unwrap(), p);
        // Blocks past the end, or an unterminated reservation map, are errors.
        let mut bad = b.clone();
        bad[36..40].copy_from_slice(&0x10_0000u32.to_be_bytes());
        assert!(pack_fdt(&bad).is_err());
        let mut rsv_past_end = b.clone();
        rsv_past_end[16..20].copy_from_slice(&(4096u32 - 8).to_be_bytes());
        assert!(
            pack_fdt(&rsv_past_end)
                .unwrap_err()
                .contains("reservation map")
        );
        let mut old = b;
        old[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert!(pack_fdt(&old).unwrap_err().contains("version 16"));
    }

    /// The device trees under `fixtures/dtb/` (written by `linux-fetch --dtb-fixtures`).
    #[test]
    fn the_dtb_fixtures_are_packed_device_trees_of_their_configuration() {
        let dir = crate::workspace::workspace_root()
            .join("fixtures")
            .join("dtb");
        let mut seen = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "dtb") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let b = fs::read(&path).unwrap();
            assert_eq!(check_fdt(&b), Ok(()), "{name}");
            assert!(pack_fdt(&b).unwrap() == b, "{name}: not packed");
            // virt-gicv<G>-smp<N>-qemu<V>.dtb
            let smp: usize = name.split("-smp").nth(1).unwrap()[..1].parse().unwrap();
            let has = |s: &[u8]| b.windows(s.len()).any(|w| w == s);
            let count = |s: &[u8]| b.windows(s.len()).filter(|w| *w == s).count();
            assert_eq!(count(b"cpu@"), smp, "{name}: cpu nodes");
            for s in [
                &b"arm,gic-v3\0"[..],
                b"arm,gic-v3-its\0",
                b"pci-host-ecam-generic\0",
            ] {
                assert!(has(s), "{name}: {}", String::from_utf8_lossy(s));
            }
            // virtualization=on: PSCI by SMC.
            assert!(has(b"smc\0"), "{name}: psci method");
            seen += 1;
        }
        assert_eq!(seen, 8, "fixtures in {}", dir.display());
    }

    #[test]
    fn interrupt_lines_sum_the_cpu_columns() {
        let l = parse_irq_line(
            " 36:        100         23  ITS-MSI 16385 Edge      nvme0q1",
            2,
        )
        .unwrap();
        assert_eq!(l.irq, "36");
        assert_eq!(l.total, 123);
        assert_eq!(l.desc, "ITS-MSI 16385 Edge nvme0q1");
        assert_eq!(parse_irq_line("           CPU0       CPU1", 2), None);
        assert_eq!(parse_irq_line(" 36:  1  ITS-MSI", 2), None);
        assert_eq!(
            parse_irq_line("IPI0:  5  6  Rescheduling interrupts", 2).map(|l| l.total),
            Some(11)
        );
    }

    /// A serial log in the shape the init script prints (kernel lines mixed in).
    const LOG: &str = "\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]
@@L init mode=nvme uptime=3.91
@@L cpus online=0-1
@@L interrupts before
           CPU0       CPU1
 11:       1500       1400     GICv3  27 Level     arch_timer
 36:          9          0  ITS-MSI 16384 Edge      nvme0q0
 37:          2          0  ITS-MSI 16385 Edge      nvme0q1
 38:          0          1  ITS-MSI 16386 Edge      nvme0q2
@@L interrupts end
2048+0 records in
2048+0 records out
@@L reads done count=2048 from=5.25 to=7.00
@@L interrupts after
           CPU0       CPU1
 11:       1900       1800     GICv3  27 Level     arch_timer
[    5.100000] random: crng init done
 36:          9          0  ITS-MSI 16384 Edge      nvme0q0
 37:       2050          0  ITS-MSI 16385 Edge      nvme0q1
 38:          0          1  ITS-MSI 16386 Edge      nvme0q2
@@L interrupts end
@@L block 2047 tag=vgt-disk block 00002047
@@L poweroff
";

    #[test]
    fn the_init_report_reads_markers_tables_and_timings() {
        let r = InitReport::parse(LOG);
        assert_eq!(r.mode.as_deref(), Some("nvme"));
        assert_eq!(r.init_uptime, Some(3.91));
        assert_eq!(r.cpus_online.as_deref(), Some("0-1"));
        assert!(r.reads_done && r.poweroff);
        assert_eq!(r.block, Some((2047, "vgt-disk block 00002047".into())));
        assert_eq!(r.reads_seconds, Some(1.75));
        let after = r.irq_lines("after", "nvme");
        assert_eq!(after.len(), 3);
        assert_eq!(after[1].total, 2050);
        assert_eq!(r.irq_lines("before", "nvme")[1].total, 2);
        assert!(r.irq_lines("boot", "nvme").is_empty());
        assert_eq!(r.verdict("nvme"), Ok(()));
        assert!(r.verdict("boot").is_err());
    }

    #[test]
    fn the_verdict_names_what_is_missing() {
        let no_poweroff = LOG.replace("@@L poweroff\n", "");
        assert_eq!(
            InitReport::parse(&no_poweroff).verdict("nvme"),
            Err("no poweroff line".into())
        );
        let wrong_block = LOG.replace("tag=vgt-disk block 00002047", "tag=vgt-disk block 00000000");
        assert!(
            InitReport::parse(&wrong_block)
                .verdict("nvme")
                .unwrap_err()
                .starts_with("block")
        );
        let no_irqs = LOG.replace("       2050  ", "          2  ");
        assert!(
            InitReport::parse(&no_irqs)
                .verdict("nvme")
                .unwrap_err()
                .contains("(3 -> 3)")
        );
        let failed = LOG.replace(
            "@@L reads done count=2048 from=5.25 to=7.00",
            "@@L FAIL reads: dd exited with 1",
        );
        assert_eq!(
            InitReport::parse(&failed).verdict("nvme"),
            Err("/init reported a failure: reads: dd exited with 1".into())
        );
        let boot = "@@L init mode=boot uptime=1.0\n@@L poweroff\n";
        assert_eq!(InitReport::parse(boot).verdict("boot"), Ok(()));
    }

    #[test]
    fn hotplug_and_isolation_lines_are_read_and_judged() {
        let smp = "@@L init mode=smp uptime=1.0\n@@L cpus online=0-3\n\
                   @@L hotplug cpu3 off=0-2 on=0-3\n@@L poweroff\n";
        let r = InitReport::parse(smp);
        assert_eq!(r.hotplug, Some(("cpu3".into(), "0-2".into(), "0-3".into())));
        assert_eq!(r.verdict("smp"), Ok(()));
        let stuck = smp.replace("off=0-2", "off=0-3");
        assert!(InitReport::parse(&stuck).verdict("smp").is_err());
        let iso = "@@L init mode=isolation uptime=1.0\n\
                   @@L isolation target=0x40200000 read=sigbus write=sigbus\n@@L poweroff\n";
        let r = InitReport::parse(iso);
        assert_eq!(r.isolation, Some(("sigbus".into(), "sigbus".into())));
        assert_eq!(r.verdict("isolation"), Ok(()));
        let leaked = iso.replace("write=sigbus", "write=allowed");
        assert!(
            InitReport::parse(&leaked)
                .verdict("isolation")
                .unwrap_err()
                .contains("allowed")
        );
        assert!(InitReport::parse(iso).verdict("smp").is_err());
    }
}
