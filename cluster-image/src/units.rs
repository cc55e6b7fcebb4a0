//! Sizes (`32GB`, `512MiB`) and rates (`50MB/s`) as the Image Manifest writes them.
//!
//! Decimal units are powers of 10 and binary units powers of 2, as the spec says; `kB` is
//! lower-case k by SI convention, and `KB` is accepted too because users write it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty value: expected a size such as \"4GB\" or \"512MiB\"")]
    Empty,
    #[error("\"{0}\" has no number: expected a size such as \"4GB\" or \"512MiB\"")]
    NoNumber(String),
    #[error("unknown unit \"{unit}\" in \"{value}\" (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)")]
    UnknownUnit { value: String, unit: String },
    #[error("\"{0}\" is too large")]
    Overflow(String),
    #[error("\"{0}\" is not a rate: a rate is a size followed by /s, such as \"50MB/s\"")]
    NotARate(String),
}

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// A number of bytes, parsed from the manifest's notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = s.trim();
        if value.is_empty() {
            return Err(UnitError::Empty);
        }
        let split = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let unit = unit.trim();
        if number.is_empty() {
            return Err(UnitError::NoNumber(value.to_string()));
        }
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| UnitError::UnknownUnit {
                    value: value.to_string(),
                    unit: unit.to_string(),
                })?
        };
        let bytes = if let Some((int, frac)) = number.split_once('.') {
            // "1.5GB": exact decimal arithmetic, no float rounding.
            let digits = format!("{int}{frac}");
            let scale = 10u128.pow(frac.len() as u32);
            let whole: u128 = digits
                .parse()
                .map_err(|_| UnitError::NoNumber(value.to_string()))?;
            whole
                .checked_mul(multiplier as u128)
                .map(|v| v / scale)
                .and_then(|v| u64::try_from(v).ok())
        } else {
            number
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(multiplier))
        };
        bytes
            .map(Size)
            .ok_or_else(|| UnitError::Overflow(value.to_string()))
    }
}

impl fmt::Display for Size {
    /// Human form for reports: the largest binary unit that keeps one decimal honest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        const STEPS: &[(&str, f64)] = &[
            ("TiB", (1u64 << 40) as f64),
            ("GiB", (1u64 << 30) as f64),
            ("MiB", (1u64 << 20) as f64),
            ("KiB", 1024.0),
        ];
        for (name, unit) in STEPS {
            if b >= *unit {
                return write!(f, "{:.1} {name}", b / unit);
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// Bytes per second, written as a size followed by `/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(pub u64);

impl Rate {
    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = s.trim();
        let size = value
            .strip_suffix("/s")
            .ok_or_else(|| UnitError::NotARate(value.to_string()))?;
        Ok(Rate(size.parse::<Size>()?.0))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rates are reported in decimal MB/s, the unit disk and network tools print.
        write!(f, "{:.1} MB/s", self.0 as f64 / 1e6)
    }
}

/// Keeps the user's spelling so a resolved manifest round-trips unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity<T> {
    pub text: String,
    pub value: T,
}

impl<T: FromStr<Err = UnitError>> FromStr for Quantity<T> {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Quantity {
            text: s.to_string(),
            value: s.parse()?,
        })
    }
}

impl<T> Serialize for Quantity<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de, T: FromStr<Err = UnitError>> Deserialize<'de> for Quantity<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(crate::manifest::ParseVisitor::new(
            "a size such as \"4GB\" or a rate such as \"50MB/s\"",
        ))
    }
}

pub type SizeValue = Quantity<Size>;
pub type RateValue = Quantity<Rate>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_binary_units() {
        assert_eq!("32GB".parse::<Size>().unwrap().0, 32_000_000_000);
        assert_eq!("4kB".parse::<Size>().unwrap().0, 4_000);
        assert_eq!("4KB".parse::<Size>().unwrap().0, 4_000);
        assert_eq!("512MiB".parse::<Size>().unwrap().0, 512 << 20);
        assert_eq!("1TiB".parse::<Size>().unwrap().0, 1 << 40);
        assert_eq!("100".parse::<Size>().unwrap().0, 100);
        assert_eq!("7 B".parse::<Size>().unwrap().0, 7);
        assert_eq!("1.5GB".parse::<Size>().unwrap().0, 1_500_000_000);
        assert_eq!("0.5GiB".parse::<Size>().unwrap().0, 1 << 29);
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        assert_eq!(
            "32GX".parse::<Size>().unwrap_err().to_string(),
            "unknown unit \"GX\" in \"32GX\" (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)"
        );
        assert!(matches!("GB".parse::<Size>(), Err(UnitError::NoNumber(_))));
        assert!(matches!("".parse::<Size>(), Err(UnitError::Empty)));
        assert!(matches!(
            "99999999999TB".parse::<Size>(),
            Err(UnitError::Overflow(_))
        ));
        assert!(matches!(
            "4gb".parse::<Size>(),
            Err(UnitError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn rates_need_per_second() {
        assert_eq!("50MB/s".parse::<Rate>().unwrap().0, 50_000_000);
        assert_eq!("1GiB/s".parse::<Rate>().unwrap().0, 1 << 30);
        assert!(matches!(
            "50MB".parse::<Rate>(),
            Err(UnitError::NotARate(_))
        ));
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(Size(1 << 30).to_string(), "1.0 GiB");
        assert_eq!(Size(512).to_string(), "512 B");
        assert_eq!(Rate(52_400_000).to_string(), "52.4 MB/s");
    }
}

/// A duration as written in the manifest and on the command line: `90`, `90s`, `2m`, `1h`, `500ms`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("invalid duration \"{text}\": write e.g. \"30s\", \"2m\" or \"1h\"")
    })?;
    let d = match unit.trim() {
        "" | "s" => std::time::Duration::from_secs(n),
        "ms" => std::time::Duration::from_millis(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        other => {
            return Err(format!(
                "invalid duration \"{text}\": unknown unit \"{other}\" (use ms, s, m or h)"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!(
            "invalid duration \"{text}\": must be more than zero"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }
}
