// SPDX-License-Identifier: MIT OR Apache-2.0
//! Which properties refer to other nodes by phandle, and where in their value.
//!
//! The flattened format does not say which cells are phandles: each binding does. This
//! module knows the common ones (Devicetree Specification, "interrupt-parent",
//! "interrupts-extended", "interrupt-map"; the clock, GPIO, reset, power-domain, DMA, IOMMU,
//! MSI, PHY, PWM and mailbox bindings' `<phandle specifier>` lists; msi-map and iommu-map;
//! cpu-map's `cpu`). A value it cannot follow to the end (a target without its `#*-cells`)
//! is followed as far as it can be.

use alloc::vec::Vec;
use core::ops::Range;

use dtoolkit::fdt::FdtNode;
use dtoolkit::{Node, Property};

/// How a property's value refers to nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refs {
    /// One phandle.
    Single,
    /// A list of phandles.
    List,
    /// `<phandle specifier>` entries; the specifier has the target's `#...-cells` cells.
    Specifier(&'static str),
    /// 4-cell entries `<id-base phandle specifier-base length>` (msi-map, iommu-map).
    Map,
    /// interrupt-map entries.
    InterruptMap,
}

/// How the property `name` refers to nodes, if it does.
pub(crate) fn kind(name: &str) -> Option<Refs> {
    Some(match name {
        "interrupt-parent" | "cpu" | "phy-handle" | "next-level-cache" => Refs::Single,
        "interrupt-affinity" | "memory-region" | "cpu-idle-states" => Refs::List,
        "clocks" | "assigned-clocks" | "assigned-clock-parents" => Refs::Specifier("#clock-cells"),
        "resets" => Refs::Specifier("#reset-cells"),
        "power-domains" => Refs::Specifier("#power-domain-cells"),
        "dmas" => Refs::Specifier("#dma-cells"),
        "iommus" => Refs::Specifier("#iommu-cells"),
        "msi-parent" => Refs::Specifier("#msi-cells"),
        "interrupts-extended" => Refs::Specifier("#interrupt-cells"),
        "phys" => Refs::Specifier("#phy-cells"),
        "pwms" => Refs::Specifier("#pwm-cells"),
        "mboxes" => Refs::Specifier("#mbox-cells"),
        "io-channels" => Refs::Specifier("#io-channel-cells"),
        "thermal-sensors" => Refs::Specifier("#thermal-sensor-cells"),
        "msi-map" | "iommu-map" => Refs::Map,
        "interrupt-map" => Refs::InterruptMap,
        _ if !name.starts_with('#')
            && (name == "gpios" || name.ends_with("-gpios") || name.ends_with("-gpio")) =>
        {
            Refs::Specifier("#gpio-cells")
        }
        _ => return None,
    })
}

/// The big-endian cell at `index`.
pub(crate) fn cell(value: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let bytes = value.get(start..start.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// A cell-count property (`#clock-cells`) of `node`.
fn cells_of(node: &FdtNode<'_>, name: &str) -> Option<usize> {
    let v = node.property(name)?.value_as::<u32>().ok()?;
    // No binding has anywhere near this many; a larger value is not a count.
    (v <= 16).then_some(v as usize)
}

/// The entries of `value` (of property kind `refs`, in `node`): each entry's phandle and byte
/// range. `target` finds a node by phandle. Stops at the first entry it cannot follow.
pub(crate) fn entries<'a>(
    refs: Refs,
    value: &[u8],
    node: &FdtNode<'a>,
    target: impl Fn(u32) -> Option<FdtNode<'a>>,
) -> Vec<(u32, Range<usize>)> {
    let mut out = Vec::new();
    let cells = value.len() / 4;
    let mut at = 0;
    while at < cells {
        let Some(len) = entry_cells(refs, value, at, node, &target) else {
            break;
        };
        let (Some(phandle), Some(end)) = (phandle_in(refs, value, at, node), at.checked_add(len))
        else {
            break;
        };
        if end > cells || len == 0 {
            break;
        }
        out.push((phandle, at * 4..end * 4));
        at = end;
    }
    out
}

/// Where the phandle of the entry starting at cell `at` is.
fn phandle_in(refs: Refs, value: &[u8], at: usize, node: &FdtNode<'_>) -> Option<u32> {
    match refs {
        Refs::Single | Refs::List | Refs::Specifier(_) => cell(value, at),
        Refs::Map => cell(value, at + 1),
        Refs::InterruptMap => cell(value, at + child_cells(node)?),
    }
}

/// The cells of an interrupt-map entry before the parent phandle: the node's unit address
/// (`#address-cells`, 2 when absent) and interrupt specifier (`#interrupt-cells`).
fn child_cells(node: &FdtNode<'_>) -> Option<usize> {
    let address = cells_of(node, "#address-cells").unwrap_or(2);
    Some(address + cells_of(node, "#interrupt-cells")?)
}

/// How many cells the entry starting at cell `at` has.
fn entry_cells<'a>(
    refs: Refs,
    value: &[u8],
    at: usize,
    node: &FdtNode<'a>,
    target: &impl Fn(u32) -> Option<FdtNode<'a>>,
) -> Option<usize> {
    match refs {
        Refs::Single => (value.len() == 4).then_some(1),
        Refs::List => Some(1),
        Refs::Map => Some(4),
        Refs::Specifier(cells) => {
            let parent = target(cell(value, at)?)?;
            // An MSI controller without #msi-cells takes a specifier of no cells.
            let default = (cells == "#msi-cells").then_some(0);
            Some(1 + cells_of(&parent, cells).or(default)?)
        }
        Refs::InterruptMap => {
            let child = child_cells(node)?;
            let parent = target(cell(value, at + child)?)?;
            // The parent's unit address has its #address-cells, 0 when it has none.
            let address = cells_of(&parent, "#address-cells").unwrap_or(0);
            Some(child + 1 + address + cells_of(&parent, "#interrupt-cells")?)
        }
    }
}

#[cfg(test)]
mod tests {
    use dtoolkit::fdt::Fdt;

    use super::*;

    const QEMU: &[u8] = include_bytes!("../../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb");

    fn entries_of(path: &str, property: &str) -> Vec<(u32, Range<usize>)> {
        let fdt = Fdt::new(QEMU).unwrap();
        let node = fdt.find_node(path).unwrap();
        let value = node.property(property).unwrap().value().to_vec();
        let target = |phandle: u32| {
            let mut found = None;
            let mut stack = alloc::vec![fdt.root()];
            while let Some(n) = stack.pop() {
                if n.property("phandle").and_then(|p| p.value_as::<u32>().ok()) == Some(phandle) {
                    found = Some(n);
                }
                stack.extend(n.children());
            }
            found
        };
        entries(kind(property).unwrap(), &value, &node, target)
    }

    #[test]
    fn qemus_interrupt_map_has_sixteen_ten_cell_entries_naming_the_gic() {
        let e = entries_of("/pcie@10000000", "interrupt-map");
        assert_eq!(e.len(), 16);
        assert!(e.iter().all(|(p, r)| *p == 0x8005 && r.len() == 40));
        assert_eq!(e[15].1, 600..640);
    }

    #[test]
    fn specifier_lists_follow_the_targets_cell_counts() {
        // gpios = <&pl061 3 0>: #gpio-cells = <2>.
        assert_eq!(
            entries_of("/gpio-keys/poweroff", "gpios"),
            [(0x8007, 0..12)]
        );
        // clocks = <&apb_pclk &apb_pclk>: #clock-cells = <0>.
        assert_eq!(
            entries_of("/pl011@9000000", "clocks"),
            [(0x8000, 0..4), (0x8000, 4..8)]
        );
        assert_eq!(entries_of("/pcie@10000000", "msi-map"), [(0x8006, 0..16)]);
        assert_eq!(
            entries_of("/cpus/cpu-map/socket0/cluster0/core3", "cpu"),
            [(0x8001, 0..4)]
        );
    }

    #[test]
    fn reference_kinds() {
        assert_eq!(kind("reset-gpios"), Some(Refs::Specifier("#gpio-cells")));
        assert_eq!(kind("#gpio-cells"), None);
        assert_eq!(kind("interrupts"), None);
        assert_eq!(kind("msi-parent"), Some(Refs::Specifier("#msi-cells")));
    }

    #[test]
    fn a_value_it_cannot_follow_stops_early() {
        let fdt = Fdt::new(QEMU).unwrap();
        let node = fdt.root();
        // A phandle no node has: nothing can be said about the cells after it.
        let value = [0u8, 0, 0x99, 0x99, 0, 0, 0, 1];
        assert!(entries(Refs::Specifier("#clock-cells"), &value, &node, |_| None).is_empty());
        // A single phandle of the wrong length is not one.
        assert!(entries(Refs::Single, &value, &node, |_| None).is_empty());
    }
}
