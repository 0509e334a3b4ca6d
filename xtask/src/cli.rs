// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask decode` and `cargo xtask encode`: disassemble and assemble ITS commands.
//!
//! The contract (scripts depend on it; `xtask/tests/cli.rs` pins it):
//!
//! `decode [--v41] [--bin] [FILE]` reads FILE (stdin when absent or `-`): hexadecimal
//! doublewords (`0x` optional) separated by any white space, `#` starting a comment to the end
//! of the line, four doublewords (DW0..DW3) per command; or with `--bin` raw little-endian
//! bytes, 32 per command. It prints one line per command, `N: MNEMONIC key=value ...` (N from
//! 0, values in `0x` hex), or `N: UNKNOWN opcode=0x..` for an opcode the version lacks. Layouts
//! are GICv3/GICv4.0 ones unless `--v41` asks for GICv4.1's. Exit status:
//! - 0: every command decoded, no reserved bit set;
//! - 1: some opcode was unknown or some command had reserved (RES0) bits set: every line is
//!   still printed (the fields of a command with reserved bits too), with a `warning:` on
//!   stderr per such command naming the bits (`warning: command 2 (MAPD): reserved bits set:
//!   dw1[7:5]`);
//! - 2: unusable input (a token that is not a 64-bit hex number, a doubleword count that is not
//!   a multiple of 4, a `--bin` length that is not a multiple of 32, an unreadable file, a bad
//!   argument), with an `error:` on stderr and nothing on stdout.
//!
//! Values the architecture forbids but the encoding can hold (an LPI INTID below 8192, ...)
//! are not decode failures: they get a `note:` on stderr from [`Command::validate`] against
//! the widest capabilities the architecture allows, and do not change the exit status.
//!
//! `encode [--v41] [FILE]` reads the text decode prints (the `N:` index optional, blank lines
//! and `#` comments skipped) and prints each command as four doublewords,
//! `0x%016x 0x%016x 0x%016x 0x%016x`. Any line that is not a command (unknown mnemonic, an
//! `UNKNOWN` line, a missing or unknown key, a value too wide for its field, a misaligned
//! address) is an `error: line L: ...` (L from 1) naming the field; then nothing is printed on
//! stdout and the exit status is 2. Otherwise it is 0.
//!
//! `encode | decode` gives back decode's text exactly (for text in decode's form: hex values,
//! indices from 0), and `decode | encode` gives back the doublewords (of input that decodes
//! with status 0).

use std::io::{Read, Write};
use std::process::ExitCode;

use its_core::caps::ItsCaps;
use its_core::cmd::{Command, DecodeError, ItsVersion, ParseError, layout_for, parse_line};
use its_core::regs::GitsTyper;

/// Disassemble ITS commands (hex doublewords or raw bytes)
///
/// Reads FILE, or stdin when FILE is absent or `-`.
///
/// Input: hexadecimal doublewords (0x optional) separated by white space, `#` comments
/// to the end of the line, 4 doublewords (DW0 DW1 DW2 DW3) per command. With --bin: raw
/// little-endian bytes, 32 per command.
///
/// Output: one line per command, `N: MNEMONIC key=value ...`, or `N: UNKNOWN opcode=0x..`.
///
/// Exit status: 0 all decoded; 1 an unknown opcode or reserved bits set (a warning on
/// stderr each, every line still printed); 2 unusable input.
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DecodeArgs {
    /// Decode with the GICv4.1 layouts (default: GICv3/GICv4.0)
    #[arg(long)]
    v41: bool,
    /// The input is raw bytes, 32 per command
    #[arg(long)]
    bin: bool,
    /// The input (default: stdin, as for `-`)
    #[arg(value_name = "FILE")]
    file: Option<String>,
}

/// Assemble ITS commands from the decode text format
///
/// Reads the text `cargo xtask decode` prints (`N:` index optional, blank lines and `#`
/// comments skipped) from FILE, or stdin when FILE is absent or `-`.
///
/// Output: one line per command, `0x%016x 0x%016x 0x%016x 0x%016x` (DW0..DW3).
///
/// Exit status: 0 all encoded; 2 any line that is not a command (each reported with its
/// line number and field; nothing printed on stdout).
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct EncodeArgs {
    /// Use the GICv4.1 layouts (VMAPP, VMOVP) and commands (VSGI, INVDB)
    #[arg(long)]
    v41: bool,
    /// The input (default: stdin, as for `-`)
    #[arg(value_name = "FILE")]
    file: Option<String>,
}

/// The ITS version whose layouts `--v41` selects.
fn version(v41: bool) -> ItsVersion {
    if v41 {
        ItsVersion::V4_1
    } else {
        ItsVersion::V4_0
    }
}

/// What a run prints, and its exit status.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    status: u8,
}

impl Outcome {
    fn error(message: impl std::fmt::Display) -> Self {
        Self {
            stdout: String::new(),
            stderr: format!("error: {message}\n"),
            status: 2,
        }
    }

    fn emit(self) -> ExitCode {
        // Ignore write errors: a closed pipe (`| head`) is not this tool's failure.
        let _ = std::io::stdout().lock().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().lock().write_all(self.stderr.as_bytes());
        ExitCode::from(self.status)
    }
}

/// Reads FILE, or stdin for `None` and `-`.
fn read_input(file: Option<&str>) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    match file {
        None | Some("-") => std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot read stdin: {e}"))?,
        Some(path) => {
            data = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
            data.len()
        }
    };
    Ok(data)
}

/// Runs `f` on the input `file` names (stdin for `None` and `-`).
fn with_input(file: Option<&str>, f: impl FnOnce(&[u8]) -> Outcome) -> ExitCode {
    match read_input(file) {
        Ok(data) => f(&data).emit(),
        Err(e) => Outcome::error(e).emit(),
    }
}

/// `cargo xtask decode`.
pub fn decode(args: &DecodeArgs) -> ExitCode {
    with_input(args.file.as_deref(), |data| {
        let blocks = if args.bin {
            blocks_from_bytes(data)
        } else {
            match std::str::from_utf8(data) {
                Ok(text) => blocks_from_hex(text),
                Err(_) => Err("the input is not UTF-8 text (--bin reads raw bytes)".into()),
            }
        };
        match blocks {
            Ok(blocks) => disassemble(&blocks, version(args.v41)),
            Err(e) => Outcome::error(e),
        }
    })
}

/// `cargo xtask encode`.
pub fn encode(args: &EncodeArgs) -> ExitCode {
    with_input(args.file.as_deref(), |data| {
        match std::str::from_utf8(data) {
            Ok(text) => assemble(text, version(args.v41)),
            Err(_) => Outcome::error("the input is not UTF-8 text"),
        }
    })
}

/// Parses one hexadecimal doubleword, `0x` optional, 1 to 16 digits.
fn parse_dword(token: &str) -> Option<u64> {
    let digits = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Hex text to commands: white-space separated doublewords, `#` comments, four per command.
fn blocks_from_hex(text: &str) -> Result<Vec<[u64; 4]>, String> {
    let mut dwords = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split_once('#').map_or(line, |(code, _)| code);
        for token in code.split_whitespace() {
            let dword = parse_dword(token).ok_or_else(|| {
                format!(
                    "line {}: `{token}` is not a hexadecimal doubleword (up to 16 hex digits, \
                     0x optional)",
                    n + 1
                )
            })?;
            dwords.push(dword);
        }
    }
    if !dwords.len().is_multiple_of(4) {
        return Err(format!(
            "{} doublewords is not a whole number of commands (4 per command)",
            dwords.len()
        ));
    }
    Ok(dwords
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

/// Raw little-endian bytes to commands, 32 bytes each.
fn blocks_from_bytes(data: &[u8]) -> Result<Vec<[u64; 4]>, String> {
    if !data.len().is_multiple_of(32) {
        return Err(format!(
            "{} bytes is not a whole number of commands (32 bytes per command)",
            data.len()
        ));
    }
    Ok(data
        .chunks_exact(32)
        .map(|block| {
            let mut raw = [0u64; 4];
            for (dw, bytes) in raw.iter_mut().zip(block.chunks_exact(8)) {
                let mut le = [0u8; 8];
                le.copy_from_slice(bytes);
                *dw = u64::from_le_bytes(le);
            }
            raw
        })
        .collect())
}

/// The widest capabilities the architecture allows for `version`: the notes report only
/// values no ITS could accept (32-bit DeviceIDs and EventIDs, 16-bit collections and vPE IDs,
/// RDbase as a physical address or a processor number).
fn architectural_caps(version: ItsVersion) -> ItsCaps {
    ItsCaps::from_typer(
        GitsTyper::new()
            .with_physical(true)
            .with_virtual_lpis(true)
            .with_vmapp(version == ItsVersion::V4_1)
            .with_vsgi(version == ItsVersion::V4_1)
            .with_id_bits(31)
            .with_dev_bits(31)
            .with_pta(true),
    )
}

/// Decodes every block with `version`.
fn disassemble(blocks: &[[u64; 4]], version: ItsVersion) -> Outcome {
    use std::fmt::Write as _;

    let caps = architectural_caps(version);
    let mut out = Outcome::default();
    for (i, raw) in blocks.iter().enumerate() {
        match Command::decode_lenient(raw, version) {
            Ok((command, reserved)) => {
                let _ = writeln!(out.stdout, "{i}: {command}");
                if !reserved.is_empty() {
                    let _ = writeln!(
                        out.stderr,
                        "warning: command {i} ({}): reserved bits set: {reserved}",
                        command.mnemonic()
                    );
                    out.status = 1;
                }
                if let Err(e) = command.validate(&caps) {
                    let _ = writeln!(out.stderr, "note: command {i}: {e}");
                }
            }
            Err(e) => {
                let opcode = raw[0] as u8;
                let _ = writeln!(out.stdout, "{i}: UNKNOWN opcode={opcode:#04x}");
                let hint = if let DecodeError::UnknownOpcode { .. } = e
                    && version != ItsVersion::V4_1
                    && layout_for(opcode, ItsVersion::V4_1).is_some()
                {
                    " (a GICv4.1 command: decode with --v41)"
                } else {
                    ""
                };
                let _ = writeln!(out.stderr, "warning: command {i}: {e}{hint}");
                out.status = 1;
            }
        }
    }
    out
}

/// Encodes every command line of `text` with `version`.
fn assemble(text: &str, version: ItsVersion) -> Outcome {
    use std::fmt::Write as _;

    let mut out = Outcome::default();
    for (n, line) in text.lines().enumerate() {
        let number = n + 1;
        let error = match parse_line(line, version) {
            Ok(None) => continue,
            Ok(Some(command)) => {
                let [a, b, c, d] = command.encode();
                let _ = writeln!(out.stdout, "{a:#018x} {b:#018x} {c:#018x} {d:#018x}");
                continue;
            }
            Err(ParseError::UnknownMnemonic(m)) if m.eq_ignore_ascii_case("UNKNOWN") => {
                "an UNKNOWN command (one decode could not decode) cannot be encoded; keep its \
                 raw doublewords instead"
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        let _ = writeln!(out.stderr, "error: line {number}: {error}");
        let _ = writeln!(out.stderr, "{number:>5} | {}", line.trim_end());
        out.status = 2;
    }
    if out.status != 0 {
        out.stdout.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwords() {
        assert_eq!(parse_dword("0x10"), Some(0x10));
        assert_eq!(parse_dword("0X10"), Some(0x10));
        assert_eq!(parse_dword("ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_dword("0x"), None);
        assert_eq!(parse_dword("0x1_0"), None);
        assert_eq!(parse_dword("+1"), None);
        assert_eq!(parse_dword("10000000000000000"), None);
    }

    #[test]
    fn hex_input_forms() {
        let text = "0x3 # dw0\n0x1\n0 0x0 # two\n\n# only a comment\n";
        assert_eq!(blocks_from_hex(text), Ok(vec![[3, 1, 0, 0]]));
        assert_eq!(blocks_from_hex(""), Ok(vec![]));
        let e = blocks_from_hex("1 2\n3 zz").unwrap_err();
        assert!(e.starts_with("line 2: `zz`"), "{e}");
        assert!(blocks_from_hex("1 2 3").is_err());
    }

    #[test]
    fn bytes_are_little_endian() {
        let mut data = [0u8; 32];
        data[0] = 0x03;
        data[4] = 0x08;
        data[8] = 0x01;
        assert_eq!(blocks_from_bytes(&data), Ok(vec![[0x8_0000_0003, 1, 0, 0]]));
        assert!(blocks_from_bytes(&data[..31]).is_err());
    }

    #[test]
    fn options() {
        let decode = |a: &[&str]| match crate::parse(&[&["decode"], a].concat()) {
            Ok(crate::Command::Decode(o)) => Ok(o),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            decode(&["--bin", "--v41", "f"]).ok(),
            Some(DecodeArgs {
                v41: true,
                bin: true,
                file: Some("f".into())
            })
        );
        assert_eq!(decode(&[]).ok(), Some(DecodeArgs::default()));
        assert_eq!(decode(&["-"]).ok().and_then(|o| o.file), Some("-".into()));
        assert!(crate::parse(&["encode", "--bin"]).is_err());
        assert!(decode(&["a", "b"]).is_err());
        assert!(decode(&["--x"]).is_err());
        assert_eq!(
            decode(&["--", "--v41"]).ok(),
            Some(DecodeArgs {
                file: Some("--v41".into()),
                ..DecodeArgs::default()
            })
        );
        let Ok(crate::Command::Encode(e)) = crate::parse(&["encode", "--v41", "t.txt"]) else {
            panic!("encode options");
        };
        assert_eq!(
            e,
            EncodeArgs {
                v41: true,
                file: Some("t.txt".into())
            }
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let text = "0: MAPD device=0x1 size=0x4 itt=0x40000000 valid=0x1\n\
                    1: MAPTI device=0x1 event=0x0 pintid=0x2000 icid=0x0\n\
                    2: SYNC rdbase=0x0\n";
        let enc = assemble(text, ItsVersion::V4_0);
        assert_eq!((enc.status, enc.stderr.as_str()), (0, ""));
        let blocks = blocks_from_hex(&enc.stdout).unwrap();
        let dec = disassemble(&blocks, ItsVersion::V4_0);
        assert_eq!(dec.stdout, text);
        assert_eq!(dec.status, 0);
    }
}
