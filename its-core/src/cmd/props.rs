// SPDX-License-Identifier: MIT OR Apache-2.0
//! Properties of the command codec, checked on arbitrary input (fuzzing and corpus replay).
//!
//! The fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer) and the stable replay test
//! `its-core/tests/fuzz_corpus.rs` call these same functions, so an input the fuzzer found
//! keeps being checked by `cargo test` once it is in the committed corpus. Each function panics
//! on a violated property; that panic is what libFuzzer reports as a crash.
//!
//! - [`decode_bytes`]: any 32 bytes, decoded with each [`ItsVersion`], never panic; a strict
//!   decode that succeeds re-encodes to the same bytes and its text form parses back to the same
//!   command; a lenient decode splits the block exactly into field bits and reserved bits.
//! - [`encode_arbitrary`]: any [`Command`] decodes back to itself from its encoding, with its
//!   own [`Command::min_version`], and its text form parses back to it.
//!
//! ```
//! use its_core::cmd::props;
//!
//! props::decode_bytes(&[0x0a; 32]); // a MAPTI with reserved bits set
//! props::decode_bytes(&[0x03]); // INT device=0 event=0, zero-padded
//! props::encode_bytes(b"any bytes at all");
//! ```
//!
//! Needs the `arbitrary` feature (which brings in `std`).

use std::format;
use std::string::ToString;

use super::{CmdBlock, Command, DecodeError, ItsVersion, ReservedBits, layout_for, parse_line};
use crate::caps::ItsCaps;
use crate::regs::GitsTyper;

/// Every version, oldest first.
const VERSIONS: [ItsVersion; 3] = [ItsVersion::V3, ItsVersion::V4_0, ItsVersion::V4_1];

/// Capabilities as wide as the architecture allows for `version` (32-bit DeviceIDs and
/// EventIDs, 16-bit collections, physical-address RDbase), and a QEMU-like narrow set (16-bit
/// IDs, processor-number RDbase): validation against either must not panic.
fn caps_for(version: ItsVersion) -> [ItsCaps; 2] {
    let base = GitsTyper::new()
        .with_physical(true)
        .with_virtual_lpis(version != ItsVersion::V3)
        .with_vmapp(version == ItsVersion::V4_1)
        .with_vsgi(version == ItsVersion::V4_1)
        .with_itt_entry_size(7);
    [
        ItsCaps::from_typer(base.with_id_bits(31).with_dev_bits(31).with_pta(true)),
        ItsCaps::from_typer(base.with_id_bits(15).with_dev_bits(15).with_vmovp(true)),
    ]
}

/// Checks the decode properties on the command block in `data`: its first 32 bytes, padded
/// with zero bytes when shorter. Later bytes are ignored, so the fuzzer keeps only inputs that
/// reach new code within one block, and the corpus stays one small file per behaviour.
///
/// For each [`ItsVersion`] `v`:
/// - decoding never panics, and an unknown opcode is reported only when `v` has no command
///   with that opcode;
/// - a lenient decode returns a command whose encoding is exactly the block's field and opcode
///   bits, and reserved bits that are exactly the rest: the two partition the block;
/// - a strict decode fails exactly when reserved bits are set, reporting the same command and
///   bits; when it succeeds, the command re-encodes to the same 32 bytes, its text form (with
///   and without an `N:` index) parses back to it with `v`, and it decodes the same with its
///   own [`Command::min_version`], which is not later than `v`;
/// - [`Command::validate`] and the [`ReservedBits`] display never panic.
///
/// # Panics
/// When a property does not hold.
pub fn decode_bytes(data: &[u8]) {
    let mut bytes = [0u8; CmdBlock::SIZE];
    let n = data.len().min(CmdBlock::SIZE);
    bytes[..n].copy_from_slice(&data[..n]);
    decode_block(&bytes);
}

fn decode_block(bytes: &[u8; CmdBlock::SIZE]) {
    use zerocopy::FromBytes;

    let block = CmdBlock::read_from_bytes(bytes).expect("a CmdBlock is any 32 bytes");
    let raw = block.dwords();
    for (dw, le) in raw.iter().zip(bytes.chunks_exact(8)) {
        assert_eq!(
            *dw,
            u64::from_le_bytes(le.try_into().expect("8 bytes")),
            "CmdBlock is little-endian"
        );
    }
    for version in VERSIONS {
        let ctx = || format!("block {raw:#018x?} as {version:?}");
        let lenient = Command::decode_lenient(&raw, version);
        let strict = Command::decode(&raw, version);
        let (command, reserved) = match lenient {
            Err(DecodeError::UnknownOpcode { opcode }) => {
                assert_eq!(opcode, raw[0] as u8, "{}", ctx());
                assert!(layout_for(opcode, version).is_none(), "{}", ctx());
                assert_eq!(
                    strict,
                    Err(DecodeError::UnknownOpcode { opcode }),
                    "{}",
                    ctx()
                );
                continue;
            }
            Err(e) => panic!("{}: lenient decode failed with {e:?}", ctx()),
            Ok(ok) => ok,
        };
        let layout = layout_for(raw[0] as u8, version).expect("the opcode decoded");
        assert_eq!(command.layout(), layout, "{}", ctx());
        let defined = layout.defined_bits();
        let encoded = command.encode();
        for dw in 0..4 {
            assert_eq!(encoded[dw], raw[dw] & defined[dw], "{}: field bits", ctx());
            assert_eq!(
                reserved.0[dw],
                raw[dw] & !defined[dw],
                "{}: reserved",
                ctx()
            );
        }
        let _ = reserved.to_string();
        for caps in caps_for(version) {
            let _ = command.validate(&caps);
        }
        if !reserved.is_empty() {
            assert_eq!(
                strict,
                Err(DecodeError::ReservedBits {
                    opcode: command.opcode(),
                    bits: reserved
                }),
                "{}",
                ctx()
            );
            let _ = strict.map_err(|e| e.to_string());
            continue;
        }
        assert_eq!(strict, Ok(command), "{}", ctx());
        assert_eq!(encoded, raw, "{}: re-encode", ctx());
        assert_eq!(command.encode_block(), block, "{}: re-encode block", ctx());
        assert!(command.min_version() <= version, "{}", ctx());
        assert_eq!(
            Command::decode(&raw, command.min_version()),
            Ok(command),
            "{}: decode with min_version",
            ctx()
        );
        check_text(&command, version);
    }
}

/// The text form of `command` (as `cargo xtask decode` prints it, with and without the `N:`
/// index) parses back to `command` with `version`.
fn check_text(command: &Command, version: ItsVersion) {
    let text = command.to_string();
    assert_eq!(
        parse_line(&text, version),
        Ok(Some(*command)),
        "text `{text}` with {version:?}"
    );
    let indexed = format!("17: {text} # comment");
    assert_eq!(
        parse_line(&indexed, version),
        Ok(Some(*command)),
        "text `{indexed}` with {version:?}"
    );
}

/// Checks the encode properties on one arbitrary [`Command`] taken from `u`.
///
/// - The encoding has no reserved bit set and its opcode byte is the command's;
///   [`Command::encode_block`] holds the same doublewords.
/// - Decoding the encoding strictly with the command's own [`Command::min_version`] gives the
///   command back. (With a later version the GICv4.0 VMAPP and VMOVP decode to their GICv4.1
///   variants, so only the doublewords are compared there: every later version decodes the
///   block without error and re-encodes it unchanged.)
/// - The text form parses back to the command with its `min_version`.
/// - [`Command::validate`] never panics.
///
/// # Errors
/// The [`arbitrary::Error`] from drawing the command (not enough data).
///
/// # Panics
/// When a property does not hold.
pub fn encode_arbitrary(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<()> {
    let command: Command = u.arbitrary()?;
    let version = command.min_version();
    let raw = command.encode();
    assert_eq!(raw[0] as u8, command.opcode(), "{command:?}");
    assert_eq!(
        ReservedBits(command.layout().reserved_set(&raw)),
        ReservedBits::default(),
        "{command:?} encodes reserved bits"
    );
    assert_eq!(command.encode_block().dwords(), raw, "{command:?}");
    assert_eq!(
        Command::decode(&raw, version),
        Ok(command),
        "{command:?} encoded as {raw:#018x?}"
    );
    for later in VERSIONS.into_iter().filter(|&v| v > version) {
        match Command::decode(&raw, later) {
            Ok(d) => assert_eq!(d.encode(), raw, "{command:?} decoded as {later:?}: {d:?}"),
            Err(e) => panic!("{command:?} does not decode as {later:?}: {e:?}"),
        }
    }
    check_text(&command, version);
    for caps in caps_for(version) {
        let _ = command.validate(&caps);
    }
    Ok(())
}

/// Runs [`encode_arbitrary`] on the command drawn from `data` (missing bytes read as zeros,
/// extra bytes are ignored): the body of the `encode` fuzz target.
///
/// # Panics
/// When a property does not hold.
pub fn encode_bytes(data: &[u8]) {
    // Drawing a command from too little data gives zero-filled fields, never an error; if a
    // future `arbitrary` does return one, there is nothing to check.
    let _ = encode_arbitrary(&mut arbitrary::Unstructured::new(data));
}
