// SPDX-License-Identifier: MIT OR Apache-2.0
//! Semantic checks of commands against the probed capabilities.

/// A command the ITS would reject or treat as UNPREDICTABLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandError {
    /// Placeholder until the capability checks land.
    #[error("invalid command")]
    Invalid,
}
