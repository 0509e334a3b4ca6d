// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Linux guest's provisioning: Debian's arm64 kernel and busybox, the test initramfs, the
//! NVMe disk image and QEMU's device tree, all under `target/`, with no step by hand.
//!
//! - [`fetch`] gets `linux-image-cloud-arm64` (resolved to its `linux-image-6.1.0-NN-cloud-arm64`)
//!   and `busybox-static` for arm64 from Debian bookworm (and bookworm-security) through a
//!   private apt ([`apt`]), extracted with `dpkg-deb`, the kernel's Image header checked
//!   ([`image`]). Cached in `target/linux/arm64-bookworm/`: once there, no network is used.
//! - [`build_initramfs`] writes busybox and `/init` as a newc archive ([`initramfs`]).
//! - [`disk_image`] writes the raw image behind the NVMe device ([`disk`]).
//! - [`dump_dtb`] has QEMU write its own device tree for a machine configuration
//!   ([`machine`]).
//! - [`qemu_fetch`] gets a newer QEMU (`qemu-system-arm` from bookworm-backports, for the host's
//!   architecture) unpacked under `target/qemu/`, for `--qemu PATH`.
//!
//! - [`provision`] does all of the guest's part at once for the QEMU runner and `cargo xtask
//!   linux`: the kernel, the test initramfs and the disk ([`TestGuest`]).
//! - [`guest`] boots it on the project's hypervisor: placement in guest RAM, the boot
//!   parameter block, the guest's device tree, QEMU's command line.
//!
//! `cargo xtask linux-fetch` and `cargo xtask qemu-fetch` ([`cli`]) run the steps by hand.

pub mod apt;
pub mod cli;
pub mod disk;
pub mod guest;
pub mod image;
pub mod initramfs;
pub mod machine;
pub mod run;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use disk::disk_image;
pub use initramfs::build_initramfs;
pub use machine::dump_dtb;

use apt::{AptSpec, Package, PrivateApt};
use image::ImageHeader;

/// The guest's Debian architecture.
pub const GUEST_ARCH: &str = "arm64";
/// The guest's suites: the release and its security updates (where the kernel is newest).
pub const GUEST_SUITES: &[&str] = &["bookworm", "bookworm-security"];
/// The kernel metapackage.
pub const KERNEL_META: &str = "linux-image-cloud-arm64";
/// The busybox package (one static binary).
pub const BUSYBOX: &str = "busybox-static";
/// The suite the newer QEMU comes from.
pub const QEMU_SUITE: &str = "bookworm-backports";
/// The package holding `qemu-system-aarch64`.
pub const QEMU_PACKAGE: &str = "qemu-system-arm";
/// The cache's record of what was fetched.
const MANIFEST: &str = "fetched.txt";

/// `target/linux` under the repository root `root`.
pub fn linux_dir(root: &Path) -> PathBuf {
    root.join("target").join("linux")
}

/// The versions fetched.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Versions {
    /// The metapackage's version.
    pub meta: String,
    /// The kernel package (`linux-image-6.1.0-NN-cloud-arm64`).
    pub kernel_package: String,
    /// Its version.
    pub kernel: String,
    /// busybox-static's version.
    pub busybox: String,
}

/// What one download fetched.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Download {
    /// apt's summary of the package lists (`Fetched 9259 kB in 4s (...)`).
    pub lists: String,
    /// Sizes of the packages downloaded, in bytes, by name.
    pub packages: Vec<(String, u64)>,
}

/// The guest's kernel and busybox, ready to use.
#[derive(Clone, Debug)]
pub struct LinuxImages {
    /// The arm64 Image (uncompressed).
    pub kernel: PathBuf,
    /// The static arm64 busybox.
    pub busybox: PathBuf,
    /// The versions.
    pub versions: Versions,
    /// The kernel's checked Image header.
    pub header: ImageHeader,
    /// What was downloaded; `None` when everything came from the cache.
    pub download: Option<Download>,
}

/// A cache record: `key=value` lines.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Manifest(pub Vec<(String, String)>);

impl Manifest {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the text form; `None` on a line without `=`.
    pub fn parse(text: &str) -> Option<Self> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }

    /// The text form.
    pub fn text(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Reads `dir`'s manifest, if any.
    fn read(dir: &Path) -> Option<Self> {
        Self::parse(&fs::read_to_string(dir.join(MANIFEST)).ok()?)
    }

    /// Writes it into `dir` (temporary file, then rename: a manifest is whole or absent).
    fn write(&self, dir: &Path) -> Result<(), String> {
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        fs::write(&tmp, self.text()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        fs::rename(&tmp, dir.join(MANIFEST)).map_err(|e| format!("{}: {e}", dir.display()))
    }
}

/// Reads and checks the Image header of `kernel`.
pub fn check_kernel(kernel: &Path) -> Result<ImageHeader, String> {
    let bytes = fs::read(kernel).map_err(|e| format!("reading {}: {e}", kernel.display()))?;
    image::parse(&bytes).map_err(|e| format!("{}: {e}", kernel.display()))
}

/// The cached images in `dir`, if the manifest is there and its files are.
fn cached(dir: &Path) -> Option<LinuxImages> {
    let m = Manifest::read(dir)?;
    let kernel = dir.join(m.get("kernel_path")?);
    let busybox = dir.join(m.get("busybox_path")?);
    if !busybox.is_file() {
        return None;
    }
    let header = check_kernel(&kernel).ok()?;
    Some(LinuxImages {
        kernel,
        busybox,
        versions: Versions {
            meta: m.get("meta_version")?.to_owned(),
            kernel_package: m.get("kernel_package")?.to_owned(),
            kernel: m.get("kernel_version")?.to_owned(),
            busybox: m.get("busybox_version")?.to_owned(),
        },
        header,
        download: None,
    })
}

/// Downloads `pkg` and extracts it into `dir/<name>` (the .deb kept in `dir/debs/<name>`).
fn fetch_package(apt: &PrivateApt, pkg: &Package, dir: &Path) -> Result<PathBuf, String> {
    let deb = apt.download(pkg, &dir.join("debs").join(&pkg.name))?;
    let root = dir.join(&pkg.name);
    apt::extract(&deb, &root)?;
    Ok(root)
}

/// The one file in `dir` whose name starts with `prefix`.
fn only_file(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    let mut found = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        });
    match (found.next(), found.next()) {
        (Some(p), None) => Ok(p),
        _ => Err(format!("expected one {prefix}* in {}", dir.display())),
    }
}

/// The guest's kernel and busybox (see the module docs): from the cache in
/// `target/linux/arm64-bookworm` under the repository root `root`, else downloaded.
pub fn fetch(root: &Path) -> Result<LinuxImages, String> {
    let base = linux_dir(root);
    let spec = AptSpec::debian(GUEST_ARCH, GUEST_SUITES);
    let dir = base.join(spec.label());
    if let Some(images) = cached(&dir) {
        return Ok(images);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let _ = fs::remove_file(dir.join(MANIFEST));
    let apt = PrivateApt::new(&base.join("apt").join(spec.label()), spec)?;
    let lists = apt.update()?;
    let meta = apt.show(KERNEL_META)?;
    let kernel_name = apt::dependency_matching(&meta, "linux-image-", "-cloud-arm64")
        .ok_or_else(|| {
            format!(
                "{KERNEL_META} {}: no linux-image-*-cloud-arm64 in its Depends: {:?}",
                meta.version, meta.depends
            )
        })?
        .to_owned();
    let kernel_pkg = apt.show(&kernel_name)?;
    let busybox_pkg = apt.show(BUSYBOX)?;

    let kroot = fetch_package(&apt, &kernel_pkg, &dir)?;
    let kernel = only_file(&kroot.join("boot"), "vmlinuz-")?;
    let header = check_kernel(&kernel)?;
    let broot = fetch_package(&apt, &busybox_pkg, &dir)?;
    let busybox = broot.join("bin").join("busybox");
    if !busybox.is_file() {
        return Err(format!("{BUSYBOX}: no bin/busybox in {}", broot.display()));
    }
    let rel = |p: &Path| {
        p.strip_prefix(&dir)
            .map(|r| r.display().to_string())
            .map_err(|_| format!("{} is outside {}", p.display(), dir.display()))
    };
    let versions = Versions {
        meta: meta.version.clone(),
        kernel_package: kernel_pkg.name.clone(),
        kernel: kernel_pkg.version.clone(),
        busybox: busybox_pkg.version.clone(),
    };
    Manifest(vec![
        ("meta_version".into(), versions.meta.clone()),
        ("kernel_package".into(), versions.kernel_package.clone()),
        ("kernel_version".into(), versions.kernel.clone()),
        ("busybox_version".into(), versions.busybox.clone()),
        ("kernel_path".into(), rel(&kernel)?),
        ("busybox_path".into(), rel(&busybox)?),
    ])
    .write(&dir)?;
    Ok(LinuxImages {
        kernel,
        busybox,
        versions,
        header,
        download: Some(Download {
            lists,
            packages: vec![
                (kernel_pkg.name, kernel_pkg.size),
                (busybox_pkg.name, busybox_pkg.size),
            ],
        }),
    })
}

/// The test guest, provisioned: Debian's kernel, the test initramfs and the NVMe disk image.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TestGuest {
    /// The arm64 Image.
    pub kernel: PathBuf,
    /// Its checked header.
    pub header: ImageHeader,
    /// The test initramfs (`initramfs.cpio`).
    pub initramfs: PathBuf,
    /// The raw disk image behind the NVMe device.
    pub disk: PathBuf,
}

/// Provisions the test guest under `target/linux` of the repository root `root` ([`fetch`],
/// then [`build_initramfs`] and [`disk_image`]): cached after the first run, so no network.
pub fn provision(root: &Path) -> Result<TestGuest, String> {
    let dir = linux_dir(root);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let images = fetch(root)?;
    let initrd = build_initramfs(&images.busybox, &dir.join("initramfs.cpio"))?;
    let disk = dir.join("nvme-disk.img");
    disk_image(&disk, disk::DEFAULT_SIZE)?;
    Ok(TestGuest {
        kernel: images.kernel,
        header: images.header,
        initramfs: initrd.path,
        disk,
    })
}

/// The host's Debian architecture, from the architecture this program was built for.
pub fn host_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        _ => None,
    }
}

/// A QEMU unpacked under `target/qemu`.
#[derive(Clone, Debug)]
pub struct FetchedQemu {
    /// `qemu-system-aarch64`.
    pub path: PathBuf,
    /// The package version.
    pub version: String,
    /// The first line of `--version`.
    pub version_line: String,
    /// The .deb's size when downloaded; `None` when cached.
    pub downloaded: Option<u64>,
}

/// `qemu-system-aarch64` from `qemu-system-arm` of bookworm-backports for the host's
/// architecture, unpacked into `target/qemu/<arch>-bookworm-backports/` (cached). Only the
/// package itself is unpacked: its libraries come from the host (Debian 12 with its own
/// `qemu-system-arm` has them all); a missing one shows as `--version` failing here.
pub fn qemu_fetch(root: &Path) -> Result<FetchedQemu, String> {
    let arch = host_arch().ok_or_else(|| {
        format!(
            "no Debian architecture known for {}",
            std::env::consts::ARCH
        )
    })?;
    let spec = AptSpec::debian(arch, &[QEMU_SUITE]);
    let base = root.join("target").join("qemu");
    let dir = base.join(spec.label());
    let version_of = |path: &Path| -> Result<String, String> {
        let done = run::run_ok(
            Command::new(path).arg("--version"),
            Duration::from_secs(60),
            &format!("{} --version", path.display()),
        )?;
        Ok(done.stdout.lines().next().unwrap_or("").trim().to_owned())
    };
    if let Some(m) = Manifest::read(&dir)
        && let (Some(p), Some(v)) = (m.get("qemu_path"), m.get("qemu_version"))
        && let Ok(line) = version_of(&dir.join(p))
    {
        return Ok(FetchedQemu {
            path: dir.join(p),
            version: v.to_owned(),
            version_line: line,
            downloaded: None,
        });
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let apt = PrivateApt::new(&base.join("apt").join(spec.label()), spec)?;
    apt.update()?;
    let pkg = apt.show(QEMU_PACKAGE)?;
    let pkg_root = fetch_package(&apt, &pkg, &dir)?;
    let path = pkg_root.join("usr/bin/qemu-system-aarch64");
    let version_line = version_of(&path).map_err(|e| {
        format!("{e}\n(the unpacked QEMU uses the host's libraries: `ldd` names a missing one)")
    })?;
    Manifest(vec![
        ("qemu_version".into(), pkg.version.clone()),
        (
            "qemu_path".into(),
            format!("{}/usr/bin/qemu-system-aarch64", pkg.name),
        ),
    ])
    .write(&dir)?;
    Ok(FetchedQemu {
        path,
        version: pkg.version,
        version_line,
        downloaded: Some(pkg.size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_reject_junk() {
        let m = Manifest(vec![
            ("kernel_version".into(), "6.1.192-3".into()),
            ("busybox_version".into(), "1:1.35.0-4+deb12u1+b1".into()),
        ]);
        let text = m.text();
        assert_eq!(
            text,
            "kernel_version=6.1.192-3\nbusybox_version=1:1.35.0-4+deb12u1+b1\n"
        );
        assert_eq!(Manifest::parse(&text), Some(m.clone()));
        assert_eq!(m.get("busybox_version"), Some("1:1.35.0-4+deb12u1+b1"));
        assert_eq!(m.get("nothing"), None);
        assert_eq!(Manifest::parse("no equals sign\n"), None);
    }

    #[test]
    fn a_cache_without_its_files_is_not_used() {
        let dir = std::env::temp_dir().join(format!("xtask-linux-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Manifest(vec![
            ("meta_version".into(), "1".into()),
            ("kernel_package".into(), "k".into()),
            ("kernel_version".into(), "1".into()),
            ("busybox_version".into(), "1".into()),
            ("kernel_path".into(), "Image".into()),
            ("busybox_path".into(), "busybox".into()),
        ])
        .write(&dir)
        .unwrap();
        assert!(cached(&dir).is_none());
        fs::write(dir.join("busybox"), b"bb").unwrap();
        // A kernel whose header fails the check is not used either.
        fs::write(dir.join("Image"), [0u8; 64]).unwrap();
        assert!(cached(&dir).is_none());
        let mut image = vec![0u8; 64];
        image[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        image[0x18] = 0xa;
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        fs::write(dir.join("Image"), &image).unwrap();
        let got = cached(&dir).unwrap();
        assert_eq!(got.kernel, dir.join("Image"));
        assert_eq!(got.versions.kernel_package, "k");
        assert!(got.download.is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
