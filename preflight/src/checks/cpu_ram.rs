//! `requirements.cpu` (logical CPUs online) and `requirements.ram` (MemTotal).

use cluster_image::manifest::{CpuRange, RamRange};
use cluster_image::units::Size;

use crate::check::{CheckResult, Status};
use crate::host::{Host, HostError};

/// Logical CPUs online: `/sys/devices/system/cpu/online`, else the `processor` lines of
/// `/proc/cpuinfo`.
pub fn cpu_count(host: &Host) -> Result<u32, HostError> {
    let online = "/sys/devices/system/cpu/online";
    if let Some(list) = host.read_opt(online)? {
        return parse_cpu_list(&list).map_err(|reason| HostError::Malformed {
            path: online.into(),
            reason,
        });
    }
    let info = host.read("/proc/cpuinfo")?;
    Ok(info
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count() as u32)
}

/// A kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(list: &str) -> Result<u32, String> {
    let mut n = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("bad CPU list \"{list}\""))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("bad CPU list \"{list}\""))?;
        if b < a {
            return Err(format!("bad CPU list \"{list}\""));
        }
        n += b - a + 1;
    }
    Ok(n)
}

/// `MemTotal` of `/proc/meminfo` in bytes (the kernel writes "kB" and means KiB).
pub fn mem_total(host: &Host) -> Result<u64, HostError> {
    use procfs_core::FromRead;
    let p = "/proc/meminfo";
    let text = host.read(p)?;
    procfs_core::Meminfo::from_read(text.as_bytes())
        .map(|m| m.mem_total)
        .map_err(|e| HostError::Malformed {
            path: p.into(),
            reason: e.to_string(),
        })
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn check_cpu(host: &Host, range: &CpuRange) -> CheckResult {
    let title = "Logical CPUs";
    let required = match (range.min, range.max) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "any".to_string(),
    };
    let n = match cpu_count(host) {
        Ok(n) => n,
        Err(e) => {
            return CheckResult::fail("cpu", title)
                .required(required)
                .measured("unknown")
                .detail(e.to_string())
                .fix("make /sys/devices/system/cpu/online or /proc/cpuinfo readable (is /proc mounted?)");
        }
    };
    let measured = format!("{n} CPU{}", plural(n));
    if let Some(min) = range.min.filter(|m| n < *m) {
        return CheckResult::fail("cpu", title)
            .measured(measured)
            .required(required)
            .fix(format!(
                "use a host (or VM) with at least {min} logical CPUs, or pick a smaller profile with --role"
            ));
    }
    if let Some(max) = range.max.filter(|m| n > *m) {
        return CheckResult::fail("cpu", title)
            .measured(measured)
            .required(required)
            .fix(format!(
                "this profile allows at most {max} CPUs: use a smaller host, or a profile meant for larger ones"
            ));
    }
    CheckResult::new("cpu", title, Status::Pass)
        .measured(measured)
        .required(required)
}

fn size_text(v: &cluster_image::units::SizeValue) -> String {
    let pretty = Size(v.value.0).to_string();
    if pretty.replace(' ', "") == v.text.replace(' ', "") {
        pretty
    } else {
        format!("{} ({pretty})", v.text)
    }
}

pub fn check_ram(host: &Host, range: &RamRange) -> CheckResult {
    let title = "Memory (MemTotal)";
    let required = match (&range.min, &range.max) {
        (Some(a), Some(b)) => format!("{} to {}", size_text(a), size_text(b)),
        (Some(a), None) => format!("at least {}", size_text(a)),
        (None, Some(b)) => format!("at most {}", size_text(b)),
        (None, None) => "any".to_string(),
    };
    let total = match mem_total(host) {
        Ok(t) => t,
        Err(e) => {
            return CheckResult::fail("ram", title)
                .required(required)
                .measured("unknown")
                .detail(e.to_string())
                .fix("make /proc/meminfo readable (is /proc mounted?)");
        }
    };
    let measured = Size(total).to_string();
    if let Some(min) = range.min.as_ref().filter(|m| total < m.value.0) {
        return CheckResult::fail("ram", title)
            .measured(measured)
            .required(required)
            .fix(format!(
                "add at least {} of memory (the profile needs {} of MemTotal), or pick another profile with --role",
                Size(min.value.0 - total),
                size_text(min)
            ));
    }
    if let Some(max) = range.max.as_ref().filter(|m| total > m.value.0) {
        return CheckResult::fail("ram", title)
            .measured(measured)
            .required(required)
            .fix(format!(
                "this profile allows at most {}: use a smaller host or a profile meant for larger ones",
                size_text(max)
            ));
    }
    CheckResult::pass("ram", title)
        .measured(measured)
        .required(required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FixtureRoot;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6,8-9\n").unwrap(), 7);
        assert_eq!(parse_cpu_list("0").unwrap(), 1);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn cpu_below_min_fails_and_says_both_numbers() {
        let fx = FixtureRoot::new().file("sys/devices/system/cpu/online", "0-1\n");
        let r = check_cpu(
            &fx.host(),
            &CpuRange {
                min: Some(8),
                max: None,
            },
        );
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measured.as_deref(), Some("2 CPUs"));
        assert_eq!(r.required.as_deref(), Some("at least 8"));
        assert!(r.fix.unwrap().contains("at least 8 logical CPUs"));
    }

    #[test]
    fn cpu_from_cpuinfo_and_max() {
        let fx = FixtureRoot::new().file(
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\n\nprocessor\t: 2\n",
        );
        let r = check_cpu(
            &fx.host(),
            &CpuRange {
                min: Some(2),
                max: Some(2),
            },
        );
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measured.as_deref(), Some("3 CPUs"));
        let r = check_cpu(
            &fx.host(),
            &CpuRange {
                min: Some(2),
                max: Some(4),
            },
        );
        assert_eq!(r.status, Status::Pass);
        assert!(r.fix.is_none());
    }

    /// The fields every kernel since 3.14 writes (procfs needs them all).
    const MEMINFO: &str = "MemTotal:        4194304 kB\nMemFree:          100000 kB\n\
MemAvailable:    2000000 kB\nBuffers:           10000 kB\nCached:           500000 kB\n\
SwapCached:            0 kB\nActive:           800000 kB\nInactive:         400000 kB\n\
Active(anon):     300000 kB\nInactive(anon):        0 kB\nActive(file):     500000 kB\n\
Inactive(file):   400000 kB\nUnevictable:           0 kB\nMlocked:               0 kB\n\
SwapTotal:             0 kB\nSwapFree:              0 kB\nDirty:                 0 kB\n\
Writeback:             0 kB\nAnonPages:        300000 kB\nMapped:           100000 kB\n\
Shmem:             10000 kB\nSlab:              50000 kB\nSReclaimable:      30000 kB\n\
SUnreclaim:        20000 kB\nKernelStack:        5000 kB\nPageTables:         5000 kB\n\
NFS_Unstable:          0 kB\nBounce:                0 kB\nWritebackTmp:          0 kB\n\
CommitLimit:     2000000 kB\nCommitted_AS:    1000000 kB\nVmallocTotal:   34359738367 kB\n\
VmallocUsed:       20000 kB\nVmallocChunk:          0 kB\n";

    #[test]
    fn ram_against_manifest_units() {
        // 4 GiB of MemTotal is more than "4GB" (4e9 bytes) and less than "32GB".
        let fx = FixtureRoot::new().file("proc/meminfo", MEMINFO);
        let min = |s: &str| RamRange {
            min: Some(s.parse().unwrap()),
            max: None,
        };
        let r = check_ram(&fx.host(), &min("4GB"));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measured.as_deref(), Some("4.0 GiB"));
        let r = check_ram(&fx.host(), &min("32GB"));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.required.as_deref(), Some("at least 32GB (29.8 GiB)"));
        assert_eq!(
            r.fix.as_deref(),
            Some(
                "add at least 25.8 GiB of memory (the profile needs 32GB (29.8 GiB) of MemTotal), or pick another profile with --role"
            )
        );
        let r = check_ram(&fx.host(), &min("4GiB"));
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn unreadable_meminfo_is_a_failure_with_a_reason() {
        let fx = FixtureRoot::new();
        let r = check_ram(
            &fx.host(),
            &RamRange {
                min: Some("1GB".parse().unwrap()),
                max: None,
            },
        );
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.unwrap().contains("/proc/meminfo"));
    }
}
