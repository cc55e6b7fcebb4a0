//! The generated unit files are compared with golden files, so every change is deliberate.
//! To accept a change: `UPDATE_GOLDEN=1 cargo test -p systemd --test golden_units`.

use std::path::PathBuf;

use systemd::units::PlanetUnit;

fn golden(name: &str, actual: &str) {
    golden::check_in(env!("CARGO_MANIFEST_DIR"), name, actual);
}

#[test]
fn planet_unit() {
    let unit = PlanetUnit {
        gravity: PathBuf::from("/var/lib/gravity/bin/gravity"),
        state_dir: PathBuf::from("/var/lib/gravity"),
        cluster: "MyCluster".into(),
        cluster_version: "1.2.3-alpha.1".into(),
    };
    golden(
        "gravity-planet.service",
        &unit.render().replace(env!("CARGO_PKG_VERSION"), "VERSION"),
    );
}

#[test]
fn planet_unit_with_an_unusual_state_dir() {
    let unit = PlanetUnit {
        gravity: PathBuf::from("/opt/my tools/gravity"),
        state_dir: PathBuf::from("/srv/100%/state"),
        cluster: "c".into(),
        cluster_version: "1.0.0".into(),
    };
    let text = unit.render();
    assert!(
        text.contains(
            "ExecStart=\"/opt/my tools/gravity\" planet run --state-dir /srv/100%%/state"
        ),
        "{text}"
    );
    assert!(text.contains("RequiresMountsFor=/srv/100%%/state"));
}

#[test]
fn agent_unit() {
    let unit = systemd::units::AgentUnit {
        gravity: PathBuf::from("/var/lib/gravity/bin/gravity"),
        state_dir: PathBuf::from("/var/lib/gravity"),
        cluster: "MyCluster".into(),
        cluster_version: "1.2.3-alpha.1".into(),
    };
    golden(
        "gravity-agent.service",
        &unit.render().replace(env!("CARGO_PKG_VERSION"), "VERSION"),
    );
}
