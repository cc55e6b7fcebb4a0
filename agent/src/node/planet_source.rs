//! Which planet image of the cluster image a node profile runs.

use std::path::{Path, PathBuf};

use planet::artifact::{ImageError, META_FILE};

/// The directory of the planet image a node profile runs: the cluster image's `planet/` itself
/// for the default image, `planet/<name>/<version>/` for `systemOptions.baseImage:
/// <name>:<version>` (a name may have `/`s, as registry references do).
pub fn source_for(planet_dir: &Path, base_image: Option<&str>) -> Result<PathBuf, ImageError> {
    let Some(reference) = base_image else {
        return Ok(planet_dir.to_path_buf());
    };
    let relative = cluster_image::layout::custom_planet_dir(reference)
        .ok_or_else(|| ImageError::BadReference(reference.to_string()))?;
    let expected = planet_dir.join(relative);
    if expected.join(META_FILE).is_file() {
        Ok(expected)
    } else {
        Err(ImageError::NoCustomImage {
            reference: reference.to_string(),
            dir: planet_dir.to_path_buf(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(dir: &Path, version: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(META_FILE),
            format!(r#"{{"version": "{version}", "format": "erofs", "file": "planet.erofs", "sha256": "00", "size": 1}}"#),
        )
        .unwrap();
    }

    #[test]
    fn finds_custom_images_per_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let planet = tmp.path().join("planet");
        meta(&planet, "1.0.0");
        meta(&planet.join("custom-planet/1.0.0"), "1.0.0-custom");
        assert_eq!(source_for(&planet, None).unwrap(), planet);
        assert_eq!(
            source_for(&planet, Some("custom-planet:1.0.0")).unwrap(),
            planet.join("custom-planet/1.0.0")
        );
        let err = source_for(&planet, Some("other:2.0.0"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("planet/other/2.0.0"), "{err}");
        assert!(matches!(
            source_for(&planet, Some("../x:1")),
            Err(ImageError::BadReference(_))
        ));
        assert!(matches!(
            source_for(&planet, Some("noversion")),
            Err(ImageError::BadReference(_))
        ));
    }
}
