// SPDX-License-Identifier: MIT OR Apache-2.0
//! The raw disk image behind the guest's NVMe device: every 4 KiB block starts with a tag
//! naming the block, so a guest that reads a block back can tell it got the right one.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

/// The block size the tags follow.
pub const BLOCK: u64 = 4096;
/// The default image size: 16 MiB (4096 blocks, twice the 2048 reads).
pub const DEFAULT_SIZE: u64 = 16 << 20;

/// The tag at the start of block `n`: `vgt-disk block NNNNNNNN` (23 bytes).
pub fn block_tag(n: u64) -> String {
    format!("vgt-disk block {n:08}")
}

/// The contents of block `n`: its tag, a newline, zeros.
pub fn block(n: u64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK as usize];
    let tag = block_tag(n);
    b[..tag.len()].copy_from_slice(tag.as_bytes());
    b[tag.len()] = b'\n';
    b
}

/// Writes the disk image of `size` bytes (a whole number of blocks) to `path`, unless a file
/// with exactly those contents is there already. Returns whether it wrote.
pub fn disk_image(path: &Path, size: u64) -> Result<bool, String> {
    if size == 0 || !size.is_multiple_of(BLOCK) {
        return Err(format!(
            "disk image size {size}: not a positive multiple of {BLOCK}"
        ));
    }
    let blocks = size / BLOCK;
    if let Ok(existing) = fs::read(path)
        && existing.len() as u64 == size
        && existing
            .chunks(BLOCK as usize)
            .zip(0..)
            .all(|(b, n)| b == block(n))
    {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(&tmp)?);
        for n in 0..blocks {
            w.write_all(&block(n))?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_carries_its_number_and_a_second_call_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("xtask-disk-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("disk.img");
        assert_eq!(disk_image(&p, 3 * BLOCK), Ok(true));
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 3 * BLOCK as usize);
        assert_eq!(
            &bytes[2 * 4096..2 * 4096 + 24],
            b"vgt-disk block 00000002\n"
        );
        assert!(bytes[2 * 4096 + 24..].iter().all(|&b| b == 0));
        assert_eq!(disk_image(&p, 3 * BLOCK), Ok(false));
        // A damaged image is rewritten.
        let mut bad = bytes.clone();
        bad[4096] = b'X';
        fs::write(&p, &bad).unwrap();
        assert_eq!(disk_image(&p, 3 * BLOCK), Ok(true));
        assert_eq!(fs::read(&p).unwrap(), bytes);
        assert!(disk_image(&p, 100).is_err());
        assert!(disk_image(&p, 0).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tag_is_what_init_reads_back() {
        // /init prints the first 23 bytes of the last block read.
        assert_eq!(block_tag(2047).len(), 23);
        let head = format!("head -c {}", block_tag(0).len());
        assert!(
            super::super::initramfs::INIT_SCRIPT.contains(&head),
            "{head}"
        );
        assert_eq!(block_tag(2047), "vgt-disk block 00002047");
    }
}
