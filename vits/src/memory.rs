// SPDX-License-Identifier: MIT OR Apache-2.0
//! Guest memory as the vITS reads it: the command queue and the LPI configuration table.

/// A guest-physical read failed: the range is not memory the VM may use (or the hypervisor
/// could not read it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("guest-physical read failed")]
pub struct GuestMemoryError;

/// Reads of the VM's memory, implemented by the hypervisor.
///
/// The vITS reads only what the guest pointed it at: 32-byte commands at GITS_CBASER's queue
/// and single bytes of the LPI configuration table. It never writes guest memory. A read of
/// an address that is not the VM's RAM must fail rather than reach other memory: the guest
/// chooses the addresses.
pub trait GuestMemory {
    /// Fills `buf` from guest-physical address `gpa`.
    ///
    /// # Errors
    /// [`GuestMemoryError`] when any byte of the range is not readable guest RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError>;
}

impl<M: GuestMemory + ?Sized> GuestMemory for &M {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        (**self).read(gpa, buf)
    }
}
