// SPDX-License-Identifier: MIT OR Apache-2.0
//! Guest trees derived from QEMU's own trees, read back and checked node by node.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};
use guest_fdt::{
    Error, GuestPolicy, MemRegion, NodeMatch, PsciMethod, REDISTRIBUTOR_SIZE, derive, guest_memory,
    host_memory,
};
use its_core::discover::GicDescription;
use proptest::prelude::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// QEMU `virt` trees (fixtures/dtb/README.md): 7.2.22 and 10.0.2, gic-version 3 and 4, 1 and
/// 4 CPUs, with an NVMe device.
const FIXTURES: [(&str, &[u8]); 8] = [
    (
        "gicv3-smp1-7.2.22",
        include_bytes!("../../fixtures/dtb/virt-gicv3-smp1-qemu7.2.22.dtb"),
    ),
    (
        "gicv3-smp4-7.2.22",
        include_bytes!("../../fixtures/dtb/virt-gicv3-smp4-qemu7.2.22.dtb"),
    ),
    (
        "gicv4-smp1-7.2.22",
        include_bytes!("../../fixtures/dtb/virt-gicv4-smp1-qemu7.2.22.dtb"),
    ),
    (
        "gicv4-smp4-7.2.22",
        include_bytes!("../../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb"),
    ),
    (
        "gicv3-smp1-10.0.2",
        include_bytes!("../../fixtures/dtb/virt-gicv3-smp1-qemu10.0.2.dtb"),
    ),
    (
        "gicv3-smp4-10.0.2",
        include_bytes!("../../fixtures/dtb/virt-gicv3-smp4-qemu10.0.2.dtb"),
    ),
    (
        "gicv4-smp1-10.0.2",
        include_bytes!("../../fixtures/dtb/virt-gicv4-smp1-qemu10.0.2.dtb"),
    ),
    (
        "gicv4-smp4-10.0.2",
        include_bytes!("../../fixtures/dtb/virt-gicv4-smp4-qemu10.0.2.dtb"),
    ),
];

const SMP4_72: &[u8] = FIXTURES[3].1;

/// QEMU's RAM with `-m 512M`.
const RAM: MemRegion = MemRegion::new(0x4000_0000, 0x2000_0000);

fn host_cpus(name: &str) -> usize {
    if name.contains("smp4") { 4 } else { 1 }
}

/// A property: name and value.
type Prop = (String, Vec<u8>);

/// Every node, depth first: path and properties in order.
fn nodes(dtb: &[u8]) -> Vec<(String, Vec<Prop>)> {
    fn walk(node: FdtNode<'_>, path: String, out: &mut Vec<(String, Vec<Prop>)>) {
        let props = node
            .properties()
            .map(|p| (p.name().to_string(), p.value().to_vec()))
            .collect();
        out.push((path.clone(), props));
        for child in node.children() {
            let child_path = if path == "/" {
                format!("/{}", child.name())
            } else {
                format!("{path}/{}", child.name())
            };
            walk(child, child_path, out);
        }
    }
    let fdt = Fdt::new(dtb).expect("a valid tree");
    let mut out = Vec::new();
    walk(fdt.root(), "/".into(), &mut out);
    out
}

fn prop<'a>(props: &'a [Prop], name: &str) -> Option<&'a [u8]> {
    props
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fn cells(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn be64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn compatible(props: &[Prop], with: &str) -> bool {
    prop(props, "compatible").is_some_and(|c| c.split(|b| *b == 0).any(|s| s == with.as_bytes()))
}

/// Every phandle reference of the properties QEMU's trees use, followed with the target's
/// cell counts, and checked to name an existing node.
fn check_no_dangling_phandle(dtb: &[u8]) {
    let all = nodes(dtb);
    let by_phandle: BTreeMap<u32, &Vec<Prop>> = all
        .iter()
        .filter_map(|(_, p)| Some((cells(prop(p, "phandle")?)[0], p)))
        .collect();
    let cell_count = |phandle: u32, name: &str| -> usize {
        let target = by_phandle
            .get(&phandle)
            .unwrap_or_else(|| panic!("dangling phandle {phandle:#x}"));
        prop(target, name).map_or(0, |v| cells(v)[0] as usize)
    };
    let mut references = 0;
    for (path, props) in &all {
        for (name, value) in props {
            let c = cells(value);
            let mut refs = Vec::new();
            match name.as_str() {
                "interrupt-parent" | "cpu" => refs.push(c[0]),
                "msi-parent" => refs.push(c[0]),
                "msi-map" => refs.extend(c.chunks(4).map(|e| e[1])),
                "clocks" | "gpios" => {
                    let count = if name == "clocks" {
                        "#clock-cells"
                    } else {
                        "#gpio-cells"
                    };
                    let mut at = 0;
                    while at < c.len() {
                        refs.push(c[at]);
                        at += 1 + cell_count(c[at], count);
                    }
                }
                "interrupt-map" => {
                    // Child address (3) + child specifier (1), phandle, parent address and
                    // specifier.
                    let child = cells(prop(props, "#address-cells").unwrap())[0] as usize
                        + cells(prop(props, "#interrupt-cells").unwrap())[0] as usize;
                    let mut at = 0;
                    while at < c.len() {
                        let parent = c[at + child];
                        refs.push(parent);
                        at += child
                            + 1
                            + cell_count(parent, "#address-cells")
                            + cell_count(parent, "#interrupt-cells");
                    }
                }
                _ => {}
            }
            for r in refs {
                assert!(by_phandle.contains_key(&r), "{path}/{name} names {r:#x}");
                references += 1;
            }
        }
    }
    assert!(references > 0, "the check followed no reference");
}

/// `dtc -I dtb -O dts` accepts the tree without a warning, when dtc is installed.
fn check_dtc(dtb: &[u8]) -> bool {
    if Command::new("dtc").arg("--version").output().is_err() {
        eprintln!("dtc is not installed: the dtc check is skipped");
        return false;
    }
    let mut child = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(dtb).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dtc refused the tree: {stderr}");
    assert!(stderr.trim().is_empty(), "dtc warned: {stderr}");
    true
}

/// The properties the derivation may change, per kind of node.
fn changed_names(path: &str, props: &[Prop]) -> &'static [&'static str] {
    if path.starts_with("/memory") {
        &["reg"]
    } else if path == "/chosen" {
        &["bootargs", "linux,initrd-start", "linux,initrd-end"]
    } else if compatible(props, "arm,gic-v3") {
        &[
            "reg",
            "interrupts",
            "#redistributor-regions",
            "redistributor-stride",
        ]
    } else if path == "/psci" {
        &["method"]
    } else if prop(props, "msi-map").is_some() {
        &["msi-map", "msi-map-mask", "msi-parent"]
    } else {
        &[]
    }
}

/// What a policy should have done to a fixture.
struct Expect<'a> {
    vcpus: usize,
    memory: &'a [MemRegion],
    bootargs: Option<&'a str>,
    initrd: Option<MemRegion>,
    its: bool,
    gicr_base: u64,
    psci: &'a [u8],
    /// Host nodes that must be gone (full paths).
    removed: Vec<String>,
}

/// Derives `policy` from fixture `dtb` and checks the result against `expect`.
fn check(name: &str, dtb: &[u8], policy: &GuestPolicy<'_>, expect: &Expect<'_>) -> Vec<u8> {
    let guest = derive(dtb, policy).unwrap_or_else(|e| panic!("{name}: {e}"));
    let host_nodes = nodes(dtb);
    let guest_nodes = nodes(&guest);
    let host: BTreeMap<&str, &Vec<Prop>> =
        host_nodes.iter().map(|(p, v)| (p.as_str(), v)).collect();

    // Nodes: the host's, in order, minus the removed subtrees, the memory node renamed.
    let memory_path = format!("/memory@{:x}", expect.memory[0].base);
    let gone = |path: &str| {
        expect
            .removed
            .iter()
            .any(|r| path == r || path.starts_with(&format!("{r}/")))
    };
    let expected_paths: Vec<String> = host_nodes
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| !gone(p))
        .map(|p| {
            if p == "/memory@40000000" {
                memory_path.clone()
            } else {
                p
            }
        })
        .collect();
    let guest_paths: Vec<String> = guest_nodes.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(guest_paths, expected_paths, "{name}");

    // Every property the derivation does not change is the host's, in the host's order.
    for (path, props) in &guest_nodes {
        let host_path = if *path == memory_path {
            "/memory@40000000"
        } else {
            path.as_str()
        };
        let host_props = host[host_path];
        let changed = changed_names(host_path, host_props);
        let kept = |ps: &[Prop]| -> Vec<Prop> {
            ps.iter()
                .filter(|(n, _)| !changed.contains(&n.as_str()))
                .cloned()
                .collect()
        };
        assert_eq!(kept(props), kept(host_props), "{name}: {path}");
    }
    let guest_map: BTreeMap<&str, &Vec<Prop>> =
        guest_nodes.iter().map(|(p, v)| (p.as_str(), v)).collect();

    // Memory.
    let memory = guest_map[memory_path.as_str()];
    let reg: Vec<u64> = expect
        .memory
        .iter()
        .flat_map(|m| [m.base, m.size])
        .collect();
    assert_eq!(prop(memory, "reg"), Some(be64s(&reg).as_slice()), "{name}");
    assert_eq!(prop(memory, "device_type"), Some(&b"memory\0"[..]));

    // CPUs and the cpu-map.
    let cpus: Vec<&str> = guest_nodes
        .iter()
        .filter(|(p, props)| {
            p.starts_with("/cpus/") && prop(props, "device_type") == Some(b"cpu\0")
        })
        .map(|(p, _)| p.as_str())
        .collect();
    let want: Vec<String> = (0..expect.vcpus)
        .map(|i| format!("/cpus/cpu@{i}"))
        .collect();
    assert_eq!(cpus, want, "{name}");
    let cpu_phandles: BTreeSet<u32> = cpus
        .iter()
        .map(|p| cells(prop(guest_map[p], "phandle").unwrap())[0])
        .collect();
    let map_cpus: BTreeSet<u32> = guest_nodes
        .iter()
        .filter(|(p, _)| p.starts_with("/cpus/cpu-map/"))
        .filter_map(|(_, props)| prop(props, "cpu").map(|v| cells(v)[0]))
        .collect();
    assert_eq!(
        map_cpus, cpu_phandles,
        "{name}: the cpu-map names exactly the kept CPUs"
    );

    // /chosen.
    let chosen = guest_map["/chosen"];
    let host_chosen = host["/chosen"];
    assert_eq!(
        prop(chosen, "bootargs"),
        expect
            .bootargs
            .map(|b| format!("{b}\0").into_bytes())
            .as_deref(),
        "{name}"
    );
    let initrd = expect
        .initrd
        .map(|r| (be64s(&[r.base]), be64s(&[r.base + r.size])));
    assert_eq!(
        prop(chosen, "linux,initrd-start"),
        initrd.as_ref().map(|(s, _)| s.as_slice())
    );
    assert_eq!(
        prop(chosen, "linux,initrd-end"),
        initrd.as_ref().map(|(_, e)| e.as_slice())
    );
    assert_eq!(prop(chosen, "stdout-path"), Some(&b"/pl011@9000000\0"[..]));
    for seed in ["rng-seed", "kaslr-seed"] {
        assert_eq!(
            prop(chosen, seed),
            prop(host_chosen, seed),
            "{name}: {seed}"
        );
    }

    // The GIC node.
    let gic = guest_map["/intc@8000000"];
    let redists = expect.vcpus as u64 * REDISTRIBUTOR_SIZE;
    assert_eq!(
        prop(gic, "reg"),
        Some(be64s(&[0x0800_0000, 0x1_0000, expect.gicr_base, redists]).as_slice()),
        "{name}"
    );
    assert_eq!(
        prop(gic, "interrupts"),
        None,
        "{name}: the maintenance interrupt stays"
    );
    assert_eq!(
        prop(gic, "#redistributor-regions"),
        Some(&1u32.to_be_bytes()[..])
    );
    assert_eq!(
        guest_map.contains_key("/intc@8000000/its@8080000"),
        expect.its
    );

    // PCI's MSI routing follows the ITS.
    let pcie = guest_map["/pcie@10000000"];
    let host_pcie = host["/pcie@10000000"];
    if expect.its {
        assert_eq!(prop(pcie, "msi-map"), prop(host_pcie, "msi-map"));
    } else {
        assert_eq!(prop(pcie, "msi-map"), None, "{name}");
        assert_eq!(prop(pcie, "msi-parent"), None, "{name}");
    }
    assert_eq!(
        prop(pcie, "interrupt-map"),
        prop(host_pcie, "interrupt-map"),
        "INTx stays"
    );

    // PSCI and the timer.
    assert_eq!(prop(guest_map["/psci"], "method"), Some(expect.psci));
    assert_eq!(
        guest_map["/timer"], host["/timer"],
        "{name}: the timer is untouched"
    );

    // Discovery reads the guest tree as a hypervisor-side adopter would.
    check_discovery(&guest, expect, redists, name);
    check_no_dangling_phandle(&guest);
    check_dtc(&guest);
    guest
}

fn check_discovery(guest: &[u8], expect: &Expect<'_>, redists: u64, name: &str) {
    let discovered = GicDescription::from_fdt(guest).unwrap();
    assert_eq!(discovered.distributor().base().get(), 0x0800_0000);
    let regions: Vec<(u64, u64)> = discovered
        .redistributor_regions()
        .iter()
        .map(|r| (r.base().get(), r.size()))
        .collect();
    assert_eq!(regions, [(expect.gicr_base, redists)], "{name}");
    assert_eq!(discovered.maintenance_interrupt(), None);
    assert_eq!(discovered.its().len(), usize::from(expect.its));
    assert_eq!(discovered.pci_hosts()[0].has_msi(), expect.its);
}

/// The nodes QEMU's trees have that every default policy removes.
fn default_removed(dtb: &[u8], virtio_kept: &[u64]) -> Vec<String> {
    nodes(dtb)
        .into_iter()
        .filter(|(p, props)| {
            p.matches('/').count() == 1
                && (compatible(props, "qemu,platform")
                    || compatible(props, "qemu,fw-cfg-mmio")
                    || compatible(props, "cfi-flash")
                    || (compatible(props, "virtio,mmio")
                        && !virtio_kept
                            .contains(&(u64::from(cells(prop(props, "reg").unwrap())[1])))))
        })
        .map(|(p, _)| p)
        .collect()
}

fn cpus_removed(from: usize, to: usize) -> Vec<String> {
    let mut out: Vec<String> = (from..to).map(|i| format!("/cpus/cpu@{i}")).collect();
    // QEMU's cpu-map has core<i> for CPU i, under socket0/cluster0.
    out.extend((from..to).map(|i| format!("/cpus/cpu-map/socket0/cluster0/core{i}")));
    out
}

#[test]
fn two_vcpus_without_its_with_bootargs_and_initrd() {
    for (name, dtb) in FIXTURES {
        let vcpus = host_cpus(name).min(2);
        let memory = [MemRegion::new(0x4400_0000, 0x1c00_0000)];
        let initrd = MemRegion::new(0x4800_0000, 0x20_0000);
        let policy = GuestPolicy::new(&memory, vcpus)
            .with_bootargs("console=ttyAMA0 earlycon")
            .with_initrd(initrd);
        let mut removed = default_removed(dtb, &[]);
        removed.push("/intc@8000000/its@8080000".into());
        removed.extend(cpus_removed(vcpus, host_cpus(name)));
        check(
            name,
            dtb,
            &policy,
            &Expect {
                vcpus,
                memory: &memory,
                bootargs: Some("console=ttyAMA0 earlycon"),
                initrd: Some(initrd),
                its: false,
                gicr_base: 0x080a_0000,
                psci: b"smc\0",
                removed,
            },
        );
    }
}

#[test]
fn every_cpu_with_its_keeping_fw_cfg_and_two_virtio_transports() {
    for (name, dtb) in FIXTURES {
        let vcpus = host_cpus(name);
        let memory = [RAM];
        let virtio = [0x0a00_0000, 0x0a00_3e00];
        let keep = [NodeMatch::Compatible("qemu,fw-cfg-mmio")];
        let policy = GuestPolicy::new(&memory, vcpus)
            .with_its(true)
            .with_virtio_mmio_kept(&virtio)
            .with_keep(&keep);
        let removed = default_removed(dtb, &virtio)
            .into_iter()
            .filter(|p| !p.starts_with("/fw-cfg"))
            .collect();
        let guest = check(
            name,
            dtb,
            &policy,
            &Expect {
                vcpus,
                memory: &memory,
                bootargs: None,
                initrd: None,
                its: true,
                gicr_base: 0x080a_0000,
                psci: b"smc\0",
                removed,
            },
        );
        let paths: Vec<String> = nodes(&guest).into_iter().map(|(p, _)| p).collect();
        assert!(paths.contains(&"/fw-cfg@9020000".to_string()));
        assert!(paths.contains(&"/virtio_mmio@a000000".to_string()));
        assert!(paths.contains(&"/virtio_mmio@a003e00".to_string()));
        assert_eq!(
            paths
                .iter()
                .filter(|p| p.starts_with("/virtio_mmio"))
                .count(),
            2
        );
    }
}

#[test]
fn one_vcpu_split_memory_hvc_own_gicr_base_and_extra_removals() {
    for (name, dtb) in FIXTURES {
        let memory = [
            MemRegion::new(0x4000_0000, 0x100_0000),
            MemRegion::new(0x4200_0000, 0x1e00_0000),
        ];
        let remove = [
            NodeMatch::Path("/pl031@9010000"),
            NodeMatch::Name("gpio-keys"),
            NodeMatch::Name("pl061"),
        ];
        let policy = GuestPolicy::new(&memory, 1)
            .with_its(true)
            .with_bootargs("quiet")
            .with_psci_method(PsciMethod::Hvc)
            .with_redistributor_base(0x0a10_0000)
            .with_remove(&remove);
        let mut removed = default_removed(dtb, &[]);
        removed.extend(cpus_removed(1, host_cpus(name)));
        removed.extend(["/pl031@9010000", "/gpio-keys", "/pl061@9030000"].map(String::from));
        check(
            name,
            dtb,
            &policy,
            &Expect {
                vcpus: 1,
                memory: &memory,
                bootargs: Some("quiet"),
                initrd: None,
                its: true,
                gicr_base: 0x0a10_0000,
                psci: b"hvc\0",
                removed,
            },
        );
    }
}

#[test]
fn derivation_is_deterministic_and_a_fixed_point() {
    let memory = [MemRegion::new(0x4400_0000, 0x1c00_0000)];
    let policy = GuestPolicy::new(&memory, 2).with_bootargs("console=ttyAMA0");
    let once = derive(SMP4_72, &policy).unwrap();
    assert_eq!(derive(SMP4_72, &policy).unwrap(), once);
    // The guest's tree already is what the policy asks for.
    assert_eq!(derive(&once, &policy).unwrap(), once);
}

#[test]
fn guest_memory_is_host_memory_minus_the_holes() {
    assert_eq!(host_memory(SMP4_72).unwrap(), [RAM]);
    let cases: [(&[MemRegion], &[MemRegion]); 4] = [
        (&[], &[RAM]),
        (
            &[MemRegion::new(0x4000_0000, 0x400_0000)],
            &[MemRegion::new(0x4400_0000, 0x1c00_0000)],
        ),
        (
            &[
                MemRegion::new(0x5000_0000, 0x100_0000),
                MemRegion::new(0x3000_0000, 0x1000_1000),
            ],
            &[
                MemRegion::new(0x4000_1000, 0xfff_f000),
                MemRegion::new(0x5100_0000, 0xf00_0000),
            ],
        ),
        // Holes outside the RAM change nothing.
        (&[MemRegion::new(0x8000_0000, 0x1000)], &[RAM]),
    ];
    for (holes, want) in cases {
        assert_eq!(guest_memory(SMP4_72, holes).unwrap(), want, "{holes:x?}");
    }
}

#[test]
fn policy_errors() {
    let ram = [RAM];
    let too_big = [MemRegion::new(0x4000_0000, 0x2000_1000)];
    let unsorted = [
        MemRegion::new(0x5000_0000, 0x1000),
        MemRegion::new(0x4000_0000, 0x1000),
    ];
    let empty = [MemRegion::new(0x4000_0000, 0)];
    let cases: Vec<(GuestPolicy<'_>, Error)> = vec![
        (
            GuestPolicy::new(&ram, 0),
            Error::VcpuCount {
                requested: 0,
                available: 4,
            },
        ),
        (
            GuestPolicy::new(&ram, 5),
            Error::VcpuCount {
                requested: 5,
                available: 4,
            },
        ),
        (GuestPolicy::new(&[], 1), Error::NoMemory),
        (
            GuestPolicy::new(&too_big, 1),
            Error::MemoryOutsideHost {
                base: 0x4000_0000,
                size: 0x2000_1000,
            },
        ),
        (
            GuestPolicy::new(&unsorted, 1),
            Error::BadMemoryRange {
                base: 0x4000_0000,
                size: 0x1000,
            },
        ),
        (
            GuestPolicy::new(&empty, 1),
            Error::BadMemoryRange {
                base: 0x4000_0000,
                size: 0,
            },
        ),
        (
            GuestPolicy::new(&ram, 1).with_initrd(MemRegion::new(0x5fff_0000, 0x2_0000)),
            Error::InitrdOutsideMemory {
                base: 0x5fff_0000,
                size: 0x2_0000,
            },
        ),
        (
            GuestPolicy::new(&ram, 1).with_bootargs("a\0b"),
            Error::InvalidBootargs,
        ),
        (
            GuestPolicy::new(&ram, 1).with_remove(&[NodeMatch::Compatible("arm,gic-v3")]),
            Error::RemovesRequired { node: "arm,gic-v3" },
        ),
        (
            GuestPolicy::new(&ram, 1).with_remove(&[NodeMatch::Path("/cpus/cpu@1")]),
            Error::RemovesRequired { node: "cpu" },
        ),
        (
            GuestPolicy::new(&ram, 1).with_remove(&[NodeMatch::Name("chosen")]),
            Error::RemovesRequired { node: "/chosen" },
        ),
        // gpio-keys refers to the GPIO controller by phandle.
        (
            GuestPolicy::new(&ram, 1).with_remove(&[NodeMatch::Path("/pl061@9030000")]),
            Error::DanglingReference { phandle: 0x8007 },
        ),
        // So does every device to the clock.
        (
            GuestPolicy::new(&ram, 1).with_remove(&[NodeMatch::Name("apb-pclk")]),
            Error::DanglingReference { phandle: 0x8000 },
        ),
    ];
    for (policy, want) in cases {
        assert_eq!(derive(SMP4_72, &policy), Err(want));
    }
}

#[test]
fn aliases_into_removed_nodes_go() {
    // QEMU 10.0.2 adds /aliases/serial0 = "/pl011@9000000".
    let dtb = FIXTURES[7].1;
    let ram = [RAM];
    let keep = derive(dtb, &GuestPolicy::new(&ram, 1)).unwrap();
    let aliases = |guest: &[u8]| {
        let all = nodes(guest);
        all.into_iter().find(|(p, _)| p == "/aliases").unwrap().1
    };
    assert_eq!(
        prop(&aliases(&keep), "serial0"),
        Some(&b"/pl011@9000000\0"[..])
    );
    let remove = [NodeMatch::Name("pl011")];
    let gone = derive(dtb, &GuestPolicy::new(&ram, 1).with_remove(&remove)).unwrap();
    assert_eq!(prop(&aliases(&gone), "serial0"), None);
    check_no_dangling_phandle(&gone);
}

/// A small host tree: 2 CPUs, a GIC with a redistributor region of `gicr_size`, memory at
/// 0x8000_0000, and the given reservations and boot CPU.
fn small_host(gicr_size: u64, reservations: &[FdtReserveEntry], boot_cpu: u32) -> Vec<u8> {
    let mut w = FdtWriter::new_with_mem_reserv(reservations).unwrap();
    w.set_boot_cpuid_phys(boot_cpu);
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let mem = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x8000_0000, 0x1000_0000])
        .unwrap();
    w.end_node(mem).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..2 {
        let cpu = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", i).unwrap();
        w.end_node(cpu).unwrap();
    }
    w.end_node(cpus).unwrap();
    let gic = w.begin_node("interrupt-controller@2f000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_array_u64("reg", &[0x2f00_0000, 0x1_0000, 0x2f10_0000, gicr_size])
        .unwrap();
    w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
    w.end_node(gic).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn a_host_region_too_small_for_the_guests_redistributors() {
    let host = small_host(0x2_0000, &[], 0);
    let mem = [MemRegion::new(0x8000_0000, 0x1000_0000)];
    assert_eq!(
        derive(&host, &GuestPolicy::new(&mem, 2)),
        Err(Error::RedistributorRegionTooSmall {
            needed: 0x4_0000,
            available: 0x2_0000
        })
    );
    // Placed by the policy, the region may be anywhere.
    let guest = derive(
        &host,
        &GuestPolicy::new(&mem, 2).with_redistributor_base(0x3000_0000),
    );
    assert!(guest.is_ok());
}

#[test]
fn a_host_without_chosen_gets_one_and_reservations_outside_guest_memory_go() {
    let reservations = [
        FdtReserveEntry::new(0x8000_0000, 0x1000).unwrap(),
        FdtReserveEntry::new(0x8100_0000, 0x2000).unwrap(),
    ];
    let host = small_host(0x10_0000, &reservations, 1);
    let mem = [MemRegion::new(0x8080_0000, 0xf80_0000)];
    let guest = derive(
        &host,
        &GuestPolicy::new(&mem, 1).with_bootargs("console=hvc0"),
    )
    .unwrap();
    let fdt = Fdt::new(&guest).unwrap();
    let kept: Vec<(u64, u64)> = fdt
        .memory_reservations()
        .map(|r| (r.address(), r.size()))
        .collect();
    assert_eq!(kept, [(0x8100_0000, 0x2000)]);
    assert_eq!(fdt.boot_cpuid_phys(), 1);
    let chosen = fdt.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("bootargs").unwrap().value(),
        b"console=hvc0\0"
    );
    // Without anything to say, no /chosen is made up.
    let guest = derive(&host, &GuestPolicy::new(&mem, 1)).unwrap();
    assert!(Fdt::new(&guest).unwrap().find_node("/chosen").is_none());
}

#[test]
fn a_host_without_a_gic_or_memory() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    let cpu = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.end_node(cpu).unwrap();
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    let host = w.finish().unwrap();
    let ram = [RAM];
    assert_eq!(
        derive(&host, &GuestPolicy::new(&ram, 1)),
        Err(Error::MissingNode { node: "arm,gic-v3" })
    );
    assert!(matches!(
        derive(&[0u8; 64], &GuestPolicy::new(&ram, 1)),
        Err(Error::InvalidBlob { .. })
    ));
}

#[test]
fn truncated_fixtures_never_panic() {
    let ram = [RAM];
    let policy = GuestPolicy::new(&ram, 1).with_bootargs("x");
    for (_, dtb) in FIXTURES {
        for len in (0..dtb.len()).step_by(3) {
            assert!(derive(&dtb[..len], &policy).is_err());
            if len >= 40 {
                // With the header claiming the cut length, so parsing goes deeper.
                let mut cut = dtb[..len].to_vec();
                cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                let _ = derive(&cut, &policy);
            }
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let ram = [RAM];
    let policy = GuestPolicy::new(&ram, 2).with_initrd(MemRegion::new(0x4800_0000, 0x1000));
    let positions = (0..40).flat_map(|i| [(i, 0x01), (i, 0x80), (i, 0xff)]);
    for (i, flip) in positions.chain((40..SMP4_72.len()).step_by(7).map(|i| (i, 0xff))) {
        let mut bad = SMP4_72.to_vec();
        bad[i] ^= flip;
        if let Ok(guest) = derive(&bad, &policy) {
            // Whatever was accepted is a tree that validates.
            Fdt::new(&guest).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_corruption_never_panics(
        fixture in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u32>()), 1..6),
        vcpus in 1usize..3,
        its in any::<bool>(),
    ) {
        let mut bad = FIXTURES[fixture].1.to_vec();
        let cells = bad.len() / 4;
        for (at, value) in edits {
            let i = at.index(cells) * 4;
            bad[i..i + 4].copy_from_slice(&value.to_be_bytes());
        }
        let ram = [RAM];
        let policy = GuestPolicy::new(&ram, vcpus).with_its(its);
        if let Ok(guest) = derive(&bad, &policy) {
            prop_assert!(Fdt::new(&guest).is_ok());
        }
    }
}

/// A host with two ITSs (phandles 2 and 3), a PCI host bridge mapping bus 0 to the first and
/// bus 1 to the second, a platform device with `msi-parent` on the first and one with a
/// malformed `msi-parent` on the second.
fn two_its_host() -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let mem = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x2000_0000])
        .unwrap();
    w.end_node(mem).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    let cpu = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.end_node(cpu).unwrap();
    w.end_node(cpus).unwrap();
    let gic = w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    w.property_array_u64("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, 0xf6_0000])
        .unwrap();
    w.property_u32("phandle", 1).unwrap();
    for (i, base) in [(2u32, 0x0808_0000u64), (3, 0x0a08_0000)] {
        let its = w.begin_node(&format!("its@{base:x}")).unwrap();
        w.property_string("compatible", "arm,gic-v3-its").unwrap();
        w.property_null("msi-controller").unwrap();
        w.property_u32("#msi-cells", 1).unwrap();
        w.property_array_u64("reg", &[base, 0x2_0000]).unwrap();
        w.property_u32("phandle", i).unwrap();
        w.end_node(its).unwrap();
    }
    w.end_node(gic).unwrap();
    let pcie = w.begin_node("pcie@10000000").unwrap();
    w.property_string("device_type", "pci").unwrap();
    w.property_array_u32("msi-map", &[0, 2, 0, 0x100, 0x100, 3, 0, 0x100])
        .unwrap();
    w.property_u32("msi-map-mask", 0x1ff).unwrap();
    w.end_node(pcie).unwrap();
    let dev = w.begin_node("dev@9000000").unwrap();
    w.property_array_u32("msi-parent", &[2, 5]).unwrap();
    w.end_node(dev).unwrap();
    // Malformed: the ITS takes one specifier cell, this gives none.
    let dev = w.begin_node("dev@9100000").unwrap();
    w.property_u32("msi-parent", 3).unwrap();
    w.end_node(dev).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn msi_routing_loses_exactly_the_entries_of_removed_its() {
    let host = two_its_host();
    let ram = [RAM];
    let props =
        |guest: &[u8], path: &str| nodes(guest).into_iter().find(|(p, _)| p == path).unwrap().1;

    // The second ITS removed by the policy's list: only its msi-map entry goes.
    let remove = [NodeMatch::Path("/intc@8000000/its@a080000")];
    let guest = derive(
        &host,
        &GuestPolicy::new(&ram, 1)
            .with_its(true)
            .with_remove(&remove),
    )
    .unwrap();
    let pcie = props(&guest, "/pcie@10000000");
    assert_eq!(
        prop(&pcie, "msi-map").map(cells),
        Some(vec![0, 2, 0, 0x100])
    );
    assert_eq!(prop(&pcie, "msi-map-mask").map(cells), Some(vec![0x1ff]));
    assert_eq!(
        prop(&props(&guest, "/dev@9000000"), "msi-parent").map(cells),
        Some(vec![2, 5])
    );
    // The malformed one names the removed ITS: it goes rather than dangle.
    assert_eq!(prop(&props(&guest, "/dev@9100000"), "msi-parent"), None);
    let gic = GicDescription::from_fdt(&guest).unwrap();
    assert_eq!(gic.its().len(), 1);
    let host_bridge = gic.pci_hosts()[0];
    assert!(gic.device_for_rid(&host_bridge, 0x0010).is_ok());
    assert!(gic.device_for_rid(&host_bridge, 0x0110).is_err());

    // No ITS: the msi-map, its mask and the msi-parent all go.
    let guest = derive(&host, &GuestPolicy::new(&ram, 1)).unwrap();
    let pcie = props(&guest, "/pcie@10000000");
    assert_eq!(prop(&pcie, "msi-map"), None);
    assert_eq!(prop(&pcie, "msi-map-mask"), None);
    assert_eq!(prop(&props(&guest, "/dev@9000000"), "msi-parent"), None);
    assert!(GicDescription::from_fdt(&guest).unwrap().its().is_empty());
}
