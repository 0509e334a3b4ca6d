// SPDX-License-Identifier: MIT OR Apache-2.0
//! Golden vectors, written by hand from the field positions of Arm IHI 0069.
