// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS command queue and ITS bring-up (Arm IHI 0069, "The ITS command interface").
//!
//! Skeleton: the queue (ring, batching, completion tickets, stall and timeout handling) and the
//! bring-up (`Its`: tables, collections, physical LPIs) arrive with the its-cmdq issue.
#![no_std]
