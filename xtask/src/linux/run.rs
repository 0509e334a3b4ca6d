// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bounded child processes: run a tool, collect what it printed, kill it at a deadline.
//!
//! The QEMU runner in `crate::qemu::launch` has its own loop, shaped around scenarios (serial
//! narration, an idle deadline); apt-get, dpkg-deb and `qemu --version` only need "run it,
//! give me its output, never wait past the limit", which is this.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How often a bounded wait looks at its child.
const POLL: Duration = Duration::from_millis(20);

/// What a finished child printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// Standard error then standard output, trimmed, for an error message.
    pub fn transcript(&self) -> String {
        let mut text = self.stderr.trim().to_owned();
        if !self.stdout.trim().is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(self.stdout.trim());
        }
        text
    }
}

/// Reads `r` to its end on a thread; the receiver gets the bytes.
fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Waits for `child` at most until `deadline`; past it, kills and reaps it.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// `d` in seconds, with a decimal only when it is not whole.
pub fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Runs `cmd` with stdin closed for at most `limit` and returns what it printed, whatever its
/// exit status. Past `limit` it is killed and the error says so. `what` names it in errors.
pub fn run_within(cmd: &mut Command, limit: Duration, what: &str) -> Result<Finished, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start it: {e}"))?;
    let out = drain(child.stdout.take().ok_or("no stdout")?);
    let err = drain(child.stderr.take().ok_or("no stderr")?);
    let Some(status) = wait_until(&mut child, start + limit).map_err(|e| format!("{what}: {e}"))?
    else {
        return Err(format!(
            "{what}: did not finish within {}: killed",
            seconds(limit)
        ));
    };
    // A descendant may hold the pipes open: give the readers a moment, not forever.
    let grace = limit
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(1));
    let text = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(grace)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(Finished {
        status,
        stdout: text(out),
        stderr: text(err),
    })
}

/// [`run_within`], and an error with the transcript unless the exit status is 0.
pub fn run_ok(cmd: &mut Command, limit: Duration, what: &str) -> Result<Finished, String> {
    let done = run_within(cmd, limit, what)?;
    if done.status.success() {
        Ok(done)
    } else {
        Err(format!(
            "{what}: exited with {}:\n{}",
            done.status,
            done.transcript()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_status_are_collected() {
        let done = run_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(60),
            "sh",
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert_eq!(done.transcript(), "err\nout");
        let e = run_ok(
            Command::new("sh").args(["-c", "echo why >&2; exit 1"]),
            Duration::from_secs(60),
            "tool",
        )
        .unwrap_err();
        assert!(e.starts_with("tool: exited with"), "{e}");
        assert!(e.ends_with("why"), "{e}");
    }

    #[test]
    fn a_child_past_its_limit_is_killed() {
        let start = Instant::now();
        let e = run_within(
            Command::new("sleep").arg("30"),
            Duration::from_millis(200),
            "sleep",
        )
        .unwrap_err();
        assert_eq!(e, "sleep: did not finish within 0.2 s: killed");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let e = run_within(
            &mut Command::new("/nonexistent/tool"),
            Duration::from_secs(1),
            "tool",
        )
        .unwrap_err();
        assert!(e.starts_with("tool: cannot start it: "), "{e}");
    }
}
