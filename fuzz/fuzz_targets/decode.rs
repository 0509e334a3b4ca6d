// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzz target: one arbitrary 32-byte command block through every decoder.
//!
//! The properties are [`its_core::cmd::props::decode_bytes`]'s: no panic, strict decode
//! re-encodes to the same bytes, the text form parses back, lenient decode partitions bits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| its_core::cmd::props::decode_bytes(data));
