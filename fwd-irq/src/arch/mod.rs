// SPDX-License-Identifier: MIT OR Apache-2.0
//! Architecture implementations of the [`crate::hw`] traits.
//!
//! Only aarch64 exists: the system registers are reached with `mrs`/`msr`. On other targets
//! this module is empty and the host fakes (feature `fakes`) stand in; there is no
//! `unimplemented!()` fallback.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
