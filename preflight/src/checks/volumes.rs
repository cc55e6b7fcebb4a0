//! `requirements.volumes`: existence (or where it will be created), free capacity, filesystem
//! type and sequential direct-write rate.

use std::path::{Path, PathBuf};

use cluster_image::manifest::Volume;
use cluster_image::units::{Rate, Size};

use crate::check::{CheckResult, Status};
use crate::checks::disk::{RateLimits, measure_write_rate};
use crate::host::Host;

pub struct VolumeCtx<'a> {
    pub host: &'a Host,
    /// None: rate tests are off (`--skip-rate-tests`).
    pub rate_limits: Option<&'a RateLimits>,
}

pub fn check_volume(ctx: &VolumeCtx<'_>, v: &Volume) -> Vec<CheckResult> {
    let host = ctx.host;
    if v.has_wildcard() {
        let matches = match host.glob(&v.path) {
            Ok(m) => m,
            Err(e) => {
                return vec![
                    CheckResult::fail(format!("volume:{}:exists", v.path), "Volume path")
                        .detail(e.to_string())
                        .fix("correct the volume's path pattern in the manifest"),
                ];
            }
        };
        if matches.is_empty() {
            let id = format!("volume:{}:exists", v.path);
            return vec![if v.skip_if_missing() {
                CheckResult::skip(id, "Volume path")
                    .measured("no path matches")
                    .detail("skipIfMissing is set")
            } else {
                CheckResult::fail(id, "Volume path")
                    .measured("no path matches")
                    .required(format!("at least one path matching {}", v.path))
                    .fix(format!(
                        "create a directory matching {} (a pattern cannot be created for you), or set skipIfMissing: true",
                        v.path
                    ))
            }];
        }
        return matches.iter().flat_map(|p| check_one(ctx, v, p)).collect();
    }
    check_one(ctx, v, Path::new(&v.path))
}

fn check_one(ctx: &VolumeCtx<'_>, v: &Volume, path: &Path) -> Vec<CheckResult> {
    let host = ctx.host;
    let shown = path.display().to_string();
    let id = |what: &str| format!("volume:{shown}:{what}");
    let mut out = Vec::new();
    let title = match &v.name {
        Some(n) => format!("Volume {n}"),
        None => "Volume".to_string(),
    };

    // Where the checks look: the path, or the directory it will be created in.
    let target: PathBuf = match host.metadata(path) {
        Ok(meta) => {
            let kind = if meta.is_dir() { "directory" } else { "file" };
            out.push(
                CheckResult::pass(id("exists"), format!("{title}: path"))
                    .measured(format!("exists ({kind})")),
            );
            if meta.is_dir() {
                path.to_path_buf()
            } else {
                path.parent().unwrap_or(Path::new("/")).to_path_buf()
            }
        }
        Err(_) if v.skip_if_missing() => {
            out.push(
                CheckResult::skip(id("exists"), format!("{title}: path"))
                    .measured("missing")
                    .detail("skipIfMissing is set: the volume is not used on this host"),
            );
            return out;
        }
        Err(_) if v.create_if_missing() => {
            let parent = host.nearest_existing(path);
            out.push(
                CheckResult::pass(id("exists"), format!("{title}: path")).measured(format!(
                    "missing, will be created (checking {} instead)",
                    parent.display()
                )),
            );
            parent
        }
        Err(e) => {
            out.push(
                CheckResult::fail(id("exists"), format!("{title}: path"))
                    .measured(format!("missing ({e})"))
                    .required("exists (createIfMissing: false)")
                    .fix(format!(
                        "create {shown} (mount the volume there), or set createIfMissing: true"
                    )),
            );
            return out;
        }
    };

    if let Some(cap) = &v.capacity {
        out.push(match host.statvfs(&target) {
            Ok(space) => {
                let ok = space.available >= cap.value.0;
                CheckResult::new(
                    id("capacity"),
                    format!("{title}: free space"),
                    if ok { Status::Pass } else { Status::Fail },
                )
                .measured(format!(
                    "{} free of {} on {}",
                    Size(space.available),
                    Size(space.total),
                    target.display()
                ))
                .required(format!("at least {} ({})", cap.text, Size(cap.value.0)))
                .fix_unless_pass(format!(
                    "free {} on the filesystem holding {}, or mount a larger volume at {shown}",
                    Size(cap.value.0.saturating_sub(space.available)),
                    target.display()
                ))
            }
            Err(e) => CheckResult::fail(id("capacity"), format!("{title}: free space"))
                .measured("unknown")
                .required(format!("at least {}", cap.text))
                .detail(e.to_string())
                .fix(format!("make {} accessible to root", target.display())),
        });
    }

    if !v.filesystems.is_empty() {
        let required = v.filesystems.join(" or ");
        out.push(match host.mount_of(&target) {
            Ok(Some(m)) => {
                let ok = v.filesystems.contains(&m.fs_type);
                CheckResult::new(
                    id("filesystem"),
                    format!("{title}: filesystem"),
                    if ok { Status::Pass } else { Status::Fail },
                )
                .measured(format!(
                    "{} ({} mounted at {})",
                    m.fs_type,
                    m.source,
                    m.mount_point.display()
                ))
                .required(required.clone())
                .fix_unless_pass(format!(
                    "mount a {required} filesystem at {shown} (it is on {} now)",
                    m.fs_type
                ))
            }
            Ok(None) => CheckResult::fail(id("filesystem"), format!("{title}: filesystem"))
                .measured("no mount holds it")
                .required(required)
                .fix("check that /proc is mounted"),
            Err(e) => CheckResult::fail(id("filesystem"), format!("{title}: filesystem"))
                .measured("unknown")
                .required(required)
                .detail(e.to_string())
                .fix("check that /proc is mounted"),
        });
    }

    if let Some(min) = &v.min_transfer_rate {
        let required = format!("at least {} (O_DIRECT 1 MiB sequential writes)", min.text);
        let title = format!("{title}: write rate");
        out.push(match ctx.rate_limits {
            None => CheckResult::skip(id("rate"), title)
                .required(required)
                .detail("rate tests are turned off (--skip-rate-tests)"),
            Some(limits) => {
                let start = std::time::Instant::now();
                let r = match measure_write_rate(&host.path(&target), limits) {
                Ok(m) => {
                    let rate = m.rate();
                    let ok = rate >= Rate(min.value.0);
                    let how = if m.direct {
                        String::new()
                    } else {
                        " (buffered + fdatasync: no O_DIRECT on this filesystem)".to_string()
                    };
                    CheckResult::new(
                        id("rate"),
                        title,
                        if ok { Status::Pass } else { Status::Fail },
                    )
                    .measured(format!(
                        "{rate} ({} in {:.2} s){how}",
                        Size(m.bytes),
                        m.elapsed.as_secs_f64()
                    ))
                    .required(required)
                    .fix_unless_pass(format!(
                        "put {shown} on faster storage (SSD, or a less busy disk): it must sustain {}",
                        min.text
                    ))
                }
                Err(e) => CheckResult::fail(id("rate"), title)
                    .measured("not measured")
                    .required(required)
                    .detail(e.to_string())
                    .fix(format!(
                        "make {} writable by root with some free space",
                        target.display()
                    )),
                };
                r.took(start.elapsed())
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FixtureRoot;
    use std::time::Duration;

    fn vol(yaml: &str) -> Volume {
        yaml_from(yaml)
    }

    fn yaml_from(yaml: &str) -> Volume {
        serde_json::from_value(serde_json::from_str(yaml).unwrap()).unwrap()
    }

    fn ctx(host: &Host) -> VolumeCtx<'_> {
        VolumeCtx {
            host,
            rate_limits: None,
        }
    }

    fn mountinfo(fx: FixtureRoot, root: &Path) -> FixtureRoot {
        // Mount points as the fixture sees them: the fixture root is "/".
        let _ = root;
        fx.file(
            "proc/self/mountinfo",
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 8:2 / /var/lib/data rw - xfs /dev/sdb1 rw\n",
        )
    }

    #[test]
    fn filesystem_of_the_mount_holding_the_path() {
        let fx = FixtureRoot::new().dir("var/lib/data/sub").dir("var/log");
        let root = fx.path().to_path_buf();
        let fx = mountinfo(fx, &root);
        let h = fx.host();
        let v = vol(r#"{"path":"/var/lib/data/sub","filesystems":["ext4","xfs"]}"#);
        let r = check_volume(&ctx(&h), &v);
        let fs = r
            .iter()
            .find(|c| c.id == "volume:/var/lib/data/sub:filesystem")
            .unwrap();
        assert_eq!(fs.status, Status::Pass);
        assert_eq!(
            fs.measured.as_deref(),
            Some("xfs (/dev/sdb1 mounted at /var/lib/data)")
        );
        let v = vol(r#"{"path":"/var/log","filesystems":["xfs"]}"#);
        let r = check_volume(&ctx(&h), &v);
        let fs = r
            .iter()
            .find(|c| c.id == "volume:/var/log:filesystem")
            .unwrap();
        assert_eq!(fs.status, Status::Fail);
        assert_eq!(
            fs.fix.as_deref(),
            Some("mount a xfs filesystem at /var/log (it is on ext4 now)")
        );
    }

    #[test]
    fn missing_path_checks_its_nearest_parent_when_it_will_be_created() {
        let fx = FixtureRoot::new().dir("var/lib");
        let fx = mountinfo(fx, Path::new("/"));
        let h = fx.host();
        let v = vol(r#"{"path":"/var/lib/new/data","capacity":"1B","filesystems":["ext4"]}"#);
        let r = check_volume(&ctx(&h), &v);
        assert_eq!(r.len(), 3, "{r:#?}");
        assert_eq!(r[0].id, "volume:/var/lib/new/data:exists");
        assert_eq!(r[0].status, Status::Pass);
        assert!(
            r[0].measured
                .as_ref()
                .unwrap()
                .contains("checking /var/lib instead")
        );
        assert_eq!(r[1].status, Status::Pass, "{:?}", r[1]);
        assert_eq!(
            r[2].measured.as_deref(),
            Some("ext4 (/dev/sda1 mounted at /)")
        );
    }

    #[test]
    fn skip_and_no_create() {
        let fx = FixtureRoot::new();
        let h = fx.host();
        let r = check_volume(
            &ctx(&h),
            &vol(r#"{"path":"/opt/x","skipIfMissing":true,"capacity":"1TB"}"#),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, Status::Skip);
        let r = check_volume(
            &ctx(&h),
            &vol(r#"{"path":"/opt/x","createIfMissing":false}"#),
        );
        assert_eq!(r[0].status, Status::Fail);
        assert!(r[0].fix.as_ref().unwrap().contains("create /opt/x"));
    }

    #[test]
    fn capacity_beyond_free_space_fails_with_the_numbers() {
        let fx = FixtureRoot::new().dir("data");
        let h = fx.host();
        let r = check_volume(&ctx(&h), &vol(r#"{"path":"/data","capacity":"512TB"}"#));
        let c = &r[1];
        assert_eq!(c.id, "volume:/data:capacity");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.required.as_deref(), Some("at least 512TB (465.7 TiB)"));
        assert!(c.measured.as_ref().unwrap().contains("free of"));
        assert!(c.fix.as_ref().unwrap().starts_with("free "));
    }

    #[test]
    fn wildcards_expand_and_an_empty_match_fails_unless_skipped() {
        let fx = FixtureRoot::new()
            .dir("srv/dir-001")
            .dir("srv/dir-002")
            .dir("srv/dir-0003");
        let h = fx.host();
        let r = check_volume(&ctx(&h), &vol(r#"{"path":"/srv/dir-???"}"#));
        let ids: Vec<&str> = r.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["volume:/srv/dir-001:exists", "volume:/srv/dir-002:exists"]
        );
        let r = check_volume(&ctx(&h), &vol(r#"{"path":"/path/to/dir-???"}"#));
        assert_eq!(r[0].status, Status::Fail);
        assert_eq!(r[0].id, "volume:/path/to/dir-???:exists");
        let r = check_volume(
            &ctx(&h),
            &vol(r#"{"path":"/path/to/dir-???","skipIfMissing":true}"#),
        );
        assert_eq!(r[0].status, Status::Skip);
    }

    #[test]
    fn rate_is_measured_in_the_volume_or_skipped() {
        let fx = FixtureRoot::new().dir("data");
        let h = fx.host();
        let v = vol(r#"{"path":"/data","minTransferRate":"1kB/s"}"#);
        let r = check_volume(&ctx(&h), &v);
        assert_eq!(r[1].status, Status::Skip);
        let limits = RateLimits {
            warmup_bytes: 1 << 20,
            warmup_time: Duration::from_millis(20),
            max_bytes: 4 << 20,
            max_time: Duration::from_millis(500),
            block: 1 << 20,
        };
        let c = VolumeCtx {
            host: &h,
            rate_limits: Some(&limits),
        };
        let r = check_volume(&c, &v);
        assert_eq!(r[1].id, "volume:/data:rate");
        assert_eq!(r[1].status, Status::Pass, "{:?}", r[1]);
        assert!(r[1].measured.as_ref().unwrap().contains("MB/s"));
        let v = vol(r#"{"path":"/data","minTransferRate":"1000TB/s"}"#);
        let r = check_volume(&c, &v);
        assert_eq!(r[1].status, Status::Fail);
        assert_eq!(
            std::fs::read_dir(fx.path().join("data")).unwrap().count(),
            0
        );
    }
}
