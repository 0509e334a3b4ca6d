// SPDX-License-Identifier: MIT OR Apache-2.0
//! Finding (or installing) QEMU and running one scenario under a deadline.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::images::Images;
use super::scenarios::{LinuxGuest, Scenario};
use super::trace;
use crate::linux::guest::HypBoot;

/// The QEMU binary name.
pub const QEMU: &str = "qemu-system-aarch64";
/// The first QEMU release with the TCG GICv4 model (gic-version=4).
pub const MIN_VERSION: (u32, u32) = (7, 1);
/// QEMU is killed if it prints nothing for this long.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(30);
/// The Debian command that installs QEMU (without GTK and friends).
const APT_INSTALL: &str = "apt-get install -y --no-install-recommends qemu-system-arm";
/// How long `QEMU --version` may take. It answers at once; the deadline is for a `--qemu PATH`
/// that is not QEMU (a program that waits for input or starts working).
const VERSION_DEADLINE: Duration = Duration::from_secs(60);
/// How long `apt-get update` may take.
const APT_UPDATE_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How long the QEMU install may take (some hundred MB to download and unpack).
const APT_INSTALL_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How often a bounded wait looks at its child.
const POLL: Duration = Duration::from_millis(10);

/// The QEMU in use.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// The binary.
    pub path: PathBuf,
    /// First line of `--version`.
    pub version_line: String,
}

/// Looks `name` up in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Parses `QEMU emulator version 7.2.22 (Debian ...)` into `(7, 2, 22)`.
pub fn parse_version(line: &str) -> Option<(u32, u32, u32)> {
    let rest = &line[line.find("version ")? + "version ".len()..];
    let word = rest.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Waits for `child` at most `limit`; past it, kills and reaps it and returns `None`.
fn wait_within(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// `limit` for messages: in minutes when it is a whole number of them (two or more), else in
/// seconds.
fn describe_limit(limit: Duration) -> String {
    let secs = limit.as_secs();
    if limit.subsec_nanos() != 0 {
        format!("{:.1} s", limit.as_secs_f64())
    } else if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Runs `cmd` (stdin closed, stderr discarded) for at most `limit` and returns its standard
/// output, whatever its exit status. Past `limit` it is killed and the error says so.
fn stdout_within(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    // Read on a thread: a chatty child must not block on a full pipe, and a descendant that
    // keeps the pipe open must not block us past the deadline.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    match wait_within(&mut child, limit) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "did not finish within {}: killed",
                describe_limit(limit)
            ));
        }
        Err(e) => return Err(format!("waiting for it: {e}")),
    }
    // The rest of the output: what is left of the deadline, but at least a moment to drain it.
    let grace = limit
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(1));
    let bytes = rx
        .recv_timeout(grace)
        .map_err(|_| "exited but its output did not end".to_owned())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Runs `apt-get args` non-interactively (its output shown) for at most `limit`.
fn apt_get(args: &[&str], limit: Duration) -> Result<(), String> {
    let mut child = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    match wait_within(&mut child, limit) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("apt-get exited with {s}")),
        Ok(None) => Err(format!(
            "did not finish within {}: killed (`dpkg --configure -a` repairs an interrupted \
             install)",
            describe_limit(limit)
        )),
        Err(e) => Err(format!("waiting for apt-get: {e}")),
    }
}

/// The first line of `path --version`, trimmed (killed after [`VERSION_DEADLINE`]).
pub fn version_line(path: &Path) -> Result<String, String> {
    let text = stdout_within(Command::new(path).arg("--version"), VERSION_DEADLINE)
        .map_err(|e| format!("{} --version: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// Finds QEMU: `explicit` (`--qemu PATH`), else `qemu-system-aarch64` on `PATH`, else installs
/// it with apt-get when running as root on a Debian-like system. Checks the version.
pub fn find_qemu(explicit: Option<&Path>) -> Result<Qemu, String> {
    let path = match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(format!("--qemu {}: no such file", p.display()));
            }
            p.to_path_buf()
        }
        None => match which(QEMU) {
            Some(p) => p,
            None => install_qemu()?,
        },
    };
    let version_line = version_line(&path)?;
    let Some((major, minor, _)) = parse_version(&version_line) else {
        return Err(format!(
            "cannot read the version of {}: {version_line:?}",
            path.display()
        ));
    };
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "{version_line} is too old: the GICv4 model needs QEMU >= {}.{} \
             (Debian 12 ships 7.2: {APT_INSTALL})",
            MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    Ok(Qemu { path, version_line })
}

fn install_qemu() -> Result<PathBuf, String> {
    if !(is_root() && which("apt-get").is_some()) {
        return Err(format!(
            "{QEMU} not found. Install it with:\n    sudo {APT_INSTALL}\nor pass --qemu PATH"
        ));
    }
    println!("{QEMU} not found: installing it (apt-get update; {APT_INSTALL})");
    if let Err(e) = apt_get(&["update"], APT_UPDATE_DEADLINE) {
        println!("apt-get update failed ({e}); trying the install anyway");
    }
    let args: Vec<&str> = APT_INSTALL.split_whitespace().skip(1).collect();
    apt_get(&args, APT_INSTALL_DEADLINE).map_err(|e| format!("`{APT_INSTALL}` failed: {e}"))?;
    which(QEMU).ok_or_else(|| format!("{QEMU} still not on PATH after installing qemu-system-arm"))
}

/// What QEMU logs into the `-D` file (`-d`): guest_errors, misuse the model reports (a bad
/// ITS command does not stall); unimp, an access to a device or register QEMU does not
/// implement; and with [`Scenario::its_trace`] the trace of every ITS command ([`trace`]).
fn log_items(scenario: &Scenario) -> String {
    let mut items = String::from("guest_errors,unimp");
    if scenario.its_trace {
        items.push_str(",trace:");
        items.push_str(trace::EVENT);
    }
    items
}

/// The QEMU arguments for one scenario.
pub fn qemu_args(scenario: &Scenario, images: &Images, qemu_log: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "-M",
        "virt,gic-version=4,virtualization=on",
        "-cpu",
        "max",
        "-smp",
        &scenario.smp.to_string(),
        "-m",
        "512M",
        "-nographic",
        "-nic",
        "none",
        "-semihosting-config",
        &format!("enable=on,target=native,arg=hyp,arg={}", scenario.name),
        "-d",
        &log_items(scenario),
        "-D",
        &qemu_log.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if scenario.edu {
        args.extend(["-device".into(), "edu".into()]);
    }
    if scenario.icount {
        args.extend(["-icount".into(), "shift=0".into()]);
    }
    args.extend([
        "-kernel".into(),
        images.hyp.display().to_string(),
        "-device".into(),
        format!("loader,file={}", images.guest.display()),
    ]);
    args
}

/// The QEMU arguments for a Linux scenario: the hypervisor, the provisioned test guest and
/// `guest`'s command line ([`HypBoot::prepare`] writes the boot
/// parameter block under `<logdir>/linux/`), plus the guest-error log.
pub fn linux_args(
    images: &Images,
    scenario: &Scenario,
    guest: &LinuxGuest,
    logdir: &Path,
    qemu_log: &Path,
) -> Result<Vec<String>, String> {
    let tg = images
        .linux
        .as_ref()
        .ok_or("the Linux test guest was not provisioned (see the error above)")?;
    let boot = HypBoot {
        hyp: images.hyp.clone(),
        scenario: scenario.name.to_owned(),
        smp: scenario.smp,
        kernel: tg.kernel.clone(),
        header: tg.header,
        initrd: Some(tg.initramfs.clone()),
        bootargs: guest.bootargs(),
        nvme_disk: guest.nvme.then(|| tg.disk.clone()),
        nvme_vectors: guest.single_vector.then_some(1),
        work_dir: logdir.join("linux"),
    };
    let mut args = boot.prepare()?;
    if scenario.icount {
        args.extend(["-icount".into(), "shift=0".into()]);
    }
    args.extend([
        "-d".into(),
        log_items(scenario),
        "-D".into(),
        qemu_log.display().to_string(),
    ]);
    Ok(args)
}

/// Quotes a command line for display.
pub fn shell_line(program: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+".contains(c))
        {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    std::iter::once(quote(&program.display().to_string()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Kills and reaps the child when dropped, whatever path the runner leaves by.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What one QEMU run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Serial output (QEMU's stdout), then its stderr if any.
    pub serial: String,
    /// The `-d guest_errors,unimp` log.
    pub qemu_log: String,
    /// Exit status; `None` if killed.
    pub exit: Option<i32>,
    /// Killed at a deadline: why.
    pub timeout: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Wall time from QEMU's start to the Linux guest's `/init` (its first `@@L init` line).
    pub to_init: Option<Duration>,
    /// Where the serial output was saved.
    pub log_path: PathBuf,
    /// Where the guest-error log was saved.
    pub qemu_log_path: PathBuf,
    /// The command line.
    pub command: String,
}

/// Boots one scenario and collects its output. `on_line` sees each serial line as it arrives
/// (for the demo's live narration). Logs go to `<logdir>/<name>.log` and `<name>.qemu.log`.
pub fn run_scenario(
    qemu: &Qemu,
    images: &Images,
    scenario: &Scenario,
    logdir: &Path,
    on_line: &mut dyn FnMut(&str),
) -> io::Result<RunOutput> {
    let log_path = logdir.join(format!("{}.log", scenario.name));
    let qemu_log_path = logdir.join(format!("{}.qemu.log", scenario.name));
    let _ = fs::remove_file(&qemu_log_path);
    let args = match &scenario.linux {
        None => qemu_args(scenario, images, &qemu_log_path),
        Some(guest) => {
            linux_args(images, scenario, guest, logdir, &qemu_log_path).map_err(io::Error::other)?
        }
    };
    let limits = Limits {
        total: scenario.deadline,
        idle: IDLE_DEADLINE,
    };
    run_qemu(qemu, &args, limits, &log_path, &qemu_log_path, on_line)
}

/// How long a run may take in all, and without printing anything.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// The whole run.
    pub total: Duration,
    /// Without output.
    pub idle: Duration,
}

/// Runs QEMU with `args` (stdin closed) under `limits` and collects its output. `on_line`
/// sees each serial line as it arrives. The serial output (then QEMU's stderr) goes to
/// `log_path`; `qemu_log_path` is read back as the `-D` log the arguments name.
pub fn run_qemu(
    qemu: &Qemu,
    args: &[String],
    limits: Limits,
    log_path: &Path,
    qemu_log_path: &Path,
    on_line: &mut dyn FnMut(&str),
) -> io::Result<RunOutput> {
    let (log_path, qemu_log_path) = (log_path.to_path_buf(), qemu_log_path.to_path_buf());
    let command = shell_line(&qemu.path, args);
    let mut log = File::create(&log_path)?;

    let start = Instant::now();
    let mut child = KillOnDrop(
        Command::new(&qemu.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let mut stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut stderr = child
        .0
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("no stderr"))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let out_reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });

    let deadline = start + limits.total;
    let mut last_output = Instant::now();
    let mut serial = Vec::new();
    let mut partial = Vec::new();
    let mut timeout = None;
    let mut to_init = None;
    let mut emit = |bytes: &[u8], partial: &mut Vec<u8>, on_line: &mut dyn FnMut(&str)| {
        partial.extend_from_slice(bytes);
        while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            if to_init.is_none() && line.starts_with("@@L init ") {
                to_init = Some(start.elapsed());
            }
            on_line(line.trim_end_matches(['\n', '\r']));
        }
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            timeout = Some(format!("no verdict within {} s", limits.total.as_secs()));
            break;
        }
        let idle = now - last_output;
        if idle >= limits.idle {
            timeout = Some(format!("no output for {} s", limits.idle.as_secs()));
            break;
        }
        match rx.recv_timeout((deadline - now).min(limits.idle - idle)) {
            Ok(chunk) => {
                last_output = Instant::now();
                log.write_all(&chunk)?;
                serial.extend_from_slice(&chunk);
                emit(&chunk, &mut partial, on_line);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    // Stdout closed (or a deadline passed): collect the exit status, bounded by the deadline.
    let mut exit = None;
    if timeout.is_none() {
        loop {
            if let Some(status) = child.0.try_wait()? {
                exit = status.code();
                break;
            }
            if Instant::now() >= deadline {
                timeout = Some(format!(
                    "QEMU did not exit within {} s",
                    limits.total.as_secs()
                ));
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    drop(child); // kills QEMU if it is still running
    let _ = out_reader.join();
    while let Ok(chunk) = rx.try_recv() {
        log.write_all(&chunk)?;
        serial.extend_from_slice(&chunk);
        emit(&chunk, &mut partial, on_line);
    }
    if !partial.is_empty() {
        on_line(&String::from_utf8_lossy(&partial));
    }
    let err_bytes = err_reader.join().unwrap_or_default();
    if !err_bytes.is_empty() {
        log.write_all(b"\n--- qemu stderr ---\n")?;
        log.write_all(&err_bytes)?;
        serial.extend_from_slice(b"\n");
        serial.extend_from_slice(&err_bytes);
    }
    let elapsed = start.elapsed();
    let qemu_log = fs::read_to_string(&qemu_log_path).unwrap_or_default();
    Ok(RunOutput {
        serial: String::from_utf8_lossy(&serial).into_owned(),
        qemu_log,
        exit,
        timeout,
        elapsed,
        to_init,
        log_path,
        qemu_log_path,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::scenarios::by_name;

    #[test]
    fn versions_parse() {
        let v = parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)");
        assert_eq!(v, Some((7, 2, 22)));
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 7.0.90"),
            Some((7, 0, 90))
        );
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("QEMU emulator version 7.0.0").unwrap() < (7, 1, 0));
    }

    #[test]
    fn command_line_has_the_gicv4_machine_and_the_scenario() {
        let images = Images {
            hyp: "/x/hyp".into(),
            guest: "/x/guest".into(),
            linux: None,
        };
        let demo = by_name("demo").unwrap();
        let args = qemu_args(demo, &images, Path::new("/logs/demo.qemu.log"));
        let line = args.join(" ");
        assert!(line.contains("-M virt,gic-version=4,virtualization=on -cpu max -smp 2 -m 512M"));
        assert!(line.contains("-nographic -nic none"));
        assert!(line.contains("-semihosting-config enable=on,target=native,arg=hyp,arg=demo"));
        assert!(line.contains("-d guest_errors,unimp -D /logs/demo.qemu.log"));
        assert!(line.contains("-device edu"));
        assert!(line.ends_with("-kernel /x/hyp -device loader,file=/x/guest"));
        let boot = qemu_args(by_name("boot_smoke").unwrap(), &images, Path::new("/l"));
        assert!(!boot.iter().any(|a| a == "edu"));
        assert!(!boot.iter().any(|a| a == "-icount"));
    }

    #[test]
    fn benchmarks_boot_with_icount() {
        let images = Images {
            hyp: "/x/hyp".into(),
            guest: "/x/guest".into(),
            linux: None,
        };
        let bench = by_name("bench_vlpi_latency").unwrap();
        let line = qemu_args(bench, &images, Path::new("/l")).join(" ");
        assert!(line.contains("-icount shift=0"), "{line}");
        assert!(line.contains("arg=hyp,arg=bench_vlpi_latency"), "{line}");
    }

    #[test]
    fn bounded_waits_return_the_status_or_kill_at_the_limit() {
        let mut quick = Command::new("true").spawn().unwrap();
        let status = wait_within(&mut quick, Duration::from_secs(60)).unwrap();
        assert!(status.is_some_and(|s| s.success()));
        let start = Instant::now();
        let mut slow = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(
            wait_within(&mut slow, Duration::from_millis(100)).unwrap(),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        // Killed and reaped.
        assert!(slow.try_wait().unwrap().is_some());
    }

    #[test]
    fn stdout_within_reads_the_output_or_reports_the_kill() {
        let out = stdout_within(
            Command::new("sh").args(["-c", "echo 'QEMU emulator version 8.2.0'; exit 3"]),
            Duration::from_secs(60),
        );
        assert_eq!(out.as_deref(), Ok("QEMU emulator version 8.2.0\n"));
        let start = Instant::now();
        let err = stdout_within(
            Command::new("sh").args(["-c", "echo partial; exec sleep 30"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert_eq!(err, "did not finish within 0.2 s: killed");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(
            stdout_within(
                &mut Command::new("/nonexistent/qemu"),
                Duration::from_secs(1)
            )
            .unwrap_err()
            .starts_with("cannot run it: ")
        );
    }

    #[test]
    fn limits_are_described_in_minutes_when_long() {
        assert_eq!(describe_limit(APT_INSTALL_DEADLINE), "30 min");
        assert_eq!(describe_limit(APT_UPDATE_DEADLINE), "15 min");
        assert_eq!(describe_limit(VERSION_DEADLINE), "60 s");
        assert_eq!(describe_limit(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn shell_line_quotes_only_when_needed() {
        let s = shell_line(Path::new("/usr/bin/qemu"), &["-a".into(), "b c".into()]);
        assert_eq!(s, "/usr/bin/qemu -a 'b c'");
    }
}
