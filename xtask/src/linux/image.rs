// SPDX-License-Identifier: MIT OR Apache-2.0
//! The arm64 Linux `Image` header: read it and check it before anything boots the kernel.
//!
//! The arm64 boot protocol puts a 64-byte header at the start of the uncompressed kernel, all
//! fields little-endian:
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | code0 (u32): a branch, or "MZ" plus an instruction on kernels with an EFI stub |
//! | 0x04 | code1 (u32) |
//! | 0x08 | text_offset (u64): where the image goes above a 2 MiB aligned base |
//! | 0x10 | image_size (u64): bytes the kernel occupies once loaded, bss included |
//! | 0x18 | flags (u64): bit 0 big-endian; bits 1-2 page size (0 unspecified, 1 4K, 2 16K, 3 64K); bit 3 placement anywhere in memory (else near the start of RAM) |
//! | 0x20 | res2, res3, res4 (u64 each) |
//! | 0x38 | magic (u32) "ARM\x64" |
//! | 0x3c | res5 (u32): offset of the PE header (EFI stub) |
//!
//! An `image_size` of 0 means a kernel older than 3.17, which leaves the size unknown: a
//! loader cannot place such a kernel safely, so it is refused.

use std::fmt;

/// The header's length.
pub const HEADER_LEN: usize = 64;
/// "ARM\x64" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"ARM\x64");
/// The base alignment the boot protocol asks for.
pub const BASE_ALIGN: u64 = 2 << 20;

/// The kernel's page size as the header states it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PageSize {
    /// Not stated.
    Unspecified,
    /// 4 KiB.
    K4,
    /// 16 KiB.
    K16,
    /// 64 KiB.
    K64,
}

/// A checked Image header.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ImageHeader {
    /// Offset of the image above a [`BASE_ALIGN`] aligned base.
    pub text_offset: u64,
    /// Bytes the loaded kernel occupies (bss included).
    pub image_size: u64,
    /// The raw flags.
    pub flags: u64,
    /// The page size from the flags.
    pub page_size: PageSize,
    /// Flags bit 3: the image may be placed anywhere in memory.
    pub anywhere: bool,
    /// The image starts with "MZ" (a kernel with an EFI stub).
    pub efi_stub: bool,
    /// The length of the Image file.
    pub file_len: u64,
}

/// Why an Image header is refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ImageError {
    /// Shorter than the header.
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// No "ARM\x64" at 0x38 (a compressed vmlinuz, or not an arm64 kernel).
    BadMagic {
        /// What is there.
        found: u32,
    },
    /// Flags bit 0: a big-endian kernel.
    BigEndian,
    /// `image_size` is 0 (a kernel older than 3.17).
    NoImageSize,
    /// `image_size` is smaller than the file itself.
    SizeBelowFile {
        /// The header's image_size.
        image_size: u64,
        /// The file's length.
        file_len: u64,
    },
    /// `text_offset` is not below the 2 MiB base alignment, or not 4 KiB aligned.
    BadTextOffset {
        /// The header's text_offset.
        text_offset: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => {
                write!(f, "{len} bytes: shorter than the {HEADER_LEN}-byte header")
            }
            Self::BadMagic { found } => write!(
                f,
                "no arm64 Image magic at 0x38 (found {found:#010x}): compressed, or not an arm64 \
                 kernel"
            ),
            Self::BigEndian => write!(f, "a big-endian kernel (flags bit 0)"),
            Self::NoImageSize => write!(f, "image_size is 0 (a kernel older than 3.17)"),
            Self::SizeBelowFile {
                image_size,
                file_len,
            } => write!(
                f,
                "image_size {image_size:#x} is smaller than the file ({file_len:#x} bytes)"
            ),
            Self::BadTextOffset { text_offset } => write!(
                f,
                "text_offset {text_offset:#x} is not a 4 KiB multiple below 2 MiB"
            ),
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Reads and checks the header of the Image `bytes` (the whole file, or at least its header
/// when `file_len` is given separately through [`parse_with_len`]).
pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
    parse_with_len(bytes, bytes.len() as u64)
}

/// [`parse`] for a file of `file_len` bytes of which `head` is the start.
pub fn parse_with_len(head: &[u8], file_len: u64) -> Result<ImageHeader, ImageError> {
    if head.len() < HEADER_LEN {
        return Err(ImageError::TooShort { len: head.len() });
    }
    let magic = u32::from_le_bytes([head[0x38], head[0x39], head[0x3a], head[0x3b]]);
    if magic != MAGIC {
        return Err(ImageError::BadMagic { found: magic });
    }
    let text_offset = le64(head, 0x08);
    let image_size = le64(head, 0x10);
    let flags = le64(head, 0x18);
    if flags & 1 != 0 {
        return Err(ImageError::BigEndian);
    }
    if image_size == 0 {
        return Err(ImageError::NoImageSize);
    }
    if image_size < file_len {
        return Err(ImageError::SizeBelowFile {
            image_size,
            file_len,
        });
    }
    if text_offset >= BASE_ALIGN || !text_offset.is_multiple_of(4096) {
        return Err(ImageError::BadTextOffset { text_offset });
    }
    let page_size = match (flags >> 1) & 3 {
        0 => PageSize::Unspecified,
        1 => PageSize::K4,
        2 => PageSize::K16,
        _ => PageSize::K64,
    };
    Ok(ImageHeader {
        text_offset,
        image_size,
        flags,
        page_size,
        anywhere: flags & 8 != 0,
        efi_stub: head[..2] == *b"MZ",
        file_len,
    })
}

impl fmt::Display for ImageHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arm64 Image: text_offset {:#x}, image_size {:#x} ({} KiB, file {} KiB), flags {:#x} \
             (little-endian, page size {:?}, {}){}",
            self.text_offset,
            self.image_size,
            self.image_size / 1024,
            self.file_len / 1024,
            self.flags,
            self.page_size,
            if self.anywhere {
                "placed anywhere"
            } else {
                "placed near the start of RAM"
            },
            if self.efi_stub { ", EFI stub" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as the Debian 6.1 cloud kernel has it: "MZ", text_offset 0, flags 0xa.
    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..4].copy_from_slice(&[b'M', b'Z', 0x40, 0xfa]);
        h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        h
    }

    #[test]
    fn a_debian_style_header_reads_back() {
        let h = parse_with_len(&header(0, 0x1f0_0000, 0xa), 0x1e0_0000).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x1f0_0000);
        assert_eq!(h.flags, 0xa);
        assert_eq!(h.page_size, PageSize::K4);
        assert!(h.anywhere);
        assert!(h.efi_stub);
        let text = h.to_string();
        assert!(text.contains("flags 0xa"), "{text}");
        assert!(text.contains("page size K4"), "{text}");
    }

    #[test]
    fn page_sizes_and_placement_come_from_the_flags() {
        let p = |flags| parse(&header(0x8_0000, 0x100, flags)).unwrap();
        assert_eq!(p(0).page_size, PageSize::Unspecified);
        assert!(!p(0).anywhere);
        assert_eq!(p(4).page_size, PageSize::K16);
        assert_eq!(p(6).page_size, PageSize::K64);
        assert_eq!(p(6).text_offset, 0x8_0000);
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        assert_eq!(parse(&[0; 10]), Err(ImageError::TooShort { len: 10 }));
        let mut gz = header(0, 0x100, 0xa);
        gz[0x38..0x3c].copy_from_slice(&[0x1f, 0x8b, 8, 0]);
        assert_eq!(parse(&gz), Err(ImageError::BadMagic { found: 0x0008_8b1f }));
        assert_eq!(parse(&header(0, 0x100, 0xb)), Err(ImageError::BigEndian));
        assert_eq!(parse(&header(0, 0, 0xa)), Err(ImageError::NoImageSize));
        assert_eq!(
            parse_with_len(&header(0, 0x100, 0xa), 0x200),
            Err(ImageError::SizeBelowFile {
                image_size: 0x100,
                file_len: 0x200
            })
        );
        assert_eq!(
            parse(&header(BASE_ALIGN, 0x100, 0xa)),
            Err(ImageError::BadTextOffset {
                text_offset: BASE_ALIGN
            })
        );
        assert_eq!(
            parse(&header(0x10, 0x100, 0xa)),
            Err(ImageError::BadTextOffset { text_offset: 0x10 })
        );
    }
}
