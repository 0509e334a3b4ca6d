// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host fakes: the platform ([`FakePlatform`], [`FakeClock`]) and a model of the ITS and
//! redistributors ([`GicModel`]) that every crate of the workspace tests against.
//!
//! Available with the `fakes` feature (which needs `std`), so other crates' tests can use them
//! through `[dev-dependencies] its-core = { features = ["fakes"] }`.
#![allow(unsafe_code)]

mod model;
mod platform;

pub use model::{
    CteView, Delay, DteView, GicModel, IteView, ItsHandle, ModelConfig, ModelError, PageSizes,
    RedistHandle, VteView,
};
pub use platform::{AllocFaults, Event, FakeClock, FakePlatform, MemFault, View};
