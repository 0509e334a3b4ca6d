// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host tests that drive the algorithms through the fakes.
