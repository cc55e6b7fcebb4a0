//! `requirements.os`: the distribution (`ID`, `ID_LIKE`) and release (`VERSION_ID`) of
//! `/etc/os-release`.

use cluster_image::manifest::OsRequirement;

use crate::check::CheckResult;
use crate::host::Host;

/// `"7"` accepts `7` and `7.9` but not `70`.
pub fn version_matches(found: &str, wanted: &str) -> bool {
    let wanted = wanted.trim();
    found == wanted
        || found
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.') || wanted.ends_with('.'))
}

fn describe(req: &OsRequirement) -> String {
    if req.versions.is_empty() {
        format!("{} (any version)", req.name)
    } else {
        let v: Vec<&str> = req.versions.iter().map(|v| v.0.as_str()).collect();
        format!("{} {}", req.name, v.join("/"))
    }
}

pub fn check_os(host: &Host, wanted: &[OsRequirement]) -> CheckResult {
    let title = "Operating system";
    let required = wanted.iter().map(describe).collect::<Vec<_>>().join(", ");
    let release = match host.os_release() {
        Ok(r) => r,
        Err(e) => {
            return CheckResult::fail("os", title)
                .measured("unknown")
                .required(required)
                .detail(e.to_string())
                .fix("this host has no /etc/os-release: install on one of the supported distributions");
        }
    };
    let id = release.get("ID").cloned().unwrap_or_default();
    let like: Vec<String> = release
        .get("ID_LIKE")
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let version = release.get("VERSION_ID").cloned().unwrap_or_default();
    let pretty = release.get("PRETTY_NAME").cloned();
    let mut measured = if version.is_empty() {
        format!("{id} (no VERSION_ID)")
    } else {
        format!("{id} {version}")
    };
    if !like.is_empty() {
        measured.push_str(&format!(" (like {})", like.join(" ")));
    }
    let name_ok = |r: &OsRequirement| r.name == id || like.contains(&r.name);
    let matched = wanted.iter().find(|r| {
        name_ok(r)
            && (r.versions.is_empty() || r.versions.iter().any(|v| version_matches(&version, &v.0)))
    });
    let result = match matched {
        Some(_) => CheckResult::pass("os", title),
        None => {
            let fix = match wanted.iter().find(|r| name_ok(r)) {
                Some(r) => format!(
                    "{id} {version} is not a supported release of {}: use {}",
                    r.name,
                    describe(r)
                ),
                None => format!("{id} is not supported by this cluster image: use {required}"),
            };
            CheckResult::fail("os", title).fix(fix)
        }
    };
    let result = result.measured(measured).required(required);
    match pretty {
        Some(p) => result.detail(format!("PRETTY_NAME=\"{p}\"")),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::testutil::FixtureRoot;
    use cluster_image::manifest::OsVersion;

    fn req(name: &str, versions: &[&str]) -> OsRequirement {
        OsRequirement {
            name: name.into(),
            versions: versions.iter().map(|v| OsVersion(v.to_string())).collect(),
        }
    }

    fn host(os_release: &str) -> FixtureRoot {
        FixtureRoot::new().file("etc/os-release", os_release)
    }

    #[test]
    fn version_prefix_matches_on_dot_boundaries() {
        assert!(version_matches("7.9", "7"));
        assert!(version_matches("7", "7"));
        assert!(version_matches("7.9.2009", "7.9"));
        assert!(!version_matches("70", "7"));
        assert!(!version_matches("7.3", "7.2"));
        assert!(!version_matches("", "7"));
    }

    #[test]
    fn centos_7_9_meets_centos_7() {
        let fx = host("ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7.9\"\n");
        let wanted = [req("centos", &["7"]), req("rhel", &["7.2", "7.3"])];
        let r = check_os(&fx.host(), &wanted);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measured.as_deref(), Some("centos 7.9 (like rhel fedora)"));
    }

    #[test]
    fn debian_fails_and_names_what_was_found_and_wanted() {
        let fx =
            host("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
        let wanted = [req("centos", &["7"]), req("rhel", &["7.2", "7.3"])];
        let r = check_os(&fx.host(), &wanted);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measured.as_deref(), Some("debian 12"));
        assert_eq!(r.required.as_deref(), Some("centos 7, rhel 7.2/7.3"));
        assert_eq!(
            r.fix.as_deref(),
            Some("debian is not supported by this cluster image: use centos 7, rhel 7.2/7.3")
        );
    }

    #[test]
    fn id_like_counts_and_wrong_release_says_so() {
        let fx = host("ID=rocky\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.6\"\n");
        let r = check_os(&fx.host(), &[req("rhel", &["8"])]);
        assert_eq!(r.status, Status::Pass);
        let r = check_os(&fx.host(), &[req("rhel", &["7.2", "7.3"])]);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.fix
                .unwrap()
                .contains("rocky 8.6 is not a supported release of rhel")
        );
        let r = check_os(&fx.host(), &[req("rocky", &[])]);
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn usr_lib_os_release_is_the_fallback() {
        let fx = FixtureRoot::new().file("usr/lib/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\n");
        let r = check_os(&fx.host(), &[req("ubuntu", &["22.04"])]);
        assert_eq!(r.status, Status::Pass);
        let empty = FixtureRoot::new();
        let r = check_os(&empty.host(), &[req("ubuntu", &[])]);
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.unwrap().contains("/etc/os-release"));
    }
}
