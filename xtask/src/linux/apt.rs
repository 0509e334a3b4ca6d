// SPDX-License-Identifier: MIT OR Apache-2.0
//! A private apt: Debian packages of any architecture and suite, fetched without touching the
//! system's apt.
//!
//! Each [`PrivateApt`] owns a directory (under `target/`) with its own configuration file,
//! sources, preferences, package lists, cache and an empty dpkg status. apt-get and apt-cache
//! are pointed at it with `APT_CONFIG`, whose file is read before anything in `/etc/apt`; it
//! sets `Dir::Etc::parts` and `Dir::Etc::main` to the private directory too, so no system
//! setting (sources, architectures, pinning, proxies, credentials) comes in. The architecture is
//! `APT::Architecture(s)` for this apt alone: no `dpkg --add-architecture`, and
//! `/var/lib/dpkg/status` is never read or written (the private status file is empty).
//!
//! It works as root or not: `apt-get update` and `apt-get download` need no privilege with
//! private directories and `Debug::NoLocking`. As root, apt would hand downloads to its
//! unprivileged `_apt` user, who cannot write into a root-owned `target/`; `APT::Sandbox::User
//! "root"` keeps them with the caller (the packages are still checked against the signed
//! release files). A proxy, if needed, comes from the `http_proxy` variable, which apt honours.
//!
//! The package lists stay compressed and no binary package cache is written: about 10 MB on
//! disk rather than 120.
//!
//! Every apt run is bounded: apt's own network timeout ([`NET_TIMEOUT_S`]) and a deadline on
//! the process.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::run::{run_ok, run_within};

/// The host serving Debian's archive (`/debian`) and its security archive
/// (`/debian-security`), unless [`MIRROR_VAR`] names another.
pub const DEBIAN_HOST: &str = "http://deb.debian.org";
/// The variable naming another host (a mirror with the same two paths), e.g.
/// `http://mirror.example:3142`.
pub const MIRROR_VAR: &str = "XTASK_DEBIAN_MIRROR";
/// The archive keyring Debian ships (package `debian-archive-keyring`).
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// apt's timeout for one connection or one stalled transfer, in seconds.
pub const NET_TIMEOUT_S: u32 = 15;
/// How long `apt-get update` may take (about 10 MB of package lists).
const UPDATE_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// How long one `apt-get download` may take (the kernel package is about 21 MB).
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// How long a local apt-cache or dpkg-deb run may take.
const LOCAL_DEADLINE: Duration = Duration::from_secs(2 * 60);

/// One deb822 source stanza.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Source {
    /// The archive URI.
    pub uri: String,
    /// Its suites (`bookworm`, `bookworm-backports`, ...).
    pub suites: Vec<String>,
    /// Its components (`main`).
    pub components: Vec<String>,
}

/// What a private apt fetches: one architecture, some sources, one keyring.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct AptSpec {
    /// The Debian architecture (`arm64`, `amd64`).
    pub arch: String,
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// The keyring that signs them.
    pub keyring: PathBuf,
}

impl AptSpec {
    /// [`AptSpec::debian_at`] the host [`MIRROR_VAR`] names, else [`DEBIAN_HOST`].
    pub fn debian(arch: &str, suites: &[&str]) -> Self {
        let host = std::env::var(MIRROR_VAR)
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEBIAN_HOST.to_owned());
        Self::debian_at(&host, arch, suites)
    }

    /// Debian's `main` for `arch` and `suites` from `host`: suites ending in `-security` from
    /// `host/debian-security`, the others from `host/debian`, signed by [`DEBIAN_KEYRING`].
    pub fn debian_at(host: &str, arch: &str, suites: &[&str]) -> Self {
        let host = host.trim_end_matches('/');
        let (debian, security) = (format!("{host}/debian"), format!("{host}/debian-security"));
        let pick = |security: bool| -> Vec<String> {
            suites
                .iter()
                .filter(|s| s.ends_with("-security") == security)
                .map(|s| s.to_string())
                .collect()
        };
        let sources = [(debian, pick(false)), (security, pick(true))]
            .into_iter()
            .filter(|(_, suites)| !suites.is_empty())
            .map(|(uri, suites)| Source {
                uri,
                suites,
                components: vec!["main".to_owned()],
            })
            .collect();
        Self {
            arch: arch.to_owned(),
            sources,
            keyring: DEBIAN_KEYRING.into(),
        }
    }

    /// `arch-firstsuite` (`arm64-bookworm`): the name of this apt's directory.
    pub fn label(&self) -> String {
        let suite = self
            .sources
            .first()
            .and_then(|s| s.suites.first())
            .map_or("none", String::as_str);
        format!("{}-{suite}", self.arch)
    }

    /// The sources as a deb822 `.sources` file.
    pub fn sources_text(&self) -> String {
        self.sources
            .iter()
            .map(|s| {
                format!(
                    "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nArchitectures: {}\n\
                     Signed-By: {}\n",
                    s.uri,
                    s.suites.join(" "),
                    s.components.join(" "),
                    self.arch,
                    self.keyring.display()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One package as apt-cache shows its candidate.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Package {
    /// `Package:`.
    pub name: String,
    /// `Version:`.
    pub version: String,
    /// `Size:` of the .deb, in bytes.
    pub size: u64,
    /// `Depends:`, one entry per comma-separated item, as written.
    pub depends: Vec<String>,
}

/// Parses the first stanza of `apt-cache show` output.
pub fn parse_control(text: &str) -> Option<Package> {
    let mut p = Package::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !p.name.is_empty() {
                break;
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Package" => p.name = value.to_owned(),
            "Version" => p.version = value.to_owned(),
            "Size" => p.size = value.parse().ok()?,
            "Depends" => {
                p.depends = value.split(',').map(|d| d.trim().to_owned()).collect();
            }
            _ => {}
        }
    }
    (!p.name.is_empty() && !p.version.is_empty()).then_some(p)
}

/// The package a metapackage points at: the first dependency whose name starts with `prefix`
/// and ends with `suffix` (`linux-image-` .. `-cloud-arm64` finds
/// `linux-image-6.1.0-NN-cloud-arm64`), the metapackage itself excluded.
pub fn dependency_matching<'a>(meta: &'a Package, prefix: &str, suffix: &str) -> Option<&'a str> {
    meta.depends
        .iter()
        .flat_map(|d| d.split('|'))
        .map(|alt| alt.split_whitespace().next().unwrap_or(""))
        .find(|name| {
            *name != meta.name
                && name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        })
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A private apt rooted at one directory (see the module docs).
#[derive(Clone, Debug)]
pub struct PrivateApt {
    root: PathBuf,
    spec: AptSpec,
}

impl PrivateApt {
    /// Lays out `root` (configuration, sources, empty status) for `spec`. Nothing is fetched.
    pub fn new(root: &Path, spec: AptSpec) -> Result<Self, String> {
        if !spec.keyring.is_file() {
            return Err(format!(
                "the archive keyring {} is missing (Debian package debian-archive-keyring)",
                spec.keyring.display()
            ));
        }
        let root = std::path::absolute(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let apt = Self { root, spec };
        let text = apt_conf(&apt.root, &apt.spec.arch, is_root())?;
        for dir in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/auth.conf.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            let d = apt.root.join(dir);
            fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let files = [
            ("apt.conf", text),
            ("etc/sources.list", String::new()),
            (
                "etc/sources.list.d/private.sources",
                apt.spec.sources_text(),
            ),
            ("state/status", String::new()),
        ];
        for (name, text) in files {
            let p = apt.root.join(name);
            fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
        }
        Ok(apt)
    }

    /// An apt program (`apt-get`, `apt-cache`) with this apt's configuration.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", self.root.join("apt.conf"))
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C");
        c
    }

    /// Which sources these are, for messages.
    fn describe(&self) -> String {
        self.spec
            .sources
            .iter()
            .map(|s| format!("{} {}", s.uri, s.suites.join(" ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Fetches the package lists. Any list that fails is an error (`--error-on=any`): a
    /// stale or missing list would otherwise pass silently. Returns apt's `Fetched ...` line.
    pub fn update(&self) -> Result<String, String> {
        let done = run_within(
            self.command("apt-get").args(["update", "--error-on=any"]),
            UPDATE_DEADLINE,
            "apt-get update",
        )
        .map_err(|e| self.unreachable(&e))?;
        if !done.status.success() {
            return Err(self.unreachable(&format!(
                "apt-get update exited with {}:\n{}",
                done.status,
                done.transcript()
            )));
        }
        Ok(done
            .stdout
            .lines()
            .find(|l| l.starts_with("Fetched "))
            .unwrap_or("package lists up to date")
            .to_owned())
    }

    /// The error for a failed network step: what failed and what to check.
    fn unreachable(&self, detail: &str) -> String {
        format!(
            "{detail}\nfetching the {} package lists from {} failed. Check that this machine \
             reaches the archive (network, DNS; a proxy goes in the http_proxy variable: the \
             private apt reads no /etc/apt settings), or name a mirror in {MIRROR_VAR}. Its \
             configuration: {}",
            self.spec.arch,
            self.describe(),
            self.root.join("apt.conf").display()
        )
    }

    /// The candidate of package `name` (after [`update`](Self::update)).
    pub fn show(&self, name: &str) -> Result<Package, String> {
        let done = run_ok(
            self.command("apt-cache")
                .args(["show", "--no-all-versions", name]),
            LOCAL_DEADLINE,
            &format!("apt-cache show {name}"),
        )?;
        parse_control(&done.stdout).ok_or_else(|| {
            format!(
                "apt-cache show {name}: no {} package of that name in {}",
                self.spec.arch,
                self.describe()
            )
        })
    }

    /// Downloads exactly `pkg` (name and version) into `dir` (emptied first) and returns the
    /// .deb's path.
    pub fn download(&self, pkg: &Package, dir: &Path) -> Result<PathBuf, String> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let what = format!("apt-get download {}={}", pkg.name, pkg.version);
        run_within(
            self.command("apt-get")
                .current_dir(dir)
                .args(["download", &format!("{}={}", pkg.name, pkg.version)]),
            DOWNLOAD_DEADLINE,
            &what,
        )
        .and_then(|done| {
            if done.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{what}: exited with {}:\n{}",
                    done.status,
                    done.transcript()
                ))
            }
        })
        .map_err(|e| self.unreachable(&e))?;
        let mut debs = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"));
        match (debs.next(), debs.next()) {
            (Some(deb), None) => Ok(deb),
            _ => Err(format!("{what}: expected one .deb in {}", dir.display())),
        }
    }
}

/// apt's configuration for a private apt at `root` (absolute) serving architecture `arch`.
/// `root_user`: whether it runs as root (then downloads stay with root rather than apt's `_apt`
/// user).
pub fn apt_conf(root: &Path, arch: &str, root_user: bool) -> Result<String, String> {
    if arch.is_empty() || !arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("{arch:?}: not a Debian architecture"));
    }
    let r = root
        .to_str()
        .filter(|s| !s.contains(['"', '\n']) && root.is_absolute())
        .ok_or_else(|| format!("{}: not usable in an apt configuration", root.display()))?;
    let mut text = format!(
        "// Written by cargo xtask: a private apt (see xtask/src/linux/apt.rs).\n\
         Dir::Etc \"{r}/etc\";\n\
         Dir::Etc::main \"{r}/etc/apt.conf\";\n\
         Dir::Etc::parts \"{r}/etc/apt.conf.d\";\n\
         Dir::Etc::sourcelist \"{r}/etc/sources.list\";\n\
         Dir::Etc::sourceparts \"{r}/etc/sources.list.d\";\n\
         Dir::Etc::preferences \"{r}/etc/preferences\";\n\
         Dir::Etc::preferencesparts \"{r}/etc/preferences.d\";\n\
         Dir::Etc::trusted \"{r}/etc/trusted.gpg\";\n\
         Dir::Etc::trustedparts \"{r}/etc/trusted.gpg.d\";\n\
         Dir::Etc::netrc \"{r}/etc/auth.conf\";\n\
         Dir::Etc::netrcparts \"{r}/etc/auth.conf.d\";\n\
         Dir::State \"{r}/state\";\n\
         Dir::State::status \"{r}/state/status\";\n\
         Dir::Cache \"{r}/cache\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         Dir::Log \"{r}/log\";\n\
         APT::Architecture \"{arch}\";\n\
         APT::Architectures {{ \"{arch}\"; }};\n\
         Debug::NoLocking \"true\";\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"true\";\n\
         Acquire::Retries \"1\";\n\
         Acquire::http::Timeout \"{NET_TIMEOUT_S}\";\n\
         Acquire::https::Timeout \"{NET_TIMEOUT_S}\";\n"
    );
    if root_user {
        text.push_str("APT::Sandbox::User \"root\";\n");
    }
    Ok(text)
}

/// Extracts the data of `deb` into `dir` (emptied first) with `dpkg-deb -x`.
pub fn extract(deb: &Path, dir: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    run_ok(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir),
        LOCAL_DEADLINE,
        &format!("dpkg-deb -x {}", deb.display()),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "\
Package: linux-image-cloud-arm64
Source: linux-signed-arm64 (6.1.192+3)
Version: 6.1.192-3
Installed-Size: 13
Depends: linux-image-6.1.0-57-cloud-arm64 (= 6.1.192-3)
Size: 1452

";

    #[test]
    fn the_metapackage_resolves_to_its_versioned_kernel() {
        let meta = parse_control(META).unwrap();
        assert_eq!(meta.name, "linux-image-cloud-arm64");
        assert_eq!(meta.version, "6.1.192-3");
        assert_eq!(meta.size, 1452);
        assert_eq!(
            dependency_matching(&meta, "linux-image-", "-cloud-arm64"),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        assert_eq!(
            dependency_matching(&meta, "linux-image-", "-rt-arm64"),
            None
        );
    }

    #[test]
    fn alternatives_and_the_metapackage_itself_are_handled() {
        let p = Package {
            name: "linux-image-cloud-arm64".into(),
            depends: vec![
                "linux-image-cloud-arm64".into(),
                "foo | linux-image-6.1.0-9-cloud-arm64 (>= 1)".into(),
            ],
            ..Package::default()
        };
        assert_eq!(
            dependency_matching(&p, "linux-image-", "-cloud-arm64"),
            Some("linux-image-6.1.0-9-cloud-arm64")
        );
    }

    #[test]
    fn only_the_first_stanza_counts_and_bad_input_is_none() {
        let two = format!("{META}Package: other\nVersion: 1\n");
        assert_eq!(parse_control(&two).unwrap().name, "linux-image-cloud-arm64");
        assert_eq!(parse_control(""), None);
        assert_eq!(parse_control("Package: x\n"), None);
        assert_eq!(parse_control("Package: x\nVersion: 1\nSize: big\n"), None);
    }

    #[test]
    fn sources_split_security_suites_and_name_the_architecture() {
        let spec = AptSpec::debian_at(
            "http://m:3142/",
            "arm64",
            &["bookworm", "bookworm-security"],
        );
        assert_eq!(spec.label(), "arm64-bookworm");
        let text = spec.sources_text();
        assert!(
            text.contains("URIs: http://m:3142/debian\nSuites: bookworm\n"),
            "{text}"
        );
        assert!(
            text.contains("URIs: http://m:3142/debian-security\nSuites: bookworm-security\n"),
            "{text}"
        );
        assert_eq!(text.matches("Architectures: arm64\n").count(), 2);
        assert_eq!(
            text.matches(&format!("Signed-By: {DEBIAN_KEYRING}\n"))
                .count(),
            2
        );
        let bpo = AptSpec::debian_at(DEBIAN_HOST, "amd64", &["bookworm-backports"]);
        assert_eq!(bpo.sources.len(), 1);
        assert_eq!(bpo.label(), "amd64-bookworm-backports");
    }

    #[test]
    fn the_configuration_keeps_every_directory_private() {
        let text = apt_conf(Path::new("/t/apt"), "arm64", false).unwrap();
        for line in text
            .lines()
            .filter(|l| l.starts_with("Dir::") && !l.contains("pkgcache"))
        {
            assert!(line.contains("\"/t/apt/"), "{line}");
        }
        for key in [
            "Dir::Etc::parts",
            "Dir::Etc::main",
            "Dir::Etc::sourcelist",
            "Dir::Etc::sourceparts",
            "Dir::State::status",
            "Dir::Cache",
            "Debug::NoLocking",
        ] {
            assert!(text.contains(&format!("{key} ")), "{key}");
        }
        assert!(text.contains("APT::Architecture \"arm64\";\n"), "{text}");
        assert!(
            text.contains("APT::Architectures { \"arm64\"; };\n"),
            "{text}"
        );
        assert!(!text.contains("Sandbox"));
        assert!(apt_conf(Path::new("/t/apt"), "arm64\"; X", false).is_err());
        assert!(
            apt_conf(Path::new("/t/apt"), "arm64", true)
                .unwrap()
                .contains("APT::Sandbox::User \"root\";")
        );
        assert!(apt_conf(Path::new("relative"), "arm64", false).is_err());
        assert!(apt_conf(Path::new("/a\"b"), "arm64", false).is_err());
    }
}
