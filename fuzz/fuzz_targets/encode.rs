// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzz target: an arbitrary `Command` through encode, decode and the text form.
//!
//! The properties are [`its_core::cmd::props::encode_arbitrary`]'s, applied by
//! [`its_core::cmd::props::encode_bytes`] to the command drawn from the input:
//! `decode(encode(c), c.min_version()) == c` and `parse_line(c.to_string()) == c`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| its_core::cmd::props::encode_bytes(data));
