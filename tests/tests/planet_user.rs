//! The service user with the host's real tools (useradd, groupadd with --prefix) on a copy of
//! this host's account databases: created once with the asked ids, left alone the second
//! time, refused when the uid is someone's.

use std::path::Path;

use agent::host::user::{Accounts, SystemAccounts, ensure_service_user, remove_service_user};

fn fixture_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nalice:x:1000:\n").unwrap();
    std::fs::write(
        etc.join("shadow"),
        "root:*:19000:0:99999:7:::\nalice:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::fs::write(etc.join("gshadow"), "root:*::\nalice:!::\n").unwrap();
    // useradd --prefix reads the defaults from the prefix.
    if Path::new("/etc/login.defs").exists() {
        std::fs::copy("/etc/login.defs", etc.join("login.defs")).unwrap();
    }
    root
}

#[test]
fn creates_the_service_user_with_the_real_tools() {
    tests::bins::require_root();
    let root = fixture_root();
    let accounts = SystemAccounts::under(root.path());

    let err = ensure_service_user(1000, 1000, &accounts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to the account `alice`"), "{err}");
    assert!(err.contains("--service-uid"), "{err}");

    let user = ensure_service_user(1001, 1001, &accounts).unwrap();
    assert!(user.created_user && user.created_group);
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let line = passwd.lines().find(|l| l.starts_with("planet:")).unwrap();
    assert_eq!(
        line,
        "planet:x:1001:1001:planet service user:/nonexistent:/usr/sbin/nologin"
    );
    assert!(
        std::fs::read_to_string(root.path().join("etc/group"))
            .unwrap()
            .contains("planet:x:1001:")
    );
    assert!(
        !root.path().join("nonexistent").exists(),
        "no home directory"
    );

    let again = ensure_service_user(1001, 1001, &accounts).unwrap();
    assert!(!again.created_user && !again.created_group);
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/passwd")).unwrap(),
        passwd
    );

    remove_service_user(true, true, &accounts).unwrap();
    assert!(!accounts.users().unwrap().iter().any(|u| u.name == "planet"));
    assert!(
        !accounts
            .groups()
            .unwrap()
            .iter()
            .any(|g| g.name == "planet")
    );
}
