//! What an upgrade may move: the cluster forward only, and etcd and Kubernetes at most one minor
//! version at a time (their projects support no other step), decided before anything changes.

use semver::Version;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VersionError {
    #[error(
        "the image is of the cluster `{image}`, but this node runs `{installed}`: an upgrade needs an image of the same cluster"
    )]
    OtherCluster { installed: String, image: String },
    #[error("{what} version {version:?} is not a version (x.y.z)")]
    NotAVersion { what: String, version: String },
    #[error(
        "the image is version {image}, and this node already runs {installed}: an upgrade goes to a newer version only"
    )]
    NotNewer { installed: String, image: String },
    #[error(
        "{component} {from} -> {to} skips a minor version, which {component} does not support: upgrade to an image with {component} {via} first"
    )]
    SkipsMinor {
        component: String,
        from: String,
        to: String,
        via: String,
    },
    #[error("{component} {from} -> {to} goes back a version, which {component} does not support")]
    Downgrade {
        component: String,
        from: String,
        to: String,
    },
}

fn parse(what: &str, version: &str) -> Result<Version, VersionError> {
    Version::parse(version.trim_start_matches('v')).map_err(|_| VersionError::NotAVersion {
        what: what.to_string(),
        version: version.to_string(),
    })
}

/// The image must be of the installed cluster and newer than it.
pub fn check_cluster(
    installed_name: &str,
    installed_version: &str,
    image_name: &str,
    image_version: &str,
) -> Result<(), VersionError> {
    if installed_name != image_name {
        return Err(VersionError::OtherCluster {
            installed: installed_name.to_string(),
            image: image_name.to_string(),
        });
    }
    let from = parse("the installed cluster's", installed_version)?;
    let to = parse("the image's", image_version)?;
    if to <= from {
        return Err(VersionError::NotNewer {
            installed: installed_version.to_string(),
            image: image_version.to_string(),
        });
    }
    Ok(())
}

/// A component (etcd, Kubernetes) may stay, take a newer patch or move one minor forward.
pub fn check_component(component: &str, from: &str, to: &str) -> Result<(), VersionError> {
    let (a, b) = (parse(component, from)?, parse(component, to)?);
    if b < a {
        return Err(VersionError::Downgrade {
            component: component.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    if b.major != a.major || b.minor > a.minor + 1 {
        let via = if b.major == a.major {
            format!("{}.{}", a.major, a.minor + 1)
        } else {
            format!("{}.{} (the last minor of {})", a.major, a.minor, a.major)
        };
        return Err(VersionError::SkipsMinor {
            component: component.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            via,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_moves_forward_only() {
        assert_eq!(
            check_cluster("example", "1.0.0", "example", "1.1.0"),
            Ok(())
        );
        assert_eq!(
            check_cluster("example", "1.0.0", "example", "1.0.1-rc.1"),
            Ok(())
        );
        let same = check_cluster("example", "1.1.0", "example", "1.1.0").unwrap_err();
        assert!(same.to_string().contains("newer version only"), "{same}");
        let older = check_cluster("example", "1.1.0", "example", "1.0.9").unwrap_err();
        assert!(matches!(older, VersionError::NotNewer { .. }));
        let other = check_cluster("example", "1.0.0", "other", "2.0.0").unwrap_err();
        assert!(other.to_string().contains("`other`"), "{other}");
        let bad = check_cluster("example", "1.0.0", "example", "one").unwrap_err();
        assert!(bad.to_string().contains("\"one\""), "{bad}");
    }

    #[test]
    fn components_move_at_most_one_minor() {
        for (from, to) in [
            ("v1.36.2", "v1.36.2"),
            ("v1.36.2", "v1.36.3"),
            ("v1.35.9", "v1.36.0"),
            ("3.6.4", "3.6.5"),
        ] {
            assert_eq!(
                check_component("Kubernetes", from, to),
                Ok(()),
                "{from} {to}"
            );
        }
        let skip = check_component("Kubernetes", "v1.34.1", "v1.36.0").unwrap_err();
        assert!(
            skip.to_string().contains("Kubernetes 1.35 first"),
            "names the version between: {skip}"
        );
        let back = check_component("etcd", "3.6.4", "3.5.20").unwrap_err();
        assert!(matches!(back, VersionError::Downgrade { .. }), "{back}");
        let major = check_component("etcd", "3.6.4", "4.0.0").unwrap_err();
        assert!(matches!(major, VersionError::SkipsMinor { .. }), "{major}");
    }
}
