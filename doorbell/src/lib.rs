// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 doorbells: one doorbell LPI per vPE, doorbell-to-vPE lookup, vCPU wake-up.
//!
//! Skeleton: the doorbell block allocator, the O(1) doorbell INTID to vPE lookup and the
//! wake-up hand-off arrive with the GICv4 issue.
#![no_std]
