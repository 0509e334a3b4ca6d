// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask`: the project's build, test and tooling commands.
//!
//! ```text
//! cargo xtask demo [--qemu PATH]         boot the demo hypervisor on QEMU and narrate it
//! cargo xtask test                       lints, host tests, fuzz-corpus replay, QEMU suite
//! cargo xtask qemu-test [--filter S] [--qemu PATH] [--keep-logs]
//! cargo xtask decode [--v41] [--bin] [FILE]
//! cargo xtask encode [--v41] [FILE]
//! cargo xtask fuzz [--target T] [--time SECS] [--no-cmin]
//! cargo xtask bench [--list] [--publish] [SECTION...]
//! ```

mod bench;
mod cli;
mod fuzz;
mod linux;
mod qemu;
mod test;
mod toolchain;
mod workspace;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  demo [--qemu PATH]          boot the demo hypervisor on QEMU and narrate each step
  test                        everything: fmt, clippy, no_std builds, host tests,
                              fuzz-corpus replay, the QEMU suite
  qemu-test [--filter S] [--qemu PATH] [--keep-logs]
                              build the QEMU images and run the scenarios
  decode [--v41] [--bin] [FILE]
                              disassemble ITS commands (hex dwords or raw bytes)
  encode [--v41] [FILE]       assemble ITS commands from the decode text format
  fuzz [--target T] [--time SECS] [--no-cmin]
                              run the cargo-fuzz targets (nightly)
  bench [--list] [--publish] [SECTION...]
                              run the benchmarks, print the figures, write the report
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "qemu-test" => qemu::qemu_test(rest),
        "test" => test::run(rest),
        "decode" => cli::decode(rest),
        "encode" => cli::encode(rest),
        "fuzz" => fuzz::run(rest),
        "bench" => bench::run(rest),
        "demo" => qemu::demo(rest),
        "linux-fetch" => linux::cli::linux_fetch(rest),
        "qemu-fetch" => linux::cli::qemu_fetch(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
