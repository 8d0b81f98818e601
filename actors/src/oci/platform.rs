//! Platforms as operators name them (`linux/amd64`, `linux/arm64/v8`) and which image
//! manifests of a list they choose: for `load`, preloading and the completion of a list a
//! client fetched by tag.

use std::fmt;
use std::str::FromStr;

use super::Platform;

/// A platform as written on the command line: `os/arch` or `os/arch/variant`
/// (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The platform of this machine, in the names OCI image indexes use.
    pub fn host() -> PlatformSpec {
        PlatformSpec {
            os: host_os().to_string(),
            arch: host_arch().to_string(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one. A spec without a variant accepts any
    /// variant; `arm64` entries without a variant count as `v8`, as containerd treats them.
    pub fn matches(&self, p: &Platform) -> bool {
        if p.os != self.os || p.architecture != self.arch {
            return false;
        }
        let Some(want) = &self.variant else {
            return true;
        };
        let have = p.variant.as_deref().filter(|v| !v.is_empty());
        match have {
            Some(v) => v == want,
            None => self.arch == "arm64" && want == "v8",
        }
    }
}

impl FromStr for PlatformSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "\"{s}\" is not a platform; use os/arch or os/arch/variant, e.g. linux/amd64 or \
                 linux/arm64/v8"
            )),
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The host's operating system as OCI image indexes name it.
pub fn host_os() -> &'static str {
    std::env::consts::OS
}

/// The host's architecture as OCI image indexes name it (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Which image manifests of a list to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platforms {
    All,
    Only(Vec<PlatformSpec>),
}

impl Platforms {
    /// Whether an image manifest of a list, with this platform, is one to take.
    pub fn accepts(&self, p: Option<&Platform>) -> bool {
        match (self, p) {
            (Platforms::All, _) => true,
            (Platforms::Only(_), None) => false,
            (Platforms::Only(specs), Some(p)) => specs.iter().any(|s| s.matches(p)),
        }
    }
}

impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Platforms::All => f.write_str("all platforms"),
            Platforms::Only(specs) => {
                let s: Vec<String> = specs.iter().map(ToString::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}
