// SPDX-License-Identifier: MIT OR Apache-2.0
//! The adopter's run on the host model, checked: a vLPI delivered while resident, a doorbell
//! taken and its vCPU's waiter woken while blocked, then everything torn down and shut down
//! through the statics, with the commands that takes, the GIC's tables clean and the arena
//! back to what the objects kept in statics hold. Also: the glue's size, as the README says.

use adopter::scenario::{self, DEVICE, VINTID};
use its_cmdq::ItsError;
use its_core::cmd::Command;

#[test]
fn a_guest_lives_and_everything_shuts_down() {
    let r = scenario::run().expect("the run");
    assert_eq!(
        r.model_errors,
        Vec::<String>::new(),
        "the model saw no error"
    );
    // The vLPI, straight to the resident vCPU; then the doorbell while it is blocked.
    assert_eq!(r.direct, Some(VINTID));
    let (intid, vpe) = r.doorbell.expect("a doorbell LPI on CPU 1");
    assert_eq!(
        vpe.map(|v| v.get()),
        Some(r.vpes[1]),
        "INTID {intid} is vCPU 1's doorbell"
    );
    assert!(r.woken, "the waiter in vCPU 1's struct was woken");
    assert_eq!(
        r.after_wake,
        Some(VINTID),
        "the MSI taken while away, once back"
    );

    // Teardown: the vLPI discarded, the device unmapped, both vPEs unmapped; shutdown: the
    // doorbells' proxy device unmapped. Nothing after that: the ITS shutdown issues none.
    let t = &r.teardown;
    let pos = |f: &dyn Fn(&Command) -> bool| t.iter().position(f);
    let discard = pos(&|c| matches!(c, Command::Discard { device, .. } if device.get() == DEVICE));
    let mapd =
        pos(&|c| matches!(c, Command::Mapd { device, valid: false, .. } if device.get() == DEVICE));
    assert!(discard.is_some() && discard < mapd, "{t:?}");
    for &v in &r.vpes {
        assert!(
            t.iter()
                .any(|c| matches!(c, Command::Vmapp { vpe, valid: false, .. } if vpe.get() == v)),
            "VMAPP V=0 of vPE {v}: {t:?}"
        );
    }
    assert!(
        matches!(t.last(), Some(Command::Mapd { device, valid: false, .. }) if device.get() == 0xffff),
        "the proxy device last: {t:?}"
    );
    assert!(r.tables_clean, "no DTE or VTE of the guest left");
    assert!(r.its_off, "ITS disabled and quiescent");
    assert!(r.queue_and_tables_freed);
    assert_eq!(r.lpis_on, [false, false], "LPIs off on both redistributors");
    assert_eq!(r.after_shutdown, Some(ItsError::ShutDown));

    // Memory. The teardown gives back what the guest took but two second-level table pages
    // of 64 KiB (the device table's for DeviceID 0x10, the vPE table's for its vPEs), which
    // the tables keep until the ITS shuts down.
    let [up, guest, torn, down, peak] = r.pages;
    assert!(guest > up && peak >= guest, "{:?}", r.pages);
    assert_eq!(torn, up + 2 * 16, "{:?}", r.pages);
    // Shutdown frees the rest but what the statics still hold, never dropped: the LPI
    // property table (64 KiB) and its INTID bitmap (8 KiB) in `Lpis`, and the doorbells'
    // state (one page) in `Doorbells`.
    assert_eq!((down, r.regions_left), (16 + 2 + 1, 3), "{:?}", r.pages);
}

/// Code lines (not blank, not comments) of the glue: `src/platform.rs` and `src/hyp.rs`.
fn glue_lines() -> usize {
    let dir = env!("CARGO_MANIFEST_DIR");
    ["src/platform.rs", "src/hyp.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{dir}/{f}")).unwrap())
        .flat_map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("//"))
                .map(drop)
                .collect::<Vec<_>>()
        })
        .count()
}

#[test]
fn the_readme_gives_the_glue_size() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let n = glue_lines();
    assert!(
        readme.contains(&format!("**{n} lines**")),
        "the README must say the glue is **{n} lines**"
    );
}
