// SPDX-License-Identifier: MIT OR Apache-2.0
//! The contract of `cargo xtask decode` and `cargo xtask encode`, tested on the built binary:
//! stdout, stderr and exit status (0 decoded, 1 unknown opcode or reserved bits, 2 unusable
//! input), `--bin`, `--v41`, FILE arguments, comments, and both round trips. Also the command
//! line of every command: usage errors exit 2, `--help` and `-h` exit 0 and name each of the
//! command's options.
//!
//! Expected doublewords are written from the field positions of Arm IHI 0069 (DeviceID
//! DW0\[63:32\], EventID DW1\[31:0\], pINTID DW1\[63:32\], Size DW1\[4:0\], ITT_addr DW2\[51:8\],
//! V DW2[63], ...), not from the encoder's output.

use std::io::Write;
use std::process::{Command, Stdio};

use its_core::cmd::{self, ItsVersion};

/// What one run printed, and its exit status.
#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    status: i32,
}

/// Runs `xtask ARGS` with `stdin` as its standard input.
fn xtask(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask runs");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The tool may exit before reading everything (e.g. on a bad argument).
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("xtask finishes");
    writer.join().expect("stdin writer");
    Run {
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        status: out.status.code().expect("exit status"),
    }
}

fn decode(args: &[&str], input: &str) -> Run {
    xtask(&[&["decode"], args].concat(), input.as_bytes())
}

fn encode(args: &[&str], input: &str) -> Run {
    xtask(&[&["encode"], args].concat(), input.as_bytes())
}

/// INT device=8 event=1, MAPD device=1 Size=4 ITT 0x4000_0000 V=1, SYNC rdbase=processor 2.
const THREE_HEX: &str = "\
# INT, MAPD and SYNC, hand-encoded
0x0000000800000003 0x0000000000000001 0x0000000000000000 0x0000000000000000
0x0000000100000008 4 0x8000000040000000 0   # MAPD, 0x optional
5 0 0x20000 0
";
const THREE_TEXT: &str = "\
0: INT device=0x8 event=0x1
1: MAPD device=0x1 size=0x4 itt=0x40000000 valid=0x1
2: SYNC rdbase=0x2
";

#[test]
fn decode_prints_one_line_per_command_and_exits_0() {
    let r = decode(&[], THREE_HEX);
    assert_eq!(r.stdout, THREE_TEXT);
    assert_eq!(r.stderr, "");
    assert_eq!(r.status, 0);
}

#[test]
fn decode_tokens_may_be_split_across_lines_freely() {
    let r = decode(&[], "0x0000000800000003\n1\n\n0 # a comment 0x55\n\t0\n");
    assert_eq!(r.stdout, "0: INT device=0x8 event=0x1\n");
    assert_eq!(r.status, 0);
}

#[test]
fn decode_empty_input_prints_nothing_and_exits_0() {
    let r = decode(&[], "# nothing here\n");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.status),
        ("", "", 0)
    );
}

#[test]
fn decode_unknown_opcode_prints_unknown_and_exits_1() {
    let input = format!("{THREE_HEX}0x7 0 0 0\n");
    let r = decode(&[], &input);
    assert_eq!(r.stdout, format!("{THREE_TEXT}3: UNKNOWN opcode=0x07\n"));
    assert_eq!(r.stderr, "warning: command 3: unknown opcode 0x07\n");
    assert_eq!(r.status, 1);
}

#[test]
fn decode_reserved_bits_print_fields_warn_and_exit_1() {
    // MAPD with DW1[7:5] set (RES0: Size is DW1[4:0]).
    let r = decode(&[], "0x0000000100000008 0xe4 0x8000000040000000 0\n");
    assert_eq!(
        r.stdout,
        "0: MAPD device=0x1 size=0x4 itt=0x40000000 valid=0x1\n"
    );
    assert_eq!(
        r.stderr,
        "warning: command 0 (MAPD): reserved bits set: dw1[7:5]\n"
    );
    assert_eq!(r.status, 1);
}

#[test]
fn decode_reports_every_bad_command_and_still_prints_all_lines() {
    let input = "7 0 0 0\n0x0000000800000003 1 0 0x1\n0x0000000800000003 1 0 0\n";
    let r = decode(&[], input);
    assert_eq!(
        r.stdout,
        "0: UNKNOWN opcode=0x07\n1: INT device=0x8 event=0x1\n2: INT device=0x8 event=0x1\n"
    );
    assert_eq!(
        r.stderr,
        "warning: command 0: unknown opcode 0x07\n\
         warning: command 1 (INT): reserved bits set: dw3[0]\n"
    );
    assert_eq!(r.status, 1);
}

#[test]
fn decode_semantic_problems_are_notes_not_failures() {
    // MAPTI pINTID 0x20 is not an LPI: it encodes, so it decodes (exit 0), with a note.
    let r = decode(&[], "0x000000010000000a 0x0000002000000000 0 0\n");
    assert_eq!(
        r.stdout,
        "0: MAPTI device=0x1 event=0x0 pintid=0x20 icid=0x0\n"
    );
    assert!(
        r.stderr.starts_with("note: command 0: MAPTI"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("LPI INTID 0x20"), "{}", r.stderr);
    assert_eq!(r.status, 0);
}

#[test]
fn decode_bad_token_exits_2() {
    let r = decode(&[], "0x3 0 0 0\n0x5 0xzz 0 0\n");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("error: line 2: `0xzz`"),
        "{}",
        r.stderr
    );
    assert_eq!(r.status, 2);
    // Wider than 64 bits is a bad token too.
    let r = decode(&[], "0x10000000000000000 0 0 0\n");
    assert_eq!(r.status, 2);
    assert!(r.stderr.starts_with("error: line 1: "), "{}", r.stderr);
}

#[test]
fn decode_count_not_a_multiple_of_4_exits_2() {
    let r = decode(&[], "0x3 0 0 0\n0x5 0\n");
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "error: 6 doublewords is not a whole number of commands (4 per command)\n"
    );
    assert_eq!(r.status, 2);
}

/// The little-endian bytes of `dwords`.
fn le_bytes(dwords: &[u64]) -> Vec<u8> {
    dwords.iter().flat_map(|d| d.to_le_bytes()).collect()
}

#[test]
fn decode_bin_reads_little_endian_blocks() {
    let bytes = le_bytes(&[
        0x0000_0008_0000_0003,
        1,
        0,
        0,
        0x0000_0001_0000_0008,
        4,
        0x8000_0000_4000_0000,
        0,
    ]);
    let r = xtask(&["decode", "--bin"], &bytes);
    assert_eq!(
        r.stdout,
        "0: INT device=0x8 event=0x1\n1: MAPD device=0x1 size=0x4 itt=0x40000000 valid=0x1\n"
    );
    assert_eq!((r.stderr.as_str(), r.status), ("", 0));
}

#[test]
fn decode_bin_length_not_a_multiple_of_32_exits_2() {
    let r = xtask(&["decode", "--bin"], &[0u8; 33]);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "error: 33 bytes is not a whole number of commands (32 bytes per command)\n"
    );
    assert_eq!(r.status, 2);
}

/// VSGI vPE 1, vINTID 3, priority 0xa0, G=1, E=1: opcode 0x23, E DW0[8], G DW0[10], priority
/// \[7:4\] in DW0\[23:20\], vINTID DW0\[35:32\], vPEID DW1\[47:32\].
const VSGI_HEX: &str = "0x0000000300a00523 0x0000000100000000 0 0\n";
const VSGI_TEXT: &str = "0: VSGI vpe=0x1 sgi=0x3 priority=0xa0 group=0x1 clear=0x0 enable=0x1\n";

#[test]
fn vsgi_decodes_only_with_v41() {
    let r = decode(&["--v41"], VSGI_HEX);
    assert_eq!(r.stdout, VSGI_TEXT);
    assert_eq!((r.stderr.as_str(), r.status), ("", 0));

    let r = decode(&[], VSGI_HEX);
    assert_eq!(r.stdout, "0: UNKNOWN opcode=0x23\n");
    assert!(
        r.stderr
            .starts_with("warning: command 0: unknown opcode 0x23"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--v41"), "{}", r.stderr);
    assert_eq!(r.status, 1);
}

#[test]
fn v41_changes_the_vmapp_layout() {
    // GICv4.1 VMAPP: Alloc DW0[8], PTZ DW0[9], VCONF_addr DW0[51:16], Default_Doorbell
    // DW1[31:0]; in the GICv4.0 layout those bits are RES0.
    let hex = "0x0000000050000329 0x00000001000003ff 0x8000000000010000 0x000000006000000f\n";
    let r = decode(&["--v41"], hex);
    assert_eq!(
        r.stdout,
        "0: VMAPP vpe=0x1 rdbase=0x1 valid=0x1 vpt=0x60000000 vpt_size=0xf alloc=0x1 ptz=0x1 \
         vconf=0x50000000 default_db=0x3ff\n"
    );
    assert_eq!((r.stderr.as_str(), r.status), ("", 0));
    let r = decode(&[], hex);
    assert_eq!(
        r.stdout,
        "0: VMAPP vpe=0x1 rdbase=0x1 valid=0x1 vpt=0x60000000 vpt_size=0xf\n"
    );
    assert_eq!(
        r.stderr,
        "warning: command 0 (VMAPP): reserved bits set: dw0[9:8], dw0[28], dw0[30], dw1[9:0]\n"
    );
    assert_eq!(r.status, 1);
}

/// A file in the target directory's temp area, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("xtask-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_arguments_replace_stdin() {
    let hex = TempFile::new("three.hex", THREE_HEX.as_bytes());
    let r = xtask(&["decode", hex.path()], b"garbage that must not be read");
    assert_eq!((r.stdout.as_str(), r.status), (THREE_TEXT, 0));

    let bin = TempFile::new("int.bin", &le_bytes(&[0x0000_0008_0000_0003, 1, 0, 0]));
    let r = xtask(&["decode", "--bin", bin.path()], b"");
    assert_eq!(
        (r.stdout.as_str(), r.status),
        ("0: INT device=0x8 event=0x1\n", 0)
    );

    let text = TempFile::new("three.txt", THREE_TEXT.as_bytes());
    let r = xtask(&["encode", text.path()], b"");
    assert_eq!(r.status, 0);
    assert_eq!(decode(&[], &r.stdout).stdout, THREE_TEXT);

    // `-` is stdin.
    let r = decode(&["-"], THREE_HEX);
    assert_eq!((r.stdout.as_str(), r.status), (THREE_TEXT, 0));
}

#[test]
fn unreadable_file_exits_2() {
    let r = decode(&["/nonexistent/its-commands.hex"], "");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr
            .starts_with("error: cannot read `/nonexistent/its-commands.hex`"),
        "{}",
        r.stderr
    );
    assert_eq!(r.status, 2);
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["decode", "--frobnicate"][..],
        &["decode", "a.hex", "b.hex"],
        &["encode", "--bin"],
        &["frobnicate"],
        &["test", "extra"],
        &["qemu-test", "--bogus"],
        &["qemu-test", "--filter"],
        &["demo", "--filter", "x"],
        &["demo", "--keep-logs"],
        &["fuzz", "--target", "nope"],
        &["fuzz", "--time", "0"],
        &["fuzz", "--time"],
        &["bench", "nope"],
        &["linux", "--smp", "0"],
        &["linux", "--bogus"],
        // --publish rewrites docs/benchmarks.md: all sections or none named.
        &["bench", "--publish", "cmd-encode"],
    ] {
        let r = xtask(args, b"");
        assert_eq!(r.status, 2, "{args:?}");
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

#[test]
fn no_command_prints_the_command_list_on_stderr_and_exits_2() {
    let r = xtask(&[], b"");
    assert_eq!(r.status, 2);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("Usage: cargo xtask <COMMAND>"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("qemu-test"), "{}", r.stderr);
}

#[test]
fn help_is_printed_and_exits_0() {
    for (args, want) in [
        (
            &["decode", "--help"][..],
            "Usage: cargo xtask decode [OPTIONS] [FILE]",
        ),
        (&["decode", "-h"], "Usage: cargo xtask decode"),
        (
            &["encode", "--help"],
            "Usage: cargo xtask encode [OPTIONS] [FILE]",
        ),
        (
            &["help", "encode"],
            "Usage: cargo xtask encode [OPTIONS] [FILE]",
        ),
        (&["--help"], "Usage: cargo xtask <COMMAND>"),
        (&["-h"], "Usage: cargo xtask <COMMAND>"),
        (&["help"], "Usage: cargo xtask <COMMAND>"),
    ] {
        let r = xtask(args, b"");
        assert_eq!(r.status, 0, "{args:?}");
        assert!(r.stdout.contains(want), "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr, "", "{args:?}");
    }
}

/// Every command with its options (flags, and options with their value's name) and its
/// positional arguments, as its `--help` shows them.
const COMMANDS: [(&str, &[&str]); 8] = [
    ("demo", &["--qemu <PATH>", "--linux"]),
    ("test", &[]),
    (
        "qemu-test",
        &["--filter <S>", "--qemu <PATH>", "--keep-logs", "--jobs <N>"],
    ),
    ("decode", &["--v41", "--bin", "[FILE]"]),
    ("encode", &["--v41", "[FILE]"]),
    ("fuzz", &["--target <T>", "--time <SECS>", "--no-cmin"]),
    ("bench", &["--list", "--publish", "[SECTION]..."]),
    (
        "linux",
        &[
            "--kernel <IMAGE>",
            "--initrd <FILE>",
            "--append <ARGS>",
            "--smp <N>",
            "--disk <FILE>",
            "--timeout <SECS>",
            "--qemu <PATH>",
        ],
    ),
];

#[test]
fn the_command_list_names_every_command() {
    let list = xtask(&["--help"], b"").stdout;
    for (cmd, _) in COMMANDS {
        assert!(
            list.lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "`cargo xtask --help` lacks `{cmd}`:\n{list}"
        );
    }
}

#[test]
fn each_commands_help_names_each_of_its_options_and_no_other() {
    for (cmd, options) in COMMANDS {
        for flag in ["--help", "-h"] {
            let r = xtask(&[cmd, flag], b"");
            assert_eq!((r.status, r.stderr.as_str()), (0, ""), "{cmd} {flag}");
            let help = r.stdout;
            assert!(
                help.contains(&format!("Usage: cargo xtask {cmd}")),
                "{cmd} {flag}:\n{help}"
            );
            for option in options {
                assert!(
                    help.contains(option),
                    "{cmd} {flag} lacks `{option}`:\n{help}"
                );
            }
            // The options list (lines that start with a dash) holds these options and
            // --help, no other.
            let mut listed: Vec<&str> = help
                .lines()
                .filter(|l| l.trim_start().starts_with('-'))
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
                .collect();
            listed.sort_unstable();
            let mut want: Vec<&str> = options
                .iter()
                .filter_map(|o| o.split_whitespace().next())
                .filter(|o| o.starts_with("--"))
                .chain(["--help"])
                .collect();
            want.sort_unstable();
            assert_eq!(listed, want, "{cmd} {flag}:\n{help}");
        }
    }
}

#[test]
fn bench_list_names_every_section_and_runs_nothing() {
    let r = xtask(&["bench", "--list"], b"");
    assert_eq!((r.status, r.stderr.as_str()), (0, ""));
    let names: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "cmd-encode",
            "cmdq-batch",
            "vlpi-map",
            "table-memory",
            "qemu-latency",
            "qemu-vpe",
            "qemu-exits",
            "qemu-linux"
        ]
    );
}

#[test]
fn encode_prints_four_padded_hex_dwords_per_command() {
    let input = "\
# set up device 1
0: INT device=0x8 event=0x1

MAPD device=1 size=4 itt=0x40000000 valid=1   # index optional, decimal allowed
7:SYNC rdbase=0x2
";
    let r = encode(&[], input);
    assert_eq!(
        r.stdout,
        "0x0000000800000003 0x0000000000000001 0x0000000000000000 0x0000000000000000\n\
         0x0000000100000008 0x0000000000000004 0x8000000040000000 0x0000000000000000\n\
         0x0000000000000005 0x0000000000000000 0x0000000000020000 0x0000000000000000\n"
    );
    assert_eq!((r.stderr.as_str(), r.status), ("", 0));
}

/// Encodes `line` as the second line of the input and expects exit 2 with `message` about
/// line 2 on stderr and nothing on stdout.
fn encode_rejects(args: &[&str], line: &str, message: &str) {
    let input = format!("INT device=1 event=2\n{line}\n");
    let r = encode(args, &input);
    assert_eq!(r.stdout, "", "{line}");
    assert!(
        r.stderr.starts_with(&format!("error: line 2: {message}\n")),
        "{line}: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(line.trim()),
        "echoes the line: {}",
        r.stderr
    );
    assert_eq!(r.status, 2, "{line}");
}

#[test]
fn encode_unknown_mnemonic_exits_2() {
    encode_rejects(&[], "1: FROB device=0x1", "unknown mnemonic `FROB`");
}

#[test]
fn encode_unknown_line_exits_2() {
    encode_rejects(
        &[],
        "1: UNKNOWN opcode=0x07",
        "an UNKNOWN command (one decode could not decode) cannot be encoded; keep its raw \
         doublewords instead",
    );
}

#[test]
fn encode_missing_key_exits_2() {
    encode_rejects(
        &[],
        "MAPD device=0x1 size=0x4 itt=0x40000000",
        "missing field `valid`",
    );
}

#[test]
fn encode_unknown_key_exits_2() {
    encode_rejects(
        &[],
        "INT device=0x1 event=0x2 icid=0x3",
        "unknown field `icid` for INT",
    );
}

#[test]
fn encode_value_too_wide_exits_2() {
    encode_rejects(
        &[],
        "MAPC icid=0x10000 rdbase=0x0 valid=0x1",
        "value 0x10000 does not fit field `icid` (16 bits)",
    );
}

#[test]
fn encode_misaligned_itt_exits_2() {
    encode_rejects(
        &[],
        "MAPD device=0x1 size=0x4 itt=0x40000080 valid=0x1",
        "value 0x40000080 of field `itt` must be a multiple of 0x100",
    );
}

#[test]
fn encode_v41_only_commands_need_v41() {
    encode_rejects(
        &[],
        "VSGI vpe=0x1 sgi=0x3 priority=0xa0 group=0x1 clear=0x0 enable=0x1",
        "VSGI is a V4_1 command (decode/encode with --v41)",
    );
    let r = encode(&["--v41"], VSGI_TEXT);
    assert_eq!(
        r.stdout,
        "0x0000000300a00523 0x0000000100000000 0x0000000000000000 0x0000000000000000\n"
    );
    assert_eq!(r.status, 0);
}

#[test]
fn encode_reports_every_bad_line() {
    let r = encode(&[], "FOO\nINT device=1 event=2\nINT device=1\n");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("error: line 1: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("error: line 3: missing field `event`"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("line 2"), "{}", r.stderr);
    assert_eq!(r.status, 2);
}

/// One command of every layout of `version`, in decode's text form, with field values that
/// fill each field with a bit pattern (so a misplaced bit would show).
fn every_command_text(version: ItsVersion) -> String {
    let mut text = String::new();
    for (i, layout) in cmd::layouts(version).enumerate() {
        let values: Vec<u64> = layout
            .fields
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let mask = if f.width >= 64 {
                    u64::MAX
                } else {
                    (1 << f.width) - 1
                };
                ((0x9e37_79b9_7f4a_7c15u64.rotate_left(7 * (i + k) as u32)) & mask) << f.shift
            })
            .collect();
        let command = its_core::cmd::Command::from_values(layout, &values).expect("fits");
        text += &format!("{i}: {command}\n");
    }
    text
}

#[test]
fn encode_then_decode_reproduces_the_text() {
    for (flags, version) in [(&[][..], ItsVersion::V4_0), (&["--v41"], ItsVersion::V4_1)] {
        let text = every_command_text(version);
        let enc = encode(flags, &text);
        assert_eq!((enc.stderr.as_str(), enc.status), ("", 0), "{version:?}");
        let dec = decode(flags, &enc.stdout);
        assert_eq!(dec.stdout, text, "{version:?}");
        assert_eq!(dec.status, 0, "{version:?}: {}", dec.stderr);
    }
}

#[test]
fn decode_then_encode_reproduces_the_dwords() {
    for (flags, version) in [(&[][..], ItsVersion::V4_0), (&["--v41"], ItsVersion::V4_1)] {
        let dwords = encode(flags, &every_command_text(version)).stdout;
        let dec = decode(flags, &dwords);
        assert_eq!(dec.status, 0, "{version:?}");
        let enc = encode(flags, &dec.stdout);
        assert_eq!(enc.stdout, dwords, "{version:?}");
        assert_eq!(enc.status, 0, "{version:?}");
    }
    // Hand-written hex in another spelling comes back in the canonical one.
    let enc = encode(&[], &decode(&[], THREE_HEX).stdout);
    assert_eq!(
        enc.stdout,
        "0x0000000800000003 0x0000000000000001 0x0000000000000000 0x0000000000000000\n\
         0x0000000100000008 0x0000000000000004 0x8000000040000000 0x0000000000000000\n\
         0x0000000000000005 0x0000000000000000 0x0000000000020000 0x0000000000000000\n"
    );
}
