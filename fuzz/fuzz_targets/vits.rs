// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzz target: a guest's register writes and command queues to the vITS, over the
//! vpe-sched backend on the host model of QEMU's GICv4.
//!
//! The properties are [`its_testkit::fuzz_vits::run`]'s: no panic; no physical command
//! naming a DeviceID not assigned to the VM (or from its pool) or a vINTID outside its range;
//! the vITS's records match the physical ITS after every step; device MSIs reach the right
//! vPE; nothing leaks after the VM is torn down.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| its_testkit::fuzz_vits::run(data));
