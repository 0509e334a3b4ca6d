// SPDX-License-Identifier: MIT OR Apache-2.0
//! Passes the hyp's linker script (which INCLUDEs `../common/common.ld`).

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let common = dir.join("../common");
    println!("cargo:rustc-link-search=native={}", common.display());
    println!(
        "cargo:rustc-link-arg-bins=-T{}",
        dir.join("image.ld").display()
    );
    println!("cargo:rerun-if-changed=image.ld");
    println!("cargo:rerun-if-changed=../common/common.ld");
}
