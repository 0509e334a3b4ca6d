// SPDX-License-Identifier: MIT OR Apache-2.0
//! Discovery against QEMU's own device trees, crafted trees, and corrupted copies.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use vm_fdt::FdtWriter;

use super::*;

/// QEMU `virt` trees (fixtures/dtb/README.md): 7.2.22 and 10.0.2, gic-version 3 and 4, 1 and
/// 4 CPUs, with an NVMe device.
const FIXTURES: [(&str, &[u8]); 8] = [
    (
        "gicv3-smp1-7.2.22",
        include_bytes!("../../../fixtures/dtb/virt-gicv3-smp1-qemu7.2.22.dtb"),
    ),
    (
        "gicv3-smp4-7.2.22",
        include_bytes!("../../../fixtures/dtb/virt-gicv3-smp4-qemu7.2.22.dtb"),
    ),
    (
        "gicv4-smp1-7.2.22",
        include_bytes!("../../../fixtures/dtb/virt-gicv4-smp1-qemu7.2.22.dtb"),
    ),
    (
        "gicv4-smp4-7.2.22",
        include_bytes!("../../../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb"),
    ),
    (
        "gicv3-smp1-10.0.2",
        include_bytes!("../../../fixtures/dtb/virt-gicv3-smp1-qemu10.0.2.dtb"),
    ),
    (
        "gicv3-smp4-10.0.2",
        include_bytes!("../../../fixtures/dtb/virt-gicv3-smp4-qemu10.0.2.dtb"),
    ),
    (
        "gicv4-smp1-10.0.2",
        include_bytes!("../../../fixtures/dtb/virt-gicv4-smp1-qemu10.0.2.dtb"),
    ),
    (
        "gicv4-smp4-10.0.2",
        include_bytes!("../../../fixtures/dtb/virt-gicv4-smp4-qemu10.0.2.dtb"),
    ),
];

fn region(base: u64, size: u64) -> MmioRegion {
    MmioRegion::new(PhysAddr::new(base), size).unwrap()
}

#[test]
fn qemu_virt_gic_its_and_pci() {
    for (name, dtb) in FIXTURES {
        let gic = GicDescription::from_fdt(dtb).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(gic.distributor(), region(0x0800_0000, 0x1_0000), "{name}");
        assert_eq!(
            gic.redistributor_regions(),
            &[region(0x080a_0000, 0xf6_0000)],
            "{name}"
        );
        assert_eq!(gic.redistributor_stride(), None, "{name}");
        let maint = gic.maintenance_interrupt().expect("virtualization=on");
        assert_eq!(
            (maint.kind, maint.number, maint.flags),
            (GicIntKind::Ppi, 9, 4),
            "{name}"
        );
        assert_eq!(maint.intid(), IntId::new(25), "{name}");

        let its = gic.its();
        assert_eq!(its.len(), 1, "{name}");
        assert_eq!(its[0].region, region(0x0808_0000, 0x2_0000), "{name}");
        assert_eq!(its[0].translater(), PhysAddr::new(0x0809_0040), "{name}");
        let its_phandle = its[0].phandle.expect("the ITS has a phandle");
        assert_ne!(Some(its_phandle), gic.phandle(), "{name}");

        let hosts = gic.pci_hosts();
        assert_eq!(hosts.len(), 1, "{name}");
        let host = hosts[0];
        assert_eq!(host.name(), "pcie@10000000", "{name}");
        assert_eq!(host.domain(), Some(0), "{name}");
        assert_eq!(host.msi_map_mask(), u32::MAX, "{name}");
        assert!(host.has_msi());
        let map: Vec<_> = host.msi_map().collect();
        assert_eq!(
            map,
            [MsiMapEntry {
                rid_base: 0,
                msi_controller: its_phandle,
                msi_base: 0,
                length: 0x1_0000
            }],
            "{name}"
        );
        for rid in [0, 0x0008, 0x0010, 0x0100, 0xffff] {
            let (found, device) = gic.device_for_rid(&host, rid).unwrap();
            assert_eq!(found, its[0], "{name}");
            assert_eq!(device, DeviceId::new(u32::from(rid)), "{name}");
        }
    }
}

#[test]
fn phandles_are_qemus() {
    // QEMU hands out phandles from 0x8000 as it creates nodes: the clock, one per CPU, then
    // the GIC and its ITS.
    for (name, dtb) in FIXTURES {
        let cpus = if name.contains("smp4") { 4 } else { 1 };
        let gic = GicDescription::from_fdt(dtb).unwrap();
        assert_eq!(gic.phandle(), Some(0x8001 + cpus), "{name}");
        assert_eq!(gic.its()[0].phandle, Some(0x8002 + cpus), "{name}");
    }
}

#[test]
fn a_blob_in_a_larger_buffer_is_read_to_its_totalsize() {
    let dtb = FIXTURES[0].1;
    let mut padded = dtb.to_vec();
    padded.resize(dtb.len() + 4096, 0xa5);
    let gic = GicDescription::from_fdt(&padded).unwrap();
    assert_eq!(gic, GicDescription::from_fdt(dtb).unwrap());
}

/// GICR_TYPER as QEMU's redistributors report it for CPU `cpu` of `count` (Aff0 = cpu).
fn typer(cpu: u16, count: u16, vlpis: bool) -> GicrTyper {
    GicrTyper::new()
        .with_plpis(true)
        .with_vlpis(vlpis)
        .with_processor_number(cpu)
        .with_last(cpu + 1 == count)
        .with_affinity(u32::from(cpu))
}

/// Redistributors laid out `stride` apart from `base`; records every read.
struct FakeRedists {
    base: u64,
    stride: u64,
    typers: Vec<GicrTyper>,
    reads: Vec<u64>,
}

impl FakeRedists {
    fn new(base: u64, stride: u64, typers: Vec<GicrTyper>) -> Self {
        Self {
            base,
            stride,
            typers,
            reads: Vec::new(),
        }
    }

    fn read(&mut self, rd_base: PhysAddr) -> GicrTyper {
        let a = rd_base.get();
        self.reads.push(a);
        let offset = a - self.base;
        // Not an RD_base: reads of other frames see no redistributor (all zeroes).
        if !offset.is_multiple_of(self.stride) {
            return GicrTyper::new();
        }
        self.typers
            .get((offset / self.stride) as usize)
            .copied()
            .unwrap_or_default()
    }
}

const QEMU_GICR: u64 = 0x080a_0000;

fn walk_qemu(count: u16, vlpis: bool, stride: Option<u64>) -> (Vec<Redistributor>, Vec<u64>) {
    let step = if vlpis { 0x4_0000 } else { 0x2_0000 };
    let mut fake = FakeRedists::new(
        QEMU_GICR,
        step,
        (0..count).map(|c| typer(c, count, vlpis)).collect(),
    );
    let regions = [region(QEMU_GICR, 0xf6_0000)];
    let rds = RedistributorWalk::new(&regions, stride, |a| fake.read(a))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (rds, fake.reads)
}

#[test]
fn walk_one_and_four_cpus_with_and_without_vlpis() {
    for (count, vlpis, step) in [
        (1, false, 0x2_0000),
        (4, false, 0x2_0000),
        (1, true, 0x4_0000),
        (4, true, 0x4_0000),
    ] {
        let (rds, reads) = walk_qemu(count, vlpis, None);
        let bases: Vec<u64> = (0..u64::from(count))
            .map(|i| QEMU_GICR + i * step)
            .collect();
        assert_eq!(reads, bases, "{count} CPUs, VLPIS {vlpis}");
        assert_eq!(rds.len(), usize::from(count));
        for (i, rd) in rds.iter().enumerate() {
            assert_eq!(rd.base.get(), bases[i]);
            assert_eq!(rd.processor(), ProcessorNumber::new(i as u16));
            assert_eq!(rd.affinity(), i as u32);
            assert_eq!(rd.caps().vlpis, vlpis);
            assert_eq!(rd.caps().last, i + 1 == usize::from(count));
        }
    }
}

#[test]
fn four_vlpis_cpus_at_qemus_addresses() {
    let (rds, _) = walk_qemu(4, true, None);
    let bases: Vec<u64> = rds.iter().map(|r| r.base.get()).collect();
    assert_eq!(bases, [0x080a_0000, 0x080e_0000, 0x0812_0000, 0x0816_0000]);
}

#[test]
fn the_tree_stride_overrides_the_frame_count() {
    // A stride of 4 frames with VLPIS = 0 (padding pages): the walk steps by the stride.
    let mut fake = FakeRedists::new(
        QEMU_GICR,
        0x4_0000,
        (0..3).map(|c| typer(c, 3, false)).collect(),
    );
    let regions = [region(QEMU_GICR, 0x10_0000)];
    let rds = RedistributorWalk::new(&regions, Some(0x4_0000), |a| fake.read(a))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(rds.len(), 3);
    assert_eq!(fake.reads, [0x080a_0000, 0x080e_0000, 0x0812_0000]);
}

#[test]
fn a_stride_too_small_for_vlpis_is_refused() {
    let mut fake = FakeRedists::new(QEMU_GICR, 0x2_0000, vec![typer(0, 2, true)]);
    let regions = [region(QEMU_GICR, 0x10_0000)];
    let first = RedistributorWalk::new(&regions, Some(0x2_0000), |a| fake.read(a)).next();
    assert_eq!(
        first,
        Some(Err(DiscoverError::StrideTooSmall {
            stride: 0x2_0000,
            needed: 0x4_0000
        }))
    );
}

#[test]
fn walks_every_region_in_order() {
    // Two regions of two CPUs each, as a tree with #redistributor-regions = <2> gives them.
    let typers = |first: u16| {
        vec![
            typer(first, first + 2, false),
            typer(first + 1, first + 2, false),
        ]
    };
    let mut a = FakeRedists::new(0x1000_0000, 0x2_0000, typers(0));
    let mut b = FakeRedists::new(0x2000_0000, 0x2_0000, typers(2));
    let regions = [region(0x1000_0000, 0x4_0000), region(0x2000_0000, 0x8_0000)];
    let rds: Vec<_> = RedistributorWalk::new(&regions, None, |pa| {
        if pa.get() >= 0x2000_0000 {
            b.read(pa)
        } else {
            a.read(pa)
        }
    })
    .collect::<Result<_, _>>()
    .unwrap();
    let seen: Vec<(u64, u16)> = rds
        .iter()
        .map(|r| (r.base.get(), r.processor().get()))
        .collect();
    assert_eq!(
        seen,
        [
            (0x1000_0000, 0),
            (0x1002_0000, 1),
            (0x2000_0000, 2),
            (0x2002_0000, 3)
        ]
    );
}

#[test]
fn a_region_without_last_is_a_walk_past_its_end() {
    // Two redistributors fit, neither says Last: the walk stops at the region's end.
    let no_last = GicrTyper::new().with_plpis(true);
    let mut fake = FakeRedists::new(QEMU_GICR, 0x2_0000, vec![no_last; 8]);
    let regions = [region(QEMU_GICR, 0x4_0000)];
    let items: Vec<_> = RedistributorWalk::new(&regions, None, |a| fake.read(a)).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(
        items[1],
        Err(DiscoverError::WalkPastRegion {
            region_base: QEMU_GICR,
            region_size: 0x4_0000,
            frame: QEMU_GICR + 0x2_0000
        })
    );
    // The walk never read beyond the region.
    assert!(fake.reads.iter().all(|&r| r < QEMU_GICR + 0x4_0000));
}

#[test]
fn a_vlpis_redistributor_that_does_not_fit_is_refused() {
    // One 64 KiB region, one redistributor that needs 4 frames.
    let mut fake = FakeRedists::new(QEMU_GICR, 0x4_0000, vec![typer(0, 1, true)]);
    let regions = [region(QEMU_GICR, 0x2_0000)];
    let first = RedistributorWalk::new(&regions, None, |a| fake.read(a)).next();
    assert!(matches!(
        first,
        Some(Err(DiscoverError::WalkPastRegion { .. }))
    ));
}

#[test]
fn a_buffer_too_small_is_a_typed_error() {
    let gic = GicDescription::from_fdt(FIXTURES[3].1).unwrap();
    let mut fake = FakeRedists::new(
        QEMU_GICR,
        0x4_0000,
        (0..4).map(|c| typer(c, 4, true)).collect(),
    );
    let mut out = [Redistributor::default(); 2];
    assert_eq!(
        gic.walk_redistributors_into(|a| fake.read(a), &mut out),
        Err(DiscoverError::TooManyRedistributors { capacity: 2 })
    );
    let mut fake = FakeRedists::new(
        QEMU_GICR,
        0x4_0000,
        (0..4).map(|c| typer(c, 4, true)).collect(),
    );
    let mut out = [Redistributor::default(); 4];
    assert_eq!(
        gic.walk_redistributors_into(|a| fake.read(a), &mut out),
        Ok(4)
    );
    assert_eq!(out[3].base.get(), 0x0816_0000);
    assert_eq!(out[3].processor().get(), 3);
}

/// A tree: root with 2 address and 2 size cells, then `body` adds nodes.
fn tree(body: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    body(&mut w);
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A GIC node with `reg` cells and extra properties, and an ITS child at `its`.
fn gic_node(w: &mut FdtWriter, reg: &[u64], its: Option<u64>, extra: impl FnOnce(&mut FdtWriter)) {
    let gic = w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    w.property_array_u64("reg", reg).unwrap();
    w.property_u32("phandle", 1).unwrap();
    extra(w);
    if let Some(base) = its {
        let n = w.begin_node("its@8080000").unwrap();
        w.property_string("compatible", "arm,gic-v3-its").unwrap();
        w.property_null("msi-controller").unwrap();
        w.property_u32("#msi-cells", 1).unwrap();
        w.property_array_u64("reg", &[base, 0x2_0000]).unwrap();
        w.property_u32("phandle", 2).unwrap();
        w.end_node(n).unwrap();
    }
    w.end_node(gic).unwrap();
}

const GIC_REG: [u64; 4] = [0x0800_0000, 0x1_0000, 0x080a_0000, 0xf6_0000];

#[test]
fn a_tree_without_a_gic() {
    let dtb = tree(|_| {});
    assert_eq!(GicDescription::from_fdt(&dtb), Err(DiscoverError::NoGic));
    // A disabled GIC is no GIC.
    let dtb = tree(|w| {
        gic_node(w, &GIC_REG, None, |w| {
            w.property_string("status", "disabled").unwrap();
        });
    });
    assert_eq!(GicDescription::from_fdt(&dtb), Err(DiscoverError::NoGic));
}

#[test]
fn several_redistributor_regions_a_stride_and_no_maintenance_interrupt() {
    let dtb = tree(|w| {
        gic_node(
            w,
            &[
                0x0800_0000,
                0x1_0000,
                0x1000_0000,
                0x8_0000,
                0x2000_0000,
                0x4_0000,
                0x3000_0000,
                0x2000,
            ],
            None,
            |w| {
                w.property_u32("#redistributor-regions", 2).unwrap();
                w.property_u64("redistributor-stride", 0x4_0000).unwrap();
            },
        );
    });
    let gic = GicDescription::from_fdt(&dtb).unwrap();
    // The entry after the regions (a GICC in this binding) is not a region.
    assert_eq!(
        gic.redistributor_regions(),
        &[region(0x1000_0000, 0x8_0000), region(0x2000_0000, 0x4_0000)]
    );
    assert_eq!(gic.redistributor_stride(), Some(0x4_0000));
    assert_eq!(gic.maintenance_interrupt(), None);
    assert!(gic.its().is_empty());
}

#[test]
fn malformed_gic_properties() {
    type Case = (&'static [u64], fn(&mut FdtWriter), DiscoverError);
    let cases: [Case; 5] = [
        // Only the GICD.
        (
            &GIC_REG[..2],
            |_| {},
            DiscoverError::MalformedReg { node: DtNode::Gic },
        ),
        // Two regions announced, one given.
        (
            &GIC_REG,
            |w| w.property_u32("#redistributor-regions", 2).unwrap(),
            DiscoverError::MalformedReg { node: DtNode::Gic },
        ),
        (
            &GIC_REG,
            |w| w.property_u32("#redistributor-regions", 0).unwrap(),
            DiscoverError::MalformedProperty {
                node: DtNode::Gic,
                property: "#redistributor-regions",
            },
        ),
        (
            &GIC_REG,
            |w| w.property_u64("redistributor-stride", 0x1_8000).unwrap(),
            DiscoverError::MalformedProperty {
                node: DtNode::Gic,
                property: "redistributor-stride",
            },
        ),
        (
            &GIC_REG,
            |w| w.property_array_u32("interrupts", &[1, 16, 4]).unwrap(),
            DiscoverError::MalformedProperty {
                node: DtNode::Gic,
                property: "interrupts",
            },
        ),
    ];
    for (reg, extra, want) in cases {
        let dtb = tree(|w| gic_node(w, reg, None, extra));
        assert_eq!(GicDescription::from_fdt(&dtb), Err(want));
    }
    // A zero-sized GICD.
    let dtb = tree(|w| gic_node(w, &[0x0800_0000, 0, 0x080a_0000, 0x2_0000], None, |_| {}));
    assert_eq!(
        GicDescription::from_fdt(&dtb),
        Err(DiscoverError::MalformedReg { node: DtNode::Gic })
    );
    // A reg that is not whole entries.
    let dtb = tree(|w| {
        let n = w.begin_node("intc@0").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_array_u32("reg", &[0, 0x0800_0000, 0]).unwrap();
        w.end_node(n).unwrap();
    });
    assert_eq!(
        GicDescription::from_fdt(&dtb),
        Err(DiscoverError::MalformedReg { node: DtNode::Gic })
    );
}

#[test]
fn addresses_are_translated_through_bus_ranges() {
    // The GIC under a bus with one address cell that maps child 0 to 0x4000_0000, and an
    // ITS under the GIC whose own ranges are the identity.
    let dtb = tree(|w| {
        let soc = w.begin_node("soc").unwrap();
        w.property_string("compatible", "simple-bus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_array_u32("ranges", &[0, 0, 0x4000_0000, 0x1000_0000])
            .unwrap();
        let gic = w.begin_node("intc@800000").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_null("ranges").unwrap();
        w.property_array_u32("reg", &[0x80_0000, 0x1_0000, 0xa0_0000, 0x4_0000])
            .unwrap();
        w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
        let its = w.begin_node("its@880000").unwrap();
        w.property_string("compatible", "arm,gic-v3-its").unwrap();
        w.property_null("msi-controller").unwrap();
        w.property_array_u32("reg", &[0x88_0000, 0x2_0000]).unwrap();
        w.end_node(its).unwrap();
        w.end_node(gic).unwrap();
        w.end_node(soc).unwrap();
    });
    let gic = GicDescription::from_fdt(&dtb).unwrap();
    assert_eq!(gic.distributor(), region(0x4080_0000, 0x1_0000));
    assert_eq!(
        gic.redistributor_regions(),
        &[region(0x40a0_0000, 0x4_0000)]
    );
    assert_eq!(gic.its()[0].region, region(0x4088_0000, 0x2_0000));
    assert_eq!(gic.its()[0].phandle, None);
}

#[test]
fn an_address_outside_every_range_or_under_a_bus_without_ranges() {
    for ranges in [Some(&[0u32, 0, 0x4000_0000, 0x10_0000][..]), None] {
        let dtb = tree(|w| {
            let soc = w.begin_node("soc").unwrap();
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 1).unwrap();
            if let Some(r) = ranges {
                w.property_array_u32("ranges", r).unwrap();
            }
            let gic = w.begin_node("intc@800000").unwrap();
            w.property_string("compatible", "arm,gic-v3").unwrap();
            w.property_array_u32("reg", &[0x80_0000, 0x1_0000, 0xa0_0000, 0x4_0000])
                .unwrap();
            w.end_node(gic).unwrap();
            w.end_node(soc).unwrap();
        });
        assert_eq!(
            GicDescription::from_fdt(&dtb),
            Err(DiscoverError::Untranslatable {
                node: DtNode::Gic,
                address: 0x80_0000
            }),
            "ranges {ranges:?}"
        );
    }
}

#[test]
fn its_children_without_msi_controller_or_disabled_are_skipped() {
    let dtb = tree(|w| {
        gic_node(w, &GIC_REG, Some(0x0808_0000), |w| {
            for (name, base, status, msi) in [
                ("its@9000000", 0x0900_0000u64, None, false),
                ("its@9100000", 0x0910_0000, Some("disabled"), true),
                ("its@9200000", 0x0920_0000, Some("okay"), true),
            ] {
                let n = w.begin_node(name).unwrap();
                w.property_string("compatible", "arm,gic-v3-its").unwrap();
                if msi {
                    w.property_null("msi-controller").unwrap();
                }
                if let Some(s) = status {
                    w.property_string("status", s).unwrap();
                }
                w.property_array_u64("reg", &[base, 0x2_0000]).unwrap();
                w.end_node(n).unwrap();
            }
        });
    });
    let gic = GicDescription::from_fdt(&dtb).unwrap();
    let bases: Vec<u64> = gic.its().iter().map(|i| i.region.base().get()).collect();
    assert_eq!(bases, [0x0920_0000, 0x0808_0000]);
}

/// A PCI host bridge with the given MSI properties.
fn pci_node(w: &mut FdtWriter, name: &str, props: impl FnOnce(&mut FdtWriter)) {
    let n = w.begin_node(name).unwrap();
    w.property_string("device_type", "pci").unwrap();
    w.property_string("compatible", "pci-host-ecam-generic")
        .unwrap();
    props(w);
    w.end_node(n).unwrap();
}

#[test]
fn msi_map_with_mask_offsets_and_several_entries() {
    let dtb = tree(|w| {
        gic_node(w, &GIC_REG, Some(0x0808_0000), |_| {});
        pci_node(w, "pcie@10000000", |w| {
            // Bus 0 -> DeviceIDs 0x1000.., bus 1 -> the unknown controller 7.
            w.property_array_u32("msi-map", &[0x000, 2, 0x1000, 0x100, 0x100, 7, 0, 0x100])
                .unwrap();
            w.property_u32("msi-map-mask", 0x1ff).unwrap();
        });
        pci_node(w, "pcie@20000000", |w| {
            w.property_u32("msi-parent", 2).unwrap()
        });
        pci_node(w, "pcie@30000000", |_| {});
    });
    let gic = GicDescription::from_fdt(&dtb).unwrap();
    let [a, b, c] = gic.pci_hosts() else {
        panic!("three host bridges")
    };
    assert_eq!(a.msi_map_mask(), 0x1ff);
    assert_eq!(a.msi_map().count(), 2);
    // 0x0208 masked is 0x008: the first entry, offset 8.
    let (its, dev) = gic.device_for_rid(a, 0x0208).unwrap();
    assert_eq!(
        (its.region.base().get(), dev),
        (0x0808_0000, DeviceId::new(0x1008))
    );
    assert_eq!(
        gic.device_for_rid(a, 0x0108),
        Err(DiscoverError::UnknownMsiController { phandle: 7 })
    );
    assert_eq!(a.map_rid(0x0108), Ok((7, DeviceId::new(8))));
    // msi-parent alone: the identity.
    assert_eq!(
        gic.device_for_rid(b, 0xbeef).map(|(_, d)| d),
        Ok(DeviceId::new(0xbeef))
    );
    // No MSI at all.
    assert!(!c.has_msi());
    assert_eq!(
        gic.device_for_rid(c, 0),
        Err(DiscoverError::RidNotMapped { rid: 0 })
    );
}

#[test]
fn a_rid_outside_the_map_is_not_mapped() {
    let dtb = tree(|w| {
        gic_node(w, &GIC_REG, Some(0x0808_0000), |_| {});
        pci_node(w, "pcie@10000000", |w| {
            w.property_array_u32("msi-map", &[0x100, 2, 0, 0x100])
                .unwrap();
        });
    });
    let gic = GicDescription::from_fdt(&dtb).unwrap();
    let host = gic.pci_hosts()[0];
    assert_eq!(
        gic.device_for_rid(&host, 0x1ff).map(|(_, d)| d),
        Ok(DeviceId::new(0xff))
    );
    assert_eq!(
        gic.device_for_rid(&host, 0xff),
        Err(DiscoverError::RidNotMapped { rid: 0xff })
    );
    assert_eq!(
        gic.device_for_rid(&host, 0x200),
        Err(DiscoverError::RidNotMapped { rid: 0x200 })
    );
}

#[test]
fn malformed_msi_maps() {
    let malformed = DiscoverError::MalformedProperty {
        node: DtNode::PciHost,
        property: "msi-map",
    };
    for map in [
        &[0u32, 2, 0][..],           // not a whole entry
        &[0, 2, 0, 0],               // empty range
        &[0xffff_ff00, 2, 0, 0x200], // RIDs past 2^32
        &[0, 2, 0xffff_ff00, 0x200], // DeviceIDs past 2^32
    ] {
        let dtb = tree(|w| {
            gic_node(w, &GIC_REG, Some(0x0808_0000), |_| {});
            pci_node(w, "pcie@10000000", |w| {
                w.property_array_u32("msi-map", map).unwrap()
            });
        });
        assert_eq!(GicDescription::from_fdt(&dtb), Err(malformed), "{map:x?}");
    }
}

#[test]
fn capacity_and_depth_limits() {
    let dtb = tree(|w| {
        gic_node(w, &GIC_REG, None, |_| {});
        for i in 0..=MAX_PCI_HOSTS {
            pci_node(w, &std::format!("pcie@{i:x}"), |_| {});
        }
    });
    assert_eq!(
        GicDescription::from_fdt(&dtb),
        Err(DiscoverError::TooMany {
            node: DtNode::PciHost,
            capacity: MAX_PCI_HOSTS
        })
    );

    let mut reg = Vec::from(&GIC_REG[..2]);
    for i in 0..=MAX_REDISTRIBUTOR_REGIONS as u64 {
        reg.extend([0x1000_0000 + i * 0x10_0000, 0x2_0000]);
    }
    let dtb = tree(|w| {
        gic_node(w, &reg, None, |w| {
            w.property_u32(
                "#redistributor-regions",
                MAX_REDISTRIBUTOR_REGIONS as u32 + 1,
            )
            .unwrap();
        });
    });
    assert_eq!(
        GicDescription::from_fdt(&dtb),
        Err(DiscoverError::TooMany {
            node: DtNode::Gic,
            capacity: MAX_REDISTRIBUTOR_REGIONS
        })
    );

    // Nested 40 deep (the writer allows 64) before the GIC would be found.
    let dtb = tree(|w| {
        let mut open = Vec::new();
        for _ in 0..40 {
            open.push(w.begin_node("bus").unwrap());
        }
        while let Some(n) = open.pop() {
            w.end_node(n).unwrap();
        }
        gic_node(w, &GIC_REG, None, |_| {});
    });
    assert_eq!(
        GicDescription::from_fdt(&dtb),
        Err(DiscoverError::TooDeep { limit: MAX_DEPTH })
    );
}

#[test]
fn interrupt_specifiers() {
    for (cells, intid) in [
        ((0, 0, 4), Some(32)),
        ((0, 987, 4), Some(1019)),
        ((0, 988, 4), None),
        ((1, 15, 4), Some(31)),
        ((1, 16, 4), None),
        ((2, 0, 1), Some(4096)),
        ((2, 1023, 1), Some(5119)),
        ((3, 63, 4), Some(1119)),
        ((3, 64, 4), None),
        ((4, 0, 0), None),
    ] {
        let got = GicInterrupt::from_cells(cells.0, cells.1, cells.2).map(|i| i.intid().get());
        assert_eq!(got, intid, "{cells:?}");
    }
}

/// Header fields of a fixture: (offset of the field, value).
fn header_u32(dtb: &[u8], index: usize) -> u32 {
    u32::from_be_bytes(dtb[index * 4..index * 4 + 4].try_into().unwrap())
}

fn set_header_u32(dtb: &mut [u8], index: usize, value: u32) {
    dtb[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
}

/// Runs discovery and, when it succeeds, everything that reads what it found.
fn exercise(dtb: &[u8]) {
    if let Ok(gic) = GicDescription::from_fdt(dtb) {
        for host in gic.pci_hosts() {
            let _ = host.msi_map().count();
            for rid in [0, 0x10, 0xffff] {
                let _ = gic.device_for_rid(host, rid);
            }
        }
        let mut out = [Redistributor::default(); 4];
        let _ =
            gic.walk_redistributors_into(|a| typer((a.get() >> 17) as u16 & 3, 4, true), &mut out);
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for (_, dtb) in FIXTURES {
        for len in 0..dtb.len() {
            // As cut, and with the header claiming the cut length (so parsing goes deeper).
            exercise(&dtb[..len]);
            if len >= 40 {
                let mut cut = dtb[..len].to_vec();
                set_header_u32(&mut cut, 1, len as u32);
                let strings_off = header_u32(&cut, 3) as usize;
                if strings_off <= len {
                    set_header_u32(&mut cut, 8, (len - strings_off) as u32);
                }
                exercise(&cut);
            }
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    // Every header byte three ways, then a byte in every 13 across the whole blob (a debug
    // build reads a valid tree in milliseconds; the proptest below adds random cells).
    let dtb = FIXTURES[3].1;
    let positions = (0..40).flat_map(|i| [(i, 0x01), (i, 0x80), (i, 0xff)]);
    for (i, flip) in positions.chain((40..dtb.len()).step_by(13).map(|i| (i, 0xff))) {
        let mut bad = dtb.to_vec();
        bad[i] ^= flip;
        exercise(&bad);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_corruption_never_panics(
        fixture in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u32>()), 1..8),
    ) {
        let mut bad = FIXTURES[fixture].1.to_vec();
        // Overwrite aligned cells: tokens, lengths, offsets and cell values all live there.
        let cells = bad.len() / 4;
        for (at, value) in edits {
            let i = at.index(cells) * 4;
            bad[i..i + 4].copy_from_slice(&value.to_be_bytes());
        }
        exercise(&bad);
    }

    #[test]
    fn the_walk_is_bounded_for_any_registers(
        size_frames in 1u64..64,
        stride_frames in proptest::option::of(1u64..8),
        values in proptest::collection::vec(any::<u64>(), 1..64),
    ) {
        let regions = [region(QEMU_GICR, size_frames * GICR_FRAME_SIZE)];
        let mut reads = 0usize;
        let walk = RedistributorWalk::new(
            &regions,
            stride_frames.map(|f| f * GICR_FRAME_SIZE),
            |a| {
                reads += 1;
                let i = ((a.get() - QEMU_GICR) / GICR_FRAME_SIZE) as usize;
                GicrTyper::from(values[i % values.len()])
            },
        );
        let items: Vec<_> = walk.collect();
        // At most one read per frame, every yielded base inside the region, and an error
        // only as the last item.
        prop_assert!(items.len() as u64 <= size_frames);
        for (i, item) in items.iter().enumerate() {
            match item {
                Ok(rd) => prop_assert!(rd.base.get() < QEMU_GICR + size_frames * GICR_FRAME_SIZE),
                Err(_) => prop_assert_eq!(i + 1, items.len()),
            }
        }
        prop_assert!(reads as u64 <= size_frames);
    }
}
