// SPDX-License-Identifier: MIT OR Apache-2.0
// The one list of QEMU scenarios, read by two programs:
//
// - the hyp (`scenarios/mod.rs`), which takes each name and body (`group::function`) into its
//   dispatch table and ignores the runner options;
// - the runner (`xtask/src/qemu/scenarios.rs`), which takes each name and runner options into
//   its table and ignores the body.
//
// Each program defines its own `scenario_list!` macro and `include!`s this file, so a scenario
// exists for both or for neither. One entry per scenario:
//
//     name: group::body, option(args).option(args);
//
// Runner options (methods of the runner's `Scenario`): `smp(n)` CPUs, `edu()` (the PCI `edu`
// device), `deadline(d)`, `expects_guest_errors(&[..])` (QEMU log lines provoked on purpose),
// `bench()` (a benchmark: `-icount`, run by exact name only), `hidden()` (a runner self-check
// that must FAIL, run by exact name only), `linux(g)` (boots the Linux guest `g` describes:
// the runner provisions the kernel, initramfs and disk, and judges the guest's console too),
// `on_demand()` (run by exact name only, and must pass), `its_trace()` (QEMU traces its ITS's
// commands; the runner checks their number against the hyp's `@@M its_commands`),
// `expects_its_commands_in_window(&[(mnemonic, n)])` (traced, and at least n of each while
// the guest does its I/O). Names must be unique (a runner test checks).
scenario_list! {
    boot_smoke: infra::boot_smoke, smp(1);
    smp_smoke: infra::smp_smoke, smp(2);
    guest_smoke: infra::guest_smoke, smp(1);
    demo: demo::demo, smp(2).edu();

    // Physical LPIs through the ITS, on the driver crates (scenarios/{its,lpi}.rs).
    its_probe: its::its_probe, smp(2);
    lpi_int: lpi::lpi_int, smp(1);
    lpi_translater: lpi::lpi_translater, smp(2);
    lpi_edu_msi: lpi::lpi_edu_msi, smp(1).edu();
    lpi_movi_smp: lpi::lpi_movi_smp, smp(2);
    lpi_discard: lpi::lpi_discard, smp(1);
    lpi_disable_inv: lpi::lpi_disable_inv, smp(1);
    cmdq_wrap: its::cmdq_wrap, smp(1);
    cmdq_batch_many: its::cmdq_batch_many, smp(1);
    // A raw MAPTI with pINTID 5 pushed past the driver: QEMU 7.2 skips it (no stall) and logs
    // exactly this line.
    its_bad_command: its::its_bad_command,
        smp(1).expects_guest_errors(&["process_mapti: invalid interrupt ID 0x5"]);

    // Forwarded physical interrupts through list registers, on fwd-irq (scenarios/fwd.rs).
    fwd_vtimer: fwd::fwd_vtimer, smp(1);
    fwd_vtimer_wfi: fwd::fwd_vtimer_wfi, smp(1);
    fwd_level_lowered: fwd::fwd_level_lowered, smp(1);
    fwd_level_reassert: fwd::fwd_level_reassert, smp(1);
    fwd_lr_overflow: fwd::fwd_lr_overflow, smp(1);
    fwd_vtimer_migrate: fwd::fwd_vtimer_migrate, smp(2);

    // GICv4 direct injection: vLPIs, doorbells, vPEs, on vpe-sched and doorbell
    // (scenarios/vlpi.rs).
    vlpi_direct: vlpi::vlpi_direct, smp(2);
    vlpi_pending_then_resident: vlpi::vlpi_pending_then_resident, smp(1);
    vlpi_doorbell_wake: vlpi::vlpi_doorbell_wake, smp(2).edu();
    vlpi_vmovp_smp: vlpi::vlpi_vmovp_smp, smp(2);
    vlpi_unmap: vlpi::vlpi_unmap, smp(1);
    vlpi_prop_inv: vlpi::vlpi_prop_inv, smp(1);
    vlpi_edu_passthrough: vlpi::vlpi_edu_passthrough, smp(1).edu();
    vlpi_two_vms: vlpi::vlpi_two_vms, smp(1);
    vlpi_many: vlpi::vlpi_many, smp(1);
    vpe_many: vlpi::vpe_many, smp(2);

    // Four CPUs at once (scenarios/stress.rs): 10 000 map / unmap / MOVI / INT operations on
    // physical LPIs, and 64 vPEs rescheduled while vLPIs arrive. 5 to 25 s each on a loaded
    // 2-core host; the deadline leaves room.
    stress_smp_map: stress::stress_smp_map, smp(4).deadline(Duration::from_secs(120));
    stress_vpe_switch: stress::stress_vpe_switch, smp(4).deadline(Duration::from_secs(120));

    // Debian's arm64 Linux on the hypervisor of hyp::linux (scenarios/linux.rs): boot to /init
    // and power off; four vCPUs with a CPU hotplug; NVMe reads through a forwarded PCIe INTx;
    // the guest's attempts on the hypervisor's memory refused.
    linux_boot: linux::linux_boot, smp(1).linux(LinuxGuest::mode("boot"));
    linux_smp: linux::linux_smp, smp(4).linux(LinuxGuest::mode("smp"));
    linux_nvme_intx: linux::linux_nvme_intx, smp(2).linux(LinuxGuest::mode("nvme").nvme());
    linux_isolation: linux::linux_isolation,
        smp(1).linux(LinuxGuest::mode("isolation").append("vgt.target=0x40200000"));
    // The guest drives its own ITS (hyp::linux::its, on vits): its NVMe's MSIs are vLPIs
    // (GICv4). Resident vPEs (no exit per disk interrupt); WFI trapped, vCPUs woken by
    // doorbells; vCPUs 0 and 1 swapping CPUs under I/O (VMOVP); the guest moving its NVMe
    // interrupt between vCPUs (MOVI -> VMOVI; one MSI-X vector, so not a managed interrupt).
    // QEMU traces its ITS's commands: as many as the hyp counted, and during the reads the
    // VMOVPs of 4 swaps of 2 vPEs, the VMOVIs of 2 moves.
    linux_nvme_vlpi: linux::linux_nvme_vlpi,
        smp(2).linux(LinuxGuest::mode("nvme").nvme().msi()).its_trace();
    linux_nvme_doorbell: linux::linux_nvme_doorbell,
        smp(2).linux(LinuxGuest::mode("nvme").nvme().msi()).its_trace();
    linux_vcpu_migrate: linux::linux_vcpu_migrate,
        smp(2)
            .linux(LinuxGuest::mode("nvme").nvme().msi())
            .expects_its_commands_in_window(&[("vmovp", 8)]);
    linux_irq_affinity: linux::linux_irq_affinity,
        smp(2)
            .linux(LinuxGuest::mode("affinity").nvme().msi().single_vector())
            .expects_its_commands_in_window(&[("vmovi", 2)]);
    // The same guest ITS without GICv4 (vits' SoftBackend): host LPIs injected through list
    // registers, one exit per disk interrupt at least.
    linux_nvme_soft: linux::linux_nvme_soft,
        smp(2).linux(LinuxGuest::mode("nvme").nvme().msi()).its_trace();
    // `cargo xtask linux`: any kernel, initramfs and command line.
    linux_any: linux::linux_any, smp(1).linux(LinuxGuest::mode("boot")).on_demand();

    // Benchmarks for `cargo xtask bench`, under -icount shift=0 (scenarios/bench.rs).
    bench_vlpi_latency: bench::bench_vlpi_latency, smp(1).bench();
    bench_vpe_counts: bench::bench_vpe_counts, smp(1).bench();
    // The Linux guest's NVMe reads with its own ITS (scenarios/linux.rs) in three modes:
    // GICv4 with resident vPEs, GICv4 with WFI trapped and doorbells, software injection. One
    // vCPU: under -icount QEMU's instruction event counts the whole machine. The physical
    // ITS's commands are traced by QEMU.
    bench_linux_vlpi: linux::bench_linux_vlpi,
        smp(1).linux(LinuxGuest::mode("nvme").nvme().msi()).bench().its_trace();
    bench_linux_doorbell: linux::bench_linux_doorbell,
        smp(1).linux(LinuxGuest::mode("nvme").nvme().msi()).bench().its_trace();
    bench_linux_soft: linux::bench_linux_soft,
        smp(1).linux(LinuxGuest::mode("nvme").nvme().msi()).bench().its_trace();

    // Runner self-checks: each must be reported FAILED (scenarios/selfcheck.rs).
    panic_check: selfcheck::panic_check, smp(1).deadline(SELF_CHECK_DEADLINE).hidden();
    exception_check: selfcheck::exception_check, smp(1).deadline(SELF_CHECK_DEADLINE).hidden();
    guest_error_check: selfcheck::guest_error_check,
        smp(1).deadline(SELF_CHECK_DEADLINE).hidden();
}
