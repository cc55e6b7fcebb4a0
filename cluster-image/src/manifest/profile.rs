//! `nodeProfiles:`: what each kind of node needs from its host, and what it gets from us.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::system::SystemOptions;
use crate::units::{RateValue, SizeValue};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeProfile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Requirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_options: Option<SystemOptions>,
}

impl NodeProfile {
    pub fn requirements(&self) -> &Requirements {
        static EMPTY: Requirements = Requirements::EMPTY;
        self.requirements.as_ref().unwrap_or(&EMPTY)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<RamRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<OsRequirement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_checks: Vec<CustomCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRequirements>,
}

impl Requirements {
    pub const EMPTY: Requirements = Requirements {
        cpu: None,
        ram: None,
        os: Vec::new(),
        custom_checks: Vec::new(),
        volumes: Vec::new(),
        devices: Vec::new(),
        network: None,
    };
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RamRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<SizeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<SizeValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OsRequirement {
    /// Matched against `ID` and `ID_LIKE` of `/etc/os-release`.
    pub name: String,
    /// Matched against `VERSION_ID` by prefix; empty accepts every version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<OsVersion>,
}

/// A version string. YAML would read `7.10` as the float 7.1, so floats are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsVersion(pub String);

impl Serialize for OsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OsVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version string such as \"7\" or \"7.9\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OsVersion, E> {
                Ok(OsVersion(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OsVersion, E> {
                Ok(OsVersion(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OsVersion, E> {
                Ok(OsVersion(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OsVersion, E> {
                Err(E::custom(format!(
                    "version {v} is a number: quote it (\"{v}\") so that versions such as \"7.10\" keep their digits"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A bash script, inline or `file://` (resolved at build time).
    pub script: String,
    /// How long the script may run, e.g. `30s` or `2m` (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Host path; may hold shell wildcards.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<SizeValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_transfer_rate: Option<RateValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_if_missing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if_missing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
}

impl Volume {
    pub fn create_if_missing(&self) -> bool {
        self.create_if_missing.unwrap_or(true)
    }
    pub fn skip_if_missing(&self) -> bool {
        self.skip_if_missing.unwrap_or(false)
    }
    pub fn recursive(&self) -> bool {
        self.recursive.unwrap_or(false)
    }
    /// Where the volume appears inside planet: `targetPath`, or the host path.
    pub fn target(&self) -> &str {
        self.target_path.as_deref().unwrap_or(&self.path)
    }
    pub fn has_wildcard(&self) -> bool {
        self.path.contains(['*', '?', '['])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    /// A glob such as `/dev/nvidia*`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<DevicePermissions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<FileMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

impl Device {
    pub fn permissions(&self) -> DevicePermissions {
        self.permissions.clone().unwrap_or(DevicePermissions {
            read: true,
            write: true,
            mknod: false,
        })
    }
    pub fn file_mode(&self) -> u32 {
        self.file_mode.map_or(0o666, |m| m.0)
    }
}

/// A composition of `r`, `w` and `m`, as the device cgroup writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePermissions {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl fmt::Display for DevicePermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (set, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if set {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for DevicePermissions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("device permissions are empty: use a combination of r, w and m".into());
        }
        let mut p = DevicePermissions {
            read: false,
            write: false,
            mknod: false,
        };
        for c in s.chars() {
            let slot = match c {
                'r' => &mut p.read,
                'w' => &mut p.write,
                'm' => &mut p.mknod,
                other => {
                    return Err(format!(
                        "invalid device permission '{other}' in \"{s}\": use only r (read), w (write) and m (mknod)"
                    ));
                }
            };
            if *slot {
                return Err(format!("device permission '{c}' repeated in \"{s}\""));
            }
            *slot = true;
        }
        Ok(p)
    }
}

impl Serialize for DevicePermissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DevicePermissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor::new("device permissions such as \"rw\""))
    }
}

/// Parses a scalar inside the visitor, so the YAML error carries the scalar's own position.
pub(crate) struct ParseVisitor<T> {
    expecting: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> ParseVisitor<T> {
    pub(crate) fn new(expecting: &'static str) -> Self {
        ParseVisitor {
            expecting,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = E2>, E2: fmt::Display> serde::de::Visitor<'_> for ParseVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

/// A Unix mode written as an octal string, e.g. `"0755"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.chars().all(|c| ('0'..='7').contains(&c))
        {
            return Err(format!(
                "invalid mode \"{s}\": write an octal string such as \"0755\""
            ));
        }
        u32::from_str_radix(digits, 8)
            .map(FileMode)
            .map_err(|e| format!("invalid mode \"{s}\": {e}"))
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string such as \"0755\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                // YAML reads an unquoted 0755 as the decimal 755; refuse rather than guess.
                Err(E::custom(format!(
                    "mode {v} is a number: quote it as an octal string (\"0{v}\")"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_transfer_rate: Option<RateValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRequirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRequirement {
    pub protocol: Protocol,
    pub ranges: Vec<PortRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// `N` or `A-B` with `A <= B <= 65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| -> Result<u16, String> {
            let n: u32 = p.trim().parse().map_err(|_| {
                format!("invalid port range \"{s}\": write a port (\"8080\") or a range (\"10000-10005\")")
            })?;
            match u16::try_from(n) {
                Ok(0) | Err(_) => Err(format!(
                    "invalid port range \"{s}\": port {n} is outside 1-65535"
                )),
                Ok(p) => Ok(p),
            }
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!(
                "invalid port range \"{s}\": the first port is greater than the last"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParseVisitor::new(
            "a port (\"8080\") or a range (\"10000-10005\")",
        ))
    }
}
