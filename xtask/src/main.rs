// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask`: the project's build, test and tooling commands.
//!
//! `cargo xtask --help` lists the commands; `cargo xtask COMMAND --help` gives one command's
//! options. The command line is declared with clap's derive: [`Cli`] holds one variant per
//! command, and each command's options are an `Args` struct in the module that runs it (its doc
//! comment is the command's help text). Usage errors exit with status 2.
//!
//! Adding a command: an `Args` struct in its module (`#[derive(clap::Args)]`, a doc comment,
//! one field per option; `#[command(flatten)] qemu: crate::qemu::QemuArg` for `--qemu PATH`),
//! a variant in [`Command`] and its arm in [`main`].

mod bench;
mod cli;
mod fuzz;
mod linux;
mod qemu;
mod test;
mod toolchain;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The project's build, test and tooling commands.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
#[command(arg_required_else_help = true, disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per command; each command's help is its `Args` struct's doc comment.
#[derive(Debug, Subcommand)]
enum Command {
    Demo(qemu::DemoArgs),
    Test(test::Args),
    QemuTest(qemu::QemuTestArgs),
    Decode(cli::DecodeArgs),
    Encode(cli::EncodeArgs),
    Fuzz(fuzz::Args),
    Bench(bench::Args),
    Linux(linux::cli::LinuxArgs),
    LinuxFetch(linux::cli::LinuxFetchArgs),
    QemuFetch(linux::cli::QemuFetchArgs),
}

fn main() -> ExitCode {
    // On a usage error clap prints `error: ...` with the usage and exits with status 2;
    // `--help` prints to stdout and exits 0.
    match Cli::parse().command {
        Command::Demo(a) => qemu::demo(&a),
        Command::Test(a) => test::run(&a),
        Command::QemuTest(a) => qemu::qemu_test(&a),
        Command::Decode(a) => cli::decode(&a),
        Command::Encode(a) => cli::encode(&a),
        Command::Fuzz(a) => fuzz::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Linux(a) => linux::cli::linux(&a),
        Command::LinuxFetch(a) => linux::cli::linux_fetch(&a),
        Command::QemuFetch(a) => linux::cli::qemu_fetch(&a),
    }
}

/// Parses `cargo xtask ARGS` (the program name is supplied), for the modules' tests.
#[cfg(test)]
fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.command)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap's own checks: unique names, valid defaults and value parsers, ...
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_is_named_as_before() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "demo",
                "test",
                "qemu-test",
                "decode",
                "encode",
                "fuzz",
                "bench",
                "linux",
                "linux-fetch",
                "qemu-fetch"
            ]
        );
    }

    #[test]
    fn usage_errors_are_errors_and_help_is_not() {
        let kind = |args: &[&str]| parse(args).err().map(|e| e.kind());
        assert_eq!(kind(&["frobnicate"]), Some(ErrorKind::InvalidSubcommand));
        assert_eq!(
            kind(&[]),
            Some(ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
        );
        assert_eq!(kind(&["test", "extra"]), Some(ErrorKind::UnknownArgument));
        assert_eq!(kind(&["--help"]), Some(ErrorKind::DisplayHelp));
        assert_eq!(kind(&["fuzz", "-h"]), Some(ErrorKind::DisplayHelp));
    }
}
