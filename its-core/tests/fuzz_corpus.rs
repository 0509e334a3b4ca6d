// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! properties (`its_core::cmd::props`), on stable, as part of `cargo test`.
//!
//! Every input the fuzzer kept (after `cargo fuzz cmin`) covers some path of the codec, so
//! replaying them is a cheap regression test of the properties. A missing or empty corpus
//! directory fails the test: a wrong path must not pass silently.
//!
//! Needs the `arbitrary` feature: `cargo test -p its-core --features arbitrary --test fuzz_corpus`.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use its_core::cmd::props;

/// The corpus of one fuzz target.
fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs `property` on every file of `target`'s corpus; returns how many it ran.
fn replay(target: &str, property: fn(&[u8])) -> usize {
    let n = replay_dir(&corpus_dir(target), property);
    println!("{target}: {n} corpus inputs replayed");
    n
}

/// Runs `property` on every file in `dir`. Fails if `dir` is missing or has no files, and
/// names every input that violates the property.
fn replay_dir(dir: &Path, property: fn(&[u8])) -> usize {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus directory {} unreadable: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "corpus directory {} has no inputs",
        dir.display()
    );
    let mut failed = Vec::new();
    for path in &paths {
        let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| property(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs in {} violate the property (see the panics above): {failed:#?}",
        failed.len(),
        paths.len(),
        dir.display()
    );
    paths.len()
}

#[test]
fn decode_corpus() {
    replay("decode", props::decode_bytes);
}

#[test]
fn encode_corpus() {
    replay("encode", props::encode_bytes);
}

/// The replay cannot pass by accident: a missing directory, an empty one and a violated
/// property all fail it.
#[test]
fn replay_fails_when_it_should() {
    fn holds(_: &[u8]) {}
    fn violated(_: &[u8]) {
        panic!("deliberate violation");
    }
    let dir = std::env::temp_dir().join(format!("its-core-fuzz-corpus-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    assert!(catch_unwind(|| replay_dir(&dir, holds)).is_err(), "missing");
    fs::create_dir_all(&dir).unwrap();
    assert!(catch_unwind(|| replay_dir(&dir, holds)).is_err(), "empty");
    fs::write(dir.join("input"), b"x").unwrap();
    assert_eq!(replay_dir(&dir, holds), 1);
    assert!(
        catch_unwind(|| replay_dir(&dir, violated)).is_err(),
        "violated"
    );
    fs::remove_dir_all(&dir).unwrap();
}
