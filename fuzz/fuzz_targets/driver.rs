// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzz target: sequences of driver API calls (devices, events, VMs, vLPIs, residency) with
//! arbitrary IDs and injected stalls, delays and allocation failures, run on the host model.
//!
//! The properties are [`its_testkit::fuzz::run`]'s: no panic, the model records no error but
//! the injected ones, the driver's records match the model's tables after every call, host
//! LPIs land on the CPU they were mapped to, and nothing leaks at teardown.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| its_testkit::fuzz::run(data));
