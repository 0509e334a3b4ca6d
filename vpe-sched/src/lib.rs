// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 VMs and vPEs: vPE tables, vLPI mapping and vPE residency (Arm IHI 0069, "GICv4").
//!
//! Skeleton: VMAPP/VMAPTI/VMOVI/VMOVP/VINVALL, vLPI map/unmap/update and the
//! GICR_VPROPBASER/GICR_VPENDBASER residency state machine arrive with the GICv4 issue.
#![no_std]
