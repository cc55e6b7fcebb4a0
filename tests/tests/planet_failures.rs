//! planet that cannot start says why, quickly, and leaves nothing behind: a corrupt image, a
//! missing volume, an unconfigured state directory.

use tests::planet::{Planet, ServiceUser};
use tests::serial;

const MANIFEST: &str = r#"apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: planet-failures
  resourceVersion: 0.0.1
"#;

fn assert_clean(planet: &Planet) {
    let left = planet::leftovers(&planet.state);
    assert!(left.is_clean(), "left on the host: {left}");
    assert!(
        !planet.state.join("planet/supervisor.pid").exists(),
        "a daemon was left restarting a planet that cannot start"
    );
}

#[test]
fn start_fails_with_the_reason() {
    let _lock = serial::lock("planet");
    let _user = ServiceUser::expect(1001);

    // Not configured at all.
    let planet = Planet::new();
    let out = planet.gravity(&["planet", "start"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("planet is not configured"), "{err}");

    // A corrupt image: refused before anything is mounted.
    planet.configure(MANIFEST, &["--service-uid", "1001"]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(planet.state.join("planet/config.json")).unwrap())
            .unwrap();
    let image = std::path::PathBuf::from(config["image"]["path"].as_str().unwrap());
    // The import may be a hard link to the build cache: replace the file, never write into it.
    let copy = image.with_extension("tmp");
    std::fs::copy(&image, &copy).unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(b"corruption").unwrap();
    }
    std::fs::rename(&copy, &image).unwrap();
    let started = std::time::Instant::now();
    let out = planet.gravity(&["planet", "start", "--timeout", "60s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is corrupt"), "{err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    let (healthy, status) = planet.status(None);
    assert!(!healthy);
    assert_eq!(status["state"], "failed", "{status:#}");
    assert_clean(&planet);

    // A volume that must exist and does not: the message names it and the way out.
    let planet = Planet::new();
    let manifest = format!(
        "{MANIFEST}nodeProfiles:\n  - name: node\n    requirements:\n      volumes:\n        - name: data\n          path: {}/missing\n          createIfMissing: false\n",
        planet.work.display()
    );
    planet.configure(&manifest, &["--service-uid", "1001"]);
    let out = planet.gravity(&["planet", "start", "--timeout", "60s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("volume data"), "{err}");
    assert!(err.contains("does not exist on this host"), "{err}");
    assert_clean(&planet);
}
