// SPDX-License-Identifier: MIT OR Apache-2.0
//! The derivation: a plan over the host's nodes, then a copy that applies it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dtoolkit::fdt::{Fdt, FdtNode, FdtProperty};
use dtoolkit::standard::NodeStandard;
use dtoolkit::{Node, Property};
use vm_fdt::{FdtReserveEntry, FdtWriter};

use crate::error::Error;
use crate::policy::{GuestPolicy, MemRegion, NodeMatch, REMOVED_BY_DEFAULT};
use crate::refs::{self, Refs};

/// How deep the host tree may nest (the root is depth 0); deeper trees are refused.
pub const MAX_DEPTH: usize = 32;

/// The guest-physical span of one of the guest's redistributors: 2 frames of 64 KiB
/// (RD_base and SGI_base; GICR_TYPER.VLPIS = 0).
pub const REDISTRIBUTOR_SIZE: u64 = 0x2_0000;

/// What a node is to the derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Plain,
    Root,
    /// A memory node (`device_type = "memory"` or named `memory`) under the root.
    Memory,
    Cpus,
    /// A CPU node under `/cpus`, the n-th.
    Cpu(usize),
    /// `/cpus/cpu-map` or a node below it.
    CpuMap,
    Chosen,
    Gic,
    Its,
    Psci,
    /// `/aliases` or `/__symbols__`: properties whose values are paths.
    Paths,
}

/// One host node and what becomes of it.
struct Planned<'a> {
    node: FdtNode<'a>,
    parent: Option<usize>,
    path: String,
    role: Role,
    removed: bool,
    /// The index after this node's subtree (nodes are numbered depth first).
    end: usize,
}

/// The host tree's nodes in depth-first order, with what the guest keeps of them.
struct Plan<'a, 'p> {
    policy: &'p GuestPolicy<'p>,
    nodes: Vec<Planned<'a>>,
    /// Every node with a phandle, by phandle.
    phandles: BTreeMap<u32, usize>,
    /// The phandles of removed nodes.
    removed_phandles: BTreeSet<u32>,
    /// The paths of removed subtrees' roots.
    removed_paths: Vec<String>,
    cpus: usize,
    memory: Option<usize>,
    gic: Option<usize>,
    chosen: Option<usize>,
}

/// Checks `dtb` (cut to its header's `totalsize`) is a flattened device tree, as the GIC's
/// discovery does.
pub(crate) fn open(dtb: &[u8]) -> Result<Fdt<'_>, Error> {
    its_core::discover::open_blob(dtb).map_err(|reason| Error::InvalidBlob { reason })
}

/// A property's value, borrowed from the blob.
fn raw<'a>(property: &FdtProperty<'a>) -> &'a [u8] {
    property.value_as::<&'a [u8]>().unwrap_or(&[])
}

fn prop<'a>(node: &FdtNode<'a>, name: &str) -> Option<&'a [u8]> {
    node.property(name).map(|p| raw(&p))
}

fn strings(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == 0).filter(|s| !s.is_empty())
}

fn is_compatible(node: &FdtNode<'_>, with: &str) -> bool {
    prop(node, "compatible").is_some_and(|c| strings(c).any(|s| s == with.as_bytes()))
}

fn available(node: &FdtNode<'_>) -> bool {
    prop(node, "status").is_none_or(|s| s == b"okay\0" || s == b"ok\0")
}

fn phandle_of(node: &FdtNode<'_>) -> Option<u32> {
    let v = prop(node, "phandle").or_else(|| prop(node, "linux,phandle"))?;
    (v.len() == 4).then(|| refs::cell(v, 0)).flatten()
}

/// A node's `#address-cells` or `#size-cells`, bounded to what this crate writes.
fn cells(node: &FdtNode<'_>, size: bool) -> Result<u32, Error> {
    let (v, property) = if size {
        (node.size_cells(), "#size-cells")
    } else {
        (node.address_cells(), "#address-cells")
    };
    v.ok()
        .filter(|c| (1..=4).contains(c))
        .ok_or(Error::MalformedProperty { property })
}

/// Appends `value` as `cells` big-endian cells.
fn push_cells(out: &mut Vec<u8>, value: u64, cells: u32) -> Result<(), Error> {
    if cells == 1 {
        let v = u32::try_from(value).map_err(|_| Error::DoesNotFit { value, cells })?;
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        for _ in 2..cells {
            out.extend_from_slice(&[0; 4]);
        }
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// The `reg` entries of `node` as (address, size); `property` names the error.
fn reg_entries(node: &FdtNode<'_>) -> Result<Vec<(u64, u64)>, Error> {
    let malformed = Error::MalformedProperty { property: "reg" };
    let reg = node.reg().map_err(|_| malformed)?.ok_or(malformed)?;
    reg.map(|r| {
        Ok((
            r.address::<u64>().map_err(|_| malformed)?,
            r.size::<u64>().map_err(|_| malformed)?,
        ))
    })
    .collect()
}

fn name_matches(node_name: &str, pattern: &str) -> bool {
    if pattern.contains('@') {
        node_name == pattern
    } else {
        node_name.split('@').next() == Some(pattern)
    }
}

impl<'a, 'p> Plan<'a, 'p> {
    fn new(fdt: Fdt<'a>, policy: &'p GuestPolicy<'p>) -> Result<Self, Error> {
        let mut plan = Self {
            policy,
            nodes: Vec::new(),
            phandles: BTreeMap::new(),
            removed_phandles: BTreeSet::new(),
            removed_paths: Vec::new(),
            cpus: 0,
            memory: None,
            gic: None,
            chosen: None,
        };
        plan.visit(fdt.root(), None, 0)?;
        plan.decide()?;
        plan.trim_cpu_map();
        plan.check_required()?;
        for n in &plan.nodes {
            if n.removed {
                if let Some(p) = phandle_of(&n.node) {
                    plan.removed_phandles.insert(p);
                }
                if n.parent.is_none_or(|p| !plan.nodes[p].removed) {
                    plan.removed_paths.push(n.path.clone());
                }
            }
        }
        plan.check_references()?;
        Ok(plan)
    }

    /// Numbers the nodes depth first and gives each its role.
    fn visit(
        &mut self,
        node: FdtNode<'a>,
        parent: Option<usize>,
        depth: usize,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { limit: MAX_DEPTH });
        }
        let index = self.nodes.len();
        let name = node.name();
        let parent_role = parent.map(|p| self.nodes[p].role);
        let path = match parent {
            None => String::from("/"),
            Some(0) => format!("/{name}"),
            Some(p) => format!("{}/{name}", self.nodes[p].path),
        };
        let base_name = name.split('@').next().unwrap_or(name);
        let role = match (depth, parent_role) {
            (0, _) => Role::Root,
            (1, _) if base_name == "memory" || prop(&node, "device_type") == Some(b"memory\0") => {
                Role::Memory
            }
            (1, _) if name == "cpus" => Role::Cpus,
            (1, _) if name == "chosen" => Role::Chosen,
            (1, _) if name == "aliases" || name == "__symbols__" => Role::Paths,
            (_, Some(Role::Cpus)) if prop(&node, "device_type") == Some(b"cpu\0") => {
                self.cpus += 1;
                Role::Cpu(self.cpus - 1)
            }
            (_, Some(Role::Cpus)) if name == "cpu-map" => Role::CpuMap,
            (_, Some(Role::CpuMap)) => Role::CpuMap,
            _ if self.gic.is_none() && available(&node) && is_compatible(&node, "arm,gic-v3") => {
                Role::Gic
            }
            _ if is_compatible(&node, "arm,gic-v3-its") => Role::Its,
            _ if prop(&node, "compatible")
                .is_some_and(|c| strings(c).any(|s| s.starts_with(b"arm,psci"))) =>
            {
                Role::Psci
            }
            _ => Role::Plain,
        };
        match role {
            Role::Memory if self.memory.is_none() => self.memory = Some(index),
            Role::Gic => self.gic = Some(index),
            Role::Chosen => self.chosen = Some(index),
            _ => {}
        }
        if let Some(p) = phandle_of(&node) {
            self.phandles.insert(p, index);
        }
        self.nodes.push(Planned {
            node,
            parent,
            path,
            role,
            removed: false,
            end: index + 1,
        });
        for child in node.children() {
            self.visit(child, Some(index), depth + 1)?;
        }
        let end = self.nodes.len();
        self.nodes[index].end = end;
        Ok(())
    }

    fn matches(&self, n: &Planned<'a>, m: &NodeMatch<'_>) -> bool {
        match *m {
            NodeMatch::Path(path) => n.path == path,
            NodeMatch::Name(name) => n.parent.is_some() && name_matches(n.node.name(), name),
            NodeMatch::Compatible(c) => is_compatible(&n.node, c),
        }
    }

    /// Whether a virtio-mmio transport is not among those the policy keeps.
    fn unlisted_virtio(&self, n: &Planned<'a>) -> bool {
        if !is_compatible(&n.node, "virtio,mmio") {
            return false;
        }
        let base = reg_entries(&n.node)
            .ok()
            .and_then(|r| r.first().map(|(a, _)| *a));
        !base.is_some_and(|b| self.policy.virtio_mmio_kept.contains(&b))
    }

    /// Marks removed nodes, parents before children.
    fn decide(&mut self) -> Result<(), Error> {
        let policy = self.policy;
        if policy.vcpus == 0 || policy.vcpus > self.cpus {
            return Err(Error::VcpuCount {
                requested: policy.vcpus,
                available: self.cpus,
            });
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let named = (REMOVED_BY_DEFAULT
                .iter()
                .chain(policy.remove)
                .any(|m| self.matches(n, m))
                || self.unlisted_virtio(n))
                && !policy.keep.iter().any(|m| self.matches(n, m));
            if named {
                let required = match n.role {
                    Role::Root => Some("/"),
                    Role::Cpus => Some("/cpus"),
                    Role::Cpu(_) => Some("cpu"),
                    Role::Memory => Some("memory"),
                    Role::Gic => Some("arm,gic-v3"),
                    Role::Chosen => Some("/chosen"),
                    _ => None,
                };
                if let Some(node) = required {
                    return Err(Error::RemovesRequired { node });
                }
            }
            let removed = n.parent.is_some_and(|p| self.nodes[p].removed)
                || named
                || match n.role {
                    Role::Its => !policy.its,
                    Role::Cpu(k) => k >= policy.vcpus,
                    Role::Memory => self.memory != Some(i),
                    _ => false,
                };
            self.nodes[i].removed = removed;
        }
        Ok(())
    }

    /// Removes cpu-map entries of removed CPUs, then cpu-map nodes left without children.
    fn trim_cpu_map(&mut self) {
        let removed_cpu = |plan: &Self, phandle: u32| {
            plan.phandles.get(&phandle).is_some_and(|&i| {
                matches!(plan.nodes[i].role, Role::Cpu(_)) && plan.nodes[i].removed
            })
        };
        let mut kept_children = alloc::vec![0usize; self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            let n = &self.nodes[i];
            if !n.removed && n.role == Role::CpuMap {
                let drop = match prop(&n.node, "cpu").and_then(|v| refs::cell(v, 0)) {
                    Some(cpu) => removed_cpu(self, cpu),
                    None => n.end > i + 1 && kept_children[i] == 0,
                };
                if drop {
                    let end = n.end;
                    for m in &mut self.nodes[i..end] {
                        m.removed = true;
                    }
                }
            }
            let n = &self.nodes[i];
            if let (false, Some(p)) = (n.removed, n.parent) {
                kept_children[p] += 1;
            }
        }
    }

    fn check_required(&self) -> Result<(), Error> {
        let gic = self.gic.ok_or(Error::MissingNode { node: "arm,gic-v3" })?;
        let memory = self.memory.ok_or(Error::MissingNode { node: "/memory" })?;
        for (index, node) in [
            (Some(gic), "arm,gic-v3"),
            (Some(memory), "memory"),
            (self.chosen, "/chosen"),
        ] {
            if index.is_some_and(|i| self.nodes[i].removed) {
                return Err(Error::RemovesRequired { node });
            }
        }
        if self.nodes.iter().any(|n| n.role == Role::Cpus && n.removed) {
            return Err(Error::RemovesRequired { node: "/cpus" });
        }
        Ok(())
    }

    fn target(&self) -> impl Fn(u32) -> Option<FdtNode<'a>> + '_ {
        |phandle| self.phandles.get(&phandle).map(|&i| self.nodes[i].node)
    }

    /// Fails when a kept property refers to a removed node, except MSI routing, which
    /// [`Plan::msi_filtered`] trims.
    fn check_references(&self) -> Result<(), Error> {
        if self.removed_phandles.is_empty() {
            return Ok(());
        }
        for n in self.nodes.iter().filter(|n| !n.removed) {
            for p in n.node.properties() {
                let name = p.name();
                let Some(kind) = refs::kind(name) else {
                    continue;
                };
                if name == "msi-map" || name == "msi-parent" {
                    continue;
                }
                let dangling = refs::entries(kind, raw(&p), &n.node, self.target())
                    .into_iter()
                    .find(|(phandle, _)| self.removed_phandles.contains(phandle));
                if let Some((phandle, _)) = dangling {
                    return Err(Error::DanglingReference { phandle });
                }
            }
        }
        Ok(())
    }

    /// An msi-map or msi-parent value without the entries naming removed nodes, or `None`
    /// when it loses every entry.
    fn msi_filtered(&self, node: &FdtNode<'a>, kind: Refs, value: &[u8]) -> Option<Vec<u8>> {
        let entries = refs::entries(kind, value, node, self.target());
        let covered: usize = entries.iter().map(|(_, r)| r.len()).sum();
        if covered != value.len() {
            // Not followed to the end (a malformed value): kept as it is unless any of its
            // cells could name a removed node, since a dangling MSI parent is worse than none.
            let suspect = (0..value.len() / 4)
                .filter_map(|i| refs::cell(value, i))
                .any(|c| self.removed_phandles.contains(&c));
            return (!suspect).then(|| value.to_vec());
        }
        let kept: Vec<u8> = entries
            .iter()
            .filter(|(phandle, _)| !self.removed_phandles.contains(phandle))
            .flat_map(|(_, r)| value.get(r.clone()).unwrap_or(&[]).iter().copied())
            .collect();
        (!kept.is_empty()).then_some(kept)
    }

    fn root_cells(&self) -> Result<(u32, u32), Error> {
        let root = &self.nodes[0].node;
        Ok((cells(root, false)?, cells(root, true)?))
    }

    /// The host's memory: every memory node's `reg`.
    fn host_memory(&self) -> Result<Vec<MemRegion>, Error> {
        let mut out = Vec::new();
        for n in self.nodes.iter().filter(|n| n.role == Role::Memory) {
            for (base, size) in reg_entries(&n.node)? {
                out.push(MemRegion { base, size });
            }
        }
        Ok(out)
    }
}

/// Checks the policy's memory and initrd against each other and the host's memory.
fn check_memory(policy: &GuestPolicy<'_>, host: &[MemRegion]) -> Result<(), Error> {
    let mut previous_end = None;
    for r in policy.memory {
        let bad = Error::BadMemoryRange {
            base: r.base,
            size: r.size,
        };
        let end = r.end().filter(|_| r.size != 0).ok_or(bad)?;
        if previous_end.is_some_and(|p| r.base < p) {
            return Err(bad);
        }
        previous_end = Some(end);
        if !host.iter().any(|h| h.contains(r)) {
            return Err(Error::MemoryOutsideHost {
                base: r.base,
                size: r.size,
            });
        }
    }
    if previous_end.is_none() {
        return Err(Error::NoMemory);
    }
    if let Some(initrd) = policy.initrd
        && (initrd.size == 0 || !policy.memory.iter().any(|m| m.contains(&initrd)))
    {
        return Err(Error::InitrdOutsideMemory {
            base: initrd.base,
            size: initrd.size,
        });
    }
    Ok(())
}

/// What happens to one property.
enum Change {
    Copy,
    Drop,
    Set(Vec<u8>),
}

/// The copy: the plan applied while writing.
struct Emit<'a, 'p, 'q> {
    plan: &'q Plan<'a, 'p>,
    /// The guest's `reg` of the GIC node.
    gic_reg: Vec<u8>,
    /// The guest's `reg` of the memory node.
    memory_reg: Vec<u8>,
    /// `linux,initrd-start` and `-end`.
    initrd: Option<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Emit<'a, '_, '_> {
    fn node(&self, w: &mut FdtWriter, i: usize) -> Result<usize, Error> {
        let n = &self.plan.nodes[i];
        if n.removed {
            return Ok(n.end);
        }
        let name = match n.role {
            Role::Memory => format!(
                "memory@{:x}",
                self.plan.policy.memory.first().map_or(0, |m| m.base)
            ),
            _ => String::from(n.node.name()),
        };
        let handle = w.begin_node(&name)?;
        let msi_map =
            prop(&n.node, "msi-map").map(|v| self.plan.msi_filtered(&n.node, Refs::Map, v));
        let mut written = Written::default();
        for p in n.node.properties() {
            let name = p.name();
            let change = match name {
                "msi-map" => msi_map.clone().flatten().map_or(Change::Drop, Change::Set),
                "msi-map-mask" if matches!(msi_map, Some(None)) => Change::Drop,
                "msi-parent" => self
                    .plan
                    .msi_filtered(&n.node, Refs::Specifier("#msi-cells"), raw(&p))
                    .map_or(Change::Drop, Change::Set),
                _ => self.change(n, &p)?,
            };
            match change {
                Change::Copy => w.property(name, raw(&p))?,
                Change::Drop => continue,
                Change::Set(v) => w.property(name, &v)?,
            }
            written.note(name);
        }
        if n.role == Role::Chosen {
            self.chosen_additions(w, &written)?;
        }
        let mut j = i + 1;
        while j < n.end {
            j = self.node(w, j)?;
        }
        let adds_chosen = self.plan.policy.bootargs.is_some() || self.initrd.is_some();
        if n.role == Role::Root && self.plan.chosen.is_none() && adds_chosen {
            let chosen = w.begin_node("chosen")?;
            self.chosen_additions(w, &Written::default())?;
            w.end_node(chosen)?;
        }
        w.end_node(handle)?;
        Ok(n.end)
    }

    /// The change the node's role makes to a property.
    fn change(&self, n: &Planned<'a>, p: &FdtProperty<'a>) -> Result<Change, Error> {
        let policy = self.plan.policy;
        Ok(match (n.role, p.name()) {
            (Role::Memory, "reg") => Change::Set(self.memory_reg.clone()),
            (Role::Gic, "reg") => Change::Set(self.gic_reg.clone()),
            (Role::Gic, "interrupts" | "redistributor-stride") => Change::Drop,
            (Role::Gic, "#redistributor-regions") => Change::Set(1u32.to_be_bytes().to_vec()),
            (Role::Psci, "method") => Change::Set(policy.psci_method.value().to_vec()),
            (Role::Chosen, "bootargs") => match policy.bootargs {
                Some(args) => Change::Set(bootargs(args)?),
                None => Change::Drop,
            },
            (Role::Chosen, "linux,initrd-start") => self
                .initrd
                .as_ref()
                .map_or(Change::Drop, |(s, _)| Change::Set(s.clone())),
            (Role::Chosen, "linux,initrd-end") => self
                .initrd
                .as_ref()
                .map_or(Change::Drop, |(_, e)| Change::Set(e.clone())),
            (Role::Paths, _) => {
                let target = raw(p).strip_suffix(b"\0").unwrap_or(&[]);
                let gone = self.plan.removed_paths.iter().any(|r| {
                    target
                        .strip_prefix(r.as_bytes())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
                });
                if gone { Change::Drop } else { Change::Copy }
            }
            _ => Change::Copy,
        })
    }

    /// The `/chosen` properties the policy sets that the host's `/chosen` lacked.
    fn chosen_additions(&self, w: &mut FdtWriter, written: &Written) -> Result<(), Error> {
        if let Some(args) = self.plan.policy.bootargs
            && !written.bootargs
        {
            w.property("bootargs", &bootargs(args)?)?;
        }
        if let Some((start, end)) = &self.initrd {
            if !written.initrd_start {
                w.property("linux,initrd-start", start)?;
            }
            if !written.initrd_end {
                w.property("linux,initrd-end", end)?;
            }
        }
        Ok(())
    }
}

/// Which of the `/chosen` properties the policy sets a node already had.
#[derive(Default)]
struct Written {
    bootargs: bool,
    initrd_start: bool,
    initrd_end: bool,
}

impl Written {
    fn note(&mut self, name: &str) {
        match name {
            "bootargs" => self.bootargs = true,
            "linux,initrd-start" => self.initrd_start = true,
            "linux,initrd-end" => self.initrd_end = true,
            _ => {}
        }
    }
}

fn bootargs(args: &str) -> Result<Vec<u8>, Error> {
    if args.as_bytes().contains(&0) {
        return Err(Error::InvalidBootargs);
    }
    let mut v = Vec::with_capacity(args.len() + 1);
    v.extend_from_slice(args.as_bytes());
    v.push(0);
    Ok(v)
}

/// Derives the guest's flattened device tree from the host's (see the crate documentation).
///
/// # Errors
/// [`Error::InvalidBlob`] when `host_dtb` does not validate; the policy errors
/// ([`Error::NoMemory`], [`Error::BadMemoryRange`], [`Error::MemoryOutsideHost`],
/// [`Error::InitrdOutsideMemory`], [`Error::VcpuCount`],
/// [`Error::RedistributorRegionTooSmall`], [`Error::RemovesRequired`],
/// [`Error::InvalidBootargs`]); [`Error::DanglingReference`] when a kept node refers to a
/// removed one; the host-tree errors ([`Error::MissingNode`], [`Error::MalformedProperty`],
/// [`Error::DoesNotFit`], [`Error::TooDeep`]) and [`Error::Write`].
pub fn derive(host_dtb: &[u8], policy: &GuestPolicy<'_>) -> Result<Vec<u8>, Error> {
    derive_inner(host_dtb, policy)
        .inspect(|dtb| {
            crate::logging::info!(
                "guest-fdt: guest tree of {} bytes from the host's {}: {} vCPUs, {} memory ranges, ITS {}",
                dtb.len(),
                host_dtb.len(),
                policy.vcpus,
                policy.memory.len(),
                if policy.its { "kept" } else { "removed" }
            );
        })
        .inspect_err(|e| {
            crate::logging::warning!("guest-fdt: no guest tree: {}", e);
        })
}

fn derive_inner(host_dtb: &[u8], policy: &GuestPolicy<'_>) -> Result<Vec<u8>, Error> {
    let fdt = open(host_dtb)?;
    let plan = Plan::new(fdt, policy)?;
    check_memory(policy, &plan.host_memory()?)?;
    let root_cells = plan.root_cells()?;

    let mut memory_reg = Vec::new();
    for m in policy.memory {
        push_cells(&mut memory_reg, m.base, root_cells.0)?;
        push_cells(&mut memory_reg, m.size, root_cells.1)?;
    }

    let initrd = match policy.initrd {
        None => None,
        Some(r) => {
            let (mut start, mut end) = (Vec::new(), Vec::new());
            push_cells(&mut start, r.base, root_cells.0)?;
            // `check_memory` found the initrd inside a region that does not wrap.
            push_cells(&mut end, r.base.saturating_add(r.size), root_cells.0)?;
            Some((start, end))
        }
    };

    let gic_reg = gic_reg(&plan, policy)?;
    let emit = Emit {
        plan: &plan,
        gic_reg,
        memory_reg,
        initrd,
    };

    let reservations: Vec<FdtReserveEntry> = fdt
        .memory_reservations()
        .filter(|r| {
            let r = MemRegion::new(r.address(), r.size());
            r.size != 0 && policy.memory.iter().any(|m| m.contains(&r))
        })
        .filter_map(|r| FdtReserveEntry::new(r.address(), r.size()).ok())
        .collect();
    for path in &plan.removed_paths {
        crate::logging::debug!("guest-fdt: {} removed", path);
    }
    let mut w = FdtWriter::new_with_mem_reserv(&reservations)?;
    w.set_boot_cpuid_phys(fdt.boot_cpuid_phys());
    emit.node(&mut w, 0)?;
    Ok(w.finish()?)
}

/// The GIC's `reg` for the guest: the host's GICD entry as it is, then one redistributor
/// region of vCPUs x 128 KiB.
fn gic_reg(plan: &Plan<'_, '_>, policy: &GuestPolicy<'_>) -> Result<Vec<u8>, Error> {
    let gic = &plan.nodes[plan.gic.ok_or(Error::MissingNode { node: "arm,gic-v3" })?];
    let parent = &plan.nodes[gic.parent.unwrap_or(0)].node;
    let (ac, sc) = (cells(parent, false)?, cells(parent, true)?);
    let malformed = Error::MalformedProperty { property: "reg" };
    let reg = prop(&gic.node, "reg").ok_or(malformed)?;
    let entry = ((ac + sc) * 4) as usize;
    let gicd = reg.get(..entry).ok_or(malformed)?;
    let (host_base, host_size) = *reg_entries(&gic.node)?.get(1).ok_or(malformed)?;

    let needed = (policy.vcpus as u64)
        .checked_mul(REDISTRIBUTOR_SIZE)
        .ok_or(Error::VcpuCount {
            requested: policy.vcpus,
            available: plan.cpus,
        })?;
    let base = match policy.redistributor_base {
        Some(base) => base,
        None if needed <= host_size => host_base,
        None => {
            return Err(Error::RedistributorRegionTooSmall {
                needed,
                available: host_size,
            });
        }
    };
    let mut out = gicd.to_vec();
    push_cells(&mut out, base, ac)?;
    push_cells(&mut out, needed, sc)?;
    Ok(out)
}

/// The host's memory, from its memory nodes, in tree order.
///
/// # Errors
/// [`Error::InvalidBlob`] and [`Error::MalformedProperty`] for trees that cannot be read.
pub fn host_memory(host_dtb: &[u8]) -> Result<Vec<MemRegion>, Error> {
    let fdt = open(host_dtb)?;
    let mut out = Vec::new();
    for node in fdt.root().children() {
        let base_name = node.name().split('@').next();
        if base_name == Some("memory") || prop(&node, "device_type") == Some(b"memory\0") {
            for (base, size) in reg_entries(&node)? {
                out.push(MemRegion { base, size });
            }
        }
    }
    Ok(out)
}

/// The host's memory minus `reserved` (the hypervisor's own): sorted, disjoint ranges for
/// [`GuestPolicy::memory`].
///
/// # Errors
/// As [`host_memory`].
pub fn guest_memory(host_dtb: &[u8], reserved: &[MemRegion]) -> Result<Vec<MemRegion>, Error> {
    let mut free = host_memory(host_dtb)?;
    free.retain(|m| m.size != 0 && m.end().is_some());
    for hole in reserved {
        let Some(hole_end) = hole.end() else { continue };
        free = free
            .into_iter()
            .flat_map(|m| {
                // `retain` above dropped regions that wrap.
                let end = m.base.saturating_add(m.size);
                let below = (m.base < hole.base.min(end))
                    .then(|| MemRegion::new(m.base, hole.base.min(end) - m.base));
                let above = (hole_end.max(m.base) < end)
                    .then(|| MemRegion::new(hole_end.max(m.base), end - hole_end.max(m.base)));
                below.into_iter().chain(above)
            })
            .collect();
    }
    free.sort();
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_written_big_endian_and_must_fit() {
        let mut out = Vec::new();
        push_cells(&mut out, 0x1_2345_6789, 2).unwrap();
        push_cells(&mut out, 0x8000, 1).unwrap();
        push_cells(&mut out, 7, 3).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x23, 0x45, 0x67, 0x89, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                7
            ]
        );
        assert_eq!(
            push_cells(&mut out, 0x1_0000_0000, 1),
            Err(Error::DoesNotFit {
                value: 0x1_0000_0000,
                cells: 1
            })
        );
    }

    #[test]
    fn names_match_with_or_without_unit_address() {
        assert!(name_matches("flash@0", "flash"));
        assert!(name_matches("flash@0", "flash@0"));
        assert!(!name_matches("flash@0", "flash@4000000"));
        assert!(!name_matches("flashy", "flash"));
    }
}
