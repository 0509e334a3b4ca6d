// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarded physical interrupts through GICv3 list registers (the HW bit).
//!
//! Skeleton: list-register value types, the forwarded-interrupt table, the populate and fold
//! algorithms for edge and level interrupts and the arch-timer flow arrive with the fwd-irq issue.
#![no_std]
