//! `run_preflight_checks` from an unpacked cluster image, and `gravity check [--image] PATH`:
//! the checks of the image's own manifest, its `file://` scripts run from the image directory.

use std::process::Command;

use tests::bins;
use tests::preflight::{Run, TmpfsDir};

#[test]
fn run_preflight_checks_uses_the_image_it_ships_in() {
    bins::require_root();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: checkme\n  resourceVersion: 0.1.0\n\
         nodeProfiles:\n  - name: node\n    requirements:\n      cpu:\n        min: 4096\n      customChecks:\n\
         \x20       - description: shipped script\n          script: file://check.sh\n",
    )
    .unwrap();
    std::fs::write(
        src.join("check.sh"),
        "#!/bin/bash\necho \"ran in $(pwd)\"\n",
    )
    .unwrap();
    let tarball = work.path().join("checkme.tar");
    let o = bins::tele_build(&src.join("app.yaml"), &tarball)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unpacked = work.path().join("image");
    std::fs::create_dir(&unpacked).unwrap();
    assert!(
        Command::new("tar")
            .arg("xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap()
            .success()
    );

    let state = TmpfsDir::new();
    // From another directory, as a user runs ./path/to/run_preflight_checks.
    let r = Run::from_output(
        Command::new(unpacked.join("run_preflight_checks"))
            .args(["--skip-rate-tests", "--output", "json", "--state-dir"])
            .arg(state.path())
            .current_dir("/")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(r.json()["subject"]["cluster"], "checkme");
    assert_eq!(r.check("cpu")["required"], "at least 4096");
    assert_eq!(
        r.check("custom:1")["measured"],
        format!("exit code 0: ran in {}", unpacked.display())
    );

    // The tarball itself, unpacked and verified under the state directory (on disk: a debug
    // gravity makes the image larger than the small tmpfs).
    let disk_state = tempfile::tempdir().unwrap();
    let r = Run::from_output(
        bins::gravity()
            .arg("--state-dir")
            .arg(disk_state.path())
            .args(["check", "--skip-rate-tests", "--output", "json", "--image"])
            .arg(&tarball)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(r.json()["subject"]["version"], "0.1.0");
    assert!(
        r.check("custom:1")["measured"]
            .as_str()
            .unwrap()
            .contains("/images/checkme"),
        "{r}"
    );

    // The same positionally, as `gravity check PATH`: the tarball (found unpacked already), the
    // unpacked directory and the manifest file.
    for target in [tarball.clone(), unpacked.clone(), src.join("app.yaml")] {
        let r = Run::from_output(
            bins::gravity()
                .arg("--state-dir")
                .arg(disk_state.path())
                .args(["check", "--skip-rate-tests", "--output", "json"])
                .arg(&target)
                .output()
                .unwrap(),
        );
        assert_eq!(r.code, 3, "{}: {r}", target.display());
        assert_eq!(
            r.json()["subject"]["cluster"],
            "checkme",
            "{}",
            target.display()
        );
    }
}
