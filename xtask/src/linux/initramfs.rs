// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test initramfs: busybox and an `/init` script whose workload the kernel command line
//! picks, as an uncompressed newc cpio archive.
//!
//! Contents: `bin/busybox` (Debian's static arm64 build), `bin/<applet>` symbolic links to it
//! for the applets the script uses ([`APPLETS`]), the mount points `proc`, `sys` and `dev`, the
//! `dev/console` character device (5, 1: the kernel opens it for init's standard streams
//! before any devtmpfs is mounted, and it cannot be made without root on the host, one reason
//! the archive is written here rather than by `cpio` from a directory) and `init`
//! ([`INIT_SCRIPT`]). Owners are root, times 0: the same busybox gives the same bytes.
//!
//! The archive is not compressed: the kernel reads a plain newc archive as well, the
//! hypervisor loads 2 MB instead of 1 MB, and the guest skips a gzip inflate that takes a
//! noticeable time on an emulated CPU. The newc format comes from the `cpio` crate.
//!
//! `/init` reads `vgt.mode=` and `vgt.reads=` from `/proc/cmdline` (see [`INIT_SCRIPT`] for
//! what each mode prints) and prints lines starting with [`MARK`] that a runner checks.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The prefix of every line `/init` prints for a runner.
pub const MARK: &str = "@@L";
/// Printed once the NVMe reads succeeded (followed by ` count=N from=T0 to=T1`, the kernel's
/// uptime in seconds before and after them).
pub const READS_DONE: &str = "@@L reads done";
/// Printed right before `poweroff -f`.
pub const POWEROFF: &str = "@@L poweroff";
/// Starts a line that reports a failure (the rest says what).
pub const FAIL: &str = "@@L FAIL";
/// The workloads `/init` knows (`vgt.mode=`).
pub const MODES: &[&str] = &["boot", "nvme", "smp", "isolation", "affinity"];
/// Printed by `affinity` mode after each batch (followed by ` irq=N cpu=C before=A,B
/// after=A,B`: the interrupt's per-CPU counts before and after the batch).
pub const AFFINITY: &str = "@@L affinity";
/// The default number of direct 4 KiB reads in `nvme` mode (`vgt.reads=`).
pub const DEFAULT_READS: u32 = 2048;

/// The busybox applets `/init` calls, each linked as `/bin/<applet>` (plus a few for reading
/// a failed boot's state by hand).
pub const APPLETS: &[&str] = &[
    "sh", "mount", "cat", "sleep", "dd", "head", "poweroff", "ls", "dmesg", "grep", "uname",
    "devmem",
];

/// `/init`. Modes:
/// - `boot`: mount proc, sys and devtmpfs, print the online CPUs and `/proc/interrupts`;
/// - `nvme`: the same mounts, then wait (at most 10 s) for `/dev/nvme0n1`, print
///   `/proc/interrupts`, make `vgt.reads` (default 2048) direct 4 KiB reads between the two
///   phase marks (`devmem` writes 1 and 2 to the hypervisor's phase marker,
///   `layout::PHASE_MARKER`: the hypervisor counts its exits between them), print
///   `/proc/interrupts` again, then read back the last block's tag (see
///   [`super::disk::block_tag`]) so a runner can check the data came from the disk;
/// - `affinity`: as `nvme`, but the reads go in two batches, and before each the NVMe
///   interrupt (the one that serves `nvme0q1`) is moved with `/proc/irq/N/smp_affinity`, to
///   CPU 1 and then back to CPU 0; after each batch `@@L affinity irq=N cpu=C before=A,B
///   after=A,B` gives its per-CPU counts ([`AFFINITY`]);
/// - `smp`: the same mounts, then takes the last CPU offline and back online and prints
///   `@@L hotplug cpuN off=<online CPUs while off> on=<online CPUs after>`;
/// - `isolation`: the same mounts, then reads and writes 32 bits at `vgt.target=` (an
///   address outside the guest's memory) with `devmem`, each in its own process, and prints
///   `@@L isolation target=T read=R write=W`, where R and W are `sigbus` when the process
///   died of SIGBUS (exit status 135), `allowed` when the access went through, `exitN`
///   otherwise.
///
/// Each `/proc/interrupts` print is framed by `@@L interrupts <when>` and `@@L interrupts
/// end`. Every mode ends with [`POWEROFF`] and `poweroff -f`.
pub const INIT_SCRIPT: &str = r#"#!/bin/sh
# /init of the project's test initramfs, written by cargo xtask (xtask/src/linux/initramfs.rs).
# The workload comes from the kernel command line: vgt.mode=boot|nvme|smp|isolation|affinity,
# vgt.reads=N, vgt.target=ADDRESS. The measured I/O is framed by writes of 1 and 2 to the
# hypervisor's phase marker.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mode=boot
reads=2048
target=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    vgt.mode=*) mode="${arg#vgt.mode=}" ;;
    vgt.reads=*) reads="${arg#vgt.reads=}" ;;
    vgt.target=*) target="${arg#vgt.target=}" ;;
    esac
done
read -r up _ </proc/uptime
echo "@@L init mode=$mode uptime=$up"
echo "@@L cpus online=$(cat /sys/devices/system/cpu/online)"

interrupts() {
    echo "@@L interrupts $1"
    cat /proc/interrupts
    echo "@@L interrupts end"
}

marker=0x0a000000
disk=/dev/nvme0n1

phase() {
    devmem "$marker" 32 "$1" || echo "@@L FAIL phase $1: devmem exited with $?"
}

wait_disk() {
    n=0
    while [ ! -b "$disk" ] && [ "$n" -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if [ ! -b "$disk" ]; then
        echo "@@L FAIL no $disk after 10 s"
        return 1
    fi
}

last_block() {
    last=$((reads - 1))
    tag=$(dd if="$disk" bs=4096 skip="$last" count=1 iflag=direct 2>/dev/null | head -c 23)
    echo "@@L block $last tag=$tag"
}

nvme() {
    wait_disk || return
    interrupts before
    phase 1
    read -r t0 _ </proc/uptime
    if dd if="$disk" of=/dev/null bs=4096 count="$reads" iflag=direct; then
        read -r t1 _ </proc/uptime
        phase 2
        echo "@@L reads done count=$reads from=$t0 to=$t1"
    else
        echo "@@L FAIL reads: dd exited with $?"
    fi
    interrupts after
    last_block
}

# The per-CPU counts of interrupt $1 (two CPUs), as A,B.
counts() {
    set -- $(grep "^ *$1:" /proc/interrupts)
    echo "$2,$3"
}

affinity() {
    wait_disk || return
    interrupts before
    set -- $(grep -m 1 nvme0q1 /proc/interrupts)
    irq=${1%:}
    if [ -z "$irq" ] || [ ! -e "/proc/irq/$irq/smp_affinity" ]; then
        echo "@@L FAIL affinity: no interrupt for nvme0q1"
        return
    fi
    half=$((reads / 2))
    phase 1
    read -r t0 _ </proc/uptime
    skip=0
    for cpu in 1 0; do
        if ! echo $((1 << cpu)) >"/proc/irq/$irq/smp_affinity"; then
            echo "@@L FAIL affinity: irq $irq cannot move to cpu$cpu"
            return
        fi
        before=$(counts "$irq")
        if ! dd if="$disk" of=/dev/null bs=4096 count="$half" skip="$skip" iflag=direct; then
            echo "@@L FAIL reads: dd exited with $?"
            return
        fi
        after=$(counts "$irq")
        echo "@@L affinity irq=$irq cpu=$cpu before=$before after=$after \
effective=$(cat "/proc/irq/$irq/effective_affinity_list")"
        skip=$((skip + half))
    done
    read -r t1 _ </proc/uptime
    phase 2
    echo "@@L reads done count=$((2 * half)) from=$t0 to=$t1"
    interrupts after
    last_block
}

smp() {
    online=$(cat /sys/devices/system/cpu/online)
    last=${online##*-}
    if [ "$last" = "$online" ] || [ ! -e "/sys/devices/system/cpu/cpu$last/online" ]; then
        echo "@@L FAIL smp: CPUs online $online: nothing to take offline"
        return
    fi
    echo 0 >"/sys/devices/system/cpu/cpu$last/online"
    off=$(cat /sys/devices/system/cpu/online)
    echo 1 >"/sys/devices/system/cpu/cpu$last/online"
    on=$(cat /sys/devices/system/cpu/online)
    echo "@@L hotplug cpu$last off=$off on=$on"
    interrupts smp
}

outcome() {
    case "$1" in
    0) echo allowed ;;
    135) echo sigbus ;;
    *) echo "exit$1" ;;
    esac
}

isolation() {
    if [ -z "$target" ]; then
        echo "@@L FAIL isolation: no vgt.target= on the command line"
        return
    fi
    devmem "$target" 32 >/dev/null 2>&1
    r=$(outcome $?)
    devmem "$target" 32 0x5a5a5a5a >/dev/null 2>&1
    w=$(outcome $?)
    echo "@@L isolation target=$target read=$r write=$w"
}

case "$mode" in
boot) interrupts boot ;;
nvme) nvme ;;
affinity) affinity ;;
smp) smp ;;
isolation) isolation ;;
*) echo "@@L FAIL unknown vgt.mode=$mode" ;;
esac
echo "@@L poweroff"
poweroff -f
sleep 5
echo "@@L FAIL poweroff -f returned"
"#;

/// What an archive entry is.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A character device.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// One archive entry.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Entry {
    /// Path inside the archive, relative (`bin/busybox`).
    pub path: String,
    /// Permission bits (the file type comes from `kind`).
    pub perm: u32,
    /// What it is.
    pub kind: Kind,
}

impl Entry {
    /// The newc mode: type bits and permissions.
    pub fn mode(&self) -> u32 {
        let ty = match self.kind {
            Kind::Dir => 0o040000,
            Kind::File(_) => 0o100000,
            Kind::Symlink(_) => 0o120000,
            Kind::CharDev { .. } => 0o020000,
        };
        ty | (self.perm & 0o7777)
    }
}

/// The entries of the test initramfs around `busybox` (the binary's bytes).
pub fn entries(busybox: Vec<u8>) -> Vec<Entry> {
    let dir = |p: &str| Entry {
        path: p.into(),
        perm: 0o755,
        kind: Kind::Dir,
    };
    let mut v = vec![dir("bin"), dir("dev"), dir("proc"), dir("sys")];
    v.push(Entry {
        path: "dev/console".into(),
        perm: 0o600,
        kind: Kind::CharDev { major: 5, minor: 1 },
    });
    v.push(Entry {
        path: "bin/busybox".into(),
        perm: 0o755,
        kind: Kind::File(busybox),
    });
    v.extend(APPLETS.iter().map(|a| Entry {
        path: format!("bin/{a}"),
        perm: 0o777,
        kind: Kind::Symlink("busybox".into()),
    }));
    v.push(Entry {
        path: "init".into(),
        perm: 0o755,
        kind: Kind::File(INIT_SCRIPT.as_bytes().to_vec()),
    });
    v
}

/// Writes `entries` as a newc archive (inode numbers from 1, owner root, time 0) and its
/// trailer.
pub fn write_newc<W: Write>(entries: &[Entry], mut w: W) -> io::Result<W> {
    for (i, e) in entries.iter().enumerate() {
        let data: &[u8] = match &e.kind {
            Kind::File(d) => d,
            Kind::Symlink(t) => t.as_bytes(),
            Kind::Dir | Kind::CharDev { .. } => &[],
        };
        let too_big = || io::Error::other(format!("{}: too large for newc", e.path));
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let ino = u32::try_from(i + 1).map_err(|_| too_big())?;
        let (rmaj, rmin) = match e.kind {
            Kind::CharDev { major, minor } => (major, minor),
            _ => (0, 0),
        };
        let mut writer = cpio::newc::Builder::new(&e.path)
            .ino(ino)
            .mode(e.mode())
            .nlink(if e.kind == Kind::Dir { 2 } else { 1 })
            .rdev_major(rmaj)
            .rdev_minor(rmin)
            .write(w, size);
        writer.write_all(data)?;
        w = writer.finish()?;
    }
    cpio::newc::trailer(w)
}

/// A built initramfs.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Initramfs {
    /// The archive.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Builds the test initramfs around the busybox binary at `busybox` into `out` (written to a
/// temporary file, then renamed).
pub fn build_initramfs(busybox: &Path, out: &Path) -> Result<Initramfs, String> {
    let bin = fs::read(busybox).map_err(|e| format!("reading {}: {e}", busybox.display()))?;
    let bytes =
        write_newc(&entries(bin), Vec::new()).map_err(|e| format!("writing the initramfs: {e}"))?;
    let tmp = out.with_extension("tmp");
    fs::write(&tmp, &bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| format!("renaming to {}: {e}", out.display()))?;
    Ok(Initramfs {
        path: out.to_path_buf(),
        size: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::Command;

    /// Every entry of a newc archive, read back with the crate's reader: (name, mode, rdev
    /// major, rdev minor, data).
    fn read_back(mut bytes: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let mut r = cpio::NewcReader::new(bytes).unwrap();
            let e = r.entry();
            if e.is_trailer() {
                break;
            }
            let (name, mode, maj, min) = (
                e.name().to_owned(),
                e.mode(),
                e.rdev_major(),
                e.rdev_minor(),
            );
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            out.push((name, mode, maj, min, data));
            bytes = r.finish().unwrap();
        }
        out
    }

    #[test]
    fn the_archive_reads_back_entry_for_entry() {
        let busybox = b"\x7fELF fake busybox, odd length".to_vec();
        let bytes = write_newc(&entries(busybox.clone()), Vec::new()).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let got = read_back(&bytes);
        let find = |n: &str| {
            got.iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(find("bin/busybox").1, 0o100755);
        assert_eq!(find("bin/busybox").4, busybox);
        assert_eq!(find("init").1, 0o100755);
        assert_eq!(find("init").4, INIT_SCRIPT.as_bytes());
        let console = find("dev/console");
        assert_eq!((console.1, console.2, console.3), (0o020600, 5, 1));
        for d in ["bin", "dev", "proc", "sys"] {
            assert_eq!(find(d).1, 0o040755, "{d}");
        }
        for a in APPLETS {
            let l = find(&format!("bin/{a}"));
            assert_eq!(l.1, 0o120777, "{a}");
            assert_eq!(l.4, b"busybox", "{a}");
        }
        assert_eq!(got.len(), 7 + APPLETS.len());
        // Directories come before what they hold.
        let pos = |n: &str| got.iter().position(|e| e.0 == n).unwrap();
        assert!(pos("bin") < pos("bin/busybox"));
        assert!(pos("dev") < pos("dev/console"));
    }

    /// Walks a newc archive by the format's own rules (not the crate's reader): 110-byte
    /// ASCII header "070701" + 13 hex fields, name NUL-terminated, header+name and data each
    /// padded to 4 bytes. Returns (name, mode, filesize) per entry, trailer included.
    fn walk_by_hand(bytes: &[u8]) -> Vec<(String, u32, usize)> {
        let hex = |at: usize| {
            u32::from_str_radix(std::str::from_utf8(&bytes[at..at + 8]).unwrap(), 16).unwrap()
        };
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
            let mode = hex(at + 6 + 8);
            let size = hex(at + 6 + 6 * 8) as usize;
            let namesize = hex(at + 6 + 11 * 8) as usize;
            let name = &bytes[at + 110..at + 110 + namesize];
            assert_eq!(name.last(), Some(&0), "NUL after the name at {at}");
            let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
            let data = (at + 110 + namesize).next_multiple_of(4);
            at = (data + size).next_multiple_of(4);
            out.push((name.clone(), mode, size));
            if name == "TRAILER!!!" {
                break;
            }
        }
        assert_eq!(at, bytes.len(), "nothing after the trailer");
        out
    }

    #[test]
    fn the_layout_matches_the_newc_format_read_by_hand() {
        let bytes = write_newc(&entries(vec![7; 5]), Vec::new()).unwrap();
        let walked = walk_by_hand(&bytes);
        let names: Vec<&str> = walked.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names.first(), Some(&"bin"));
        assert_eq!(names.last(), Some(&"TRAILER!!!"));
        assert!(walked.contains(&("bin/busybox".into(), 0o100755, 5)));
        assert!(walked.contains(&("bin/sh".into(), 0o120777, "busybox".len())));
        assert!(walked.contains(&("init".into(), 0o100755, INIT_SCRIPT.len())));
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let a = write_newc(&entries(vec![1, 2, 3]), Vec::new()).unwrap();
        let b = write_newc(&entries(vec![1, 2, 3]), Vec::new()).unwrap();
        assert_eq!(a, b);
        let c = write_newc(&entries(vec![1, 2, 4]), Vec::new()).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn build_writes_the_file_and_reports_its_size() {
        let dir = std::env::temp_dir().join(format!("xtask-initramfs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bb = dir.join("busybox");
        fs::write(&bb, b"bb").unwrap();
        let out = dir.join("initramfs.cpio");
        let built = build_initramfs(&bb, &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(built.size, bytes.len() as u64);
        assert_eq!(
            read_back(&bytes)
                .iter()
                .find(|e| e.0 == "bin/busybox")
                .unwrap()
                .4,
            b"bb"
        );
        assert!(build_initramfs(&dir.join("missing"), &out).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_init_script_is_valid_shell_and_knows_each_mode() {
        let out = Command::new("sh")
            .args(["-n", "-c", INIT_SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for m in MODES {
            assert!(INIT_SCRIPT.contains(&format!("\n{m}) ")), "{m}");
        }
        assert!(INIT_SCRIPT.contains(&format!("reads={DEFAULT_READS}\n")));
        assert!(INIT_SCRIPT.contains(&format!("echo \"{POWEROFF}\"\npoweroff -f\n")));
        assert!(INIT_SCRIPT.contains(&format!("echo \"{READS_DONE} count=$reads from=")));
        // Every command the script runs is a linked applet or a shell builtin.
        for cmd in [
            "mount", "cat", "sleep", "dd", "head", "poweroff", "devmem", "grep",
        ] {
            assert!(APPLETS.contains(&cmd), "{cmd}");
        }
        // The phase marker is the hypervisor's.
        let marker = format!(
            "\nmarker={:#010x}\n",
            super::super::guest::layout::PHASE_MARKER
        );
        assert!(INIT_SCRIPT.contains(&marker), "{marker}");
        assert!(INIT_SCRIPT.contains(&format!("echo \"{AFFINITY} irq=$irq cpu=$cpu before=")));
    }
}
