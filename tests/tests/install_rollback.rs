//! `gravity plan rollback` after an install that died with planet running: every started phase
//! is undone, the host is as before (no planet, no unit, no mounts, no volume directory the
//! install created), and a new install then succeeds.

use std::os::unix::process::ExitStatusExt;

use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;

#[test]
fn rollback_after_a_crash_leaves_the_host_as_before_and_a_new_install_works() {
    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();

    let out = inst.install(&[("GRAVITY_CRASH_AT", "health:before")]);
    assert_eq!(out.status.signal(), Some(9), "not killed:\n{}", text(&out));
    assert!(inst.app_data.is_dir(), "the volume was not created");

    let out = inst.gravity(&["plan", "rollback"]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    let left = planet::leftovers(&inst.state);
    assert!(left.is_clean(), "rollback left planet behind: {left:?}");
    assert!(
        !inst.app_data.exists(),
        "the empty volume directory the install created is still there"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(inst.state.to_str().unwrap()),
        "mounts left:\n{mounts}"
    );

    // Nothing is left to resume, and a fresh install goes through.
    let resume = inst.gravity(&["install", "--resume"]);
    assert!(!resume.status.success(), "{}", text(&resume));
    let out = inst.install(&[]);
    assert!(
        out.status.success(),
        "install after rollback failed:\n{}",
        text(&out)
    );
    assert_eq!(inst.status()["healthy"], true);

    // A volume directory that holds data is kept by the next rollback-or-uninstall.
    std::fs::write(inst.app_data.join("keep"), b"user data").unwrap();
    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall failed:\n{}", text(&out));
    assert!(
        text(&out).contains(&format!("kept {}", inst.app_data.display())),
        "{}",
        text(&out)
    );
    assert!(inst.app_data.join("keep").exists());
}
