//! The two small value types of planet's configuration that users also write in manifests: a
//! file mode and device access. planet keeps its own (the manifest's types stay in
//! `cluster-image`); both serialize as the same strings, `"0640"` and `"rw"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Unix mode, written as an octal string (`"0755"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(FileMode)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an octal mode")))
    }
}

/// What the device cgroup allows on a device: a combination of read, write and mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAccess {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (set, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if set {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for DeviceAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut a = DeviceAccess {
            read: false,
            write: false,
            mknod: false,
        };
        for c in s.chars() {
            let slot = match c {
                'r' => &mut a.read,
                'w' => &mut a.write,
                'm' => &mut a.mknod,
                _ => return Err(format!("{s:?} is not a device access such as \"rw\"")),
            };
            *slot = true;
        }
        if s.is_empty() {
            return Err("device access is empty: use r, w and m".into());
        }
        Ok(a)
    }
}

impl Serialize for DeviceAccess {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DeviceAccess {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_as_the_strings_manifests_use() {
        let m: FileMode = serde_json::from_str("\"0640\"").unwrap();
        assert_eq!(m, FileMode(0o640));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"0640\"");
        let a: DeviceAccess = serde_json::from_str("\"rm\"").unwrap();
        assert_eq!(a.to_string(), "rm");
        assert!(serde_json::from_str::<DeviceAccess>("\"rx\"").is_err());
        assert!(serde_json::from_str::<FileMode>("\"0999\"").is_err());
    }
}
