//! The install phases, one file each, in the order they run.

pub(crate) mod agent;
pub(crate) mod checks;
pub(crate) mod configure;
pub(crate) mod control_plane;
pub(crate) mod finish;
pub(crate) mod health;
pub(crate) mod hooks;
pub(crate) mod images;
pub(crate) mod join_agent;
pub(crate) mod kernel;
pub(crate) mod node_ready;
pub(crate) mod pki;
pub(crate) mod planet_image;
pub(crate) mod service;
pub(crate) mod start;
pub(crate) mod system_workloads;
pub(crate) mod user;
pub(crate) mod values;
pub(crate) mod volumes;

use super::Ctx;
use operation::Phase;

pub fn all() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(agent::Agent),
        Box::new(checks::Checks),
        Box::new(kernel::Kernel),
        Box::new(user::User),
        Box::new(planet_image::PlanetImage),
        Box::new(pki::Pki),
        Box::new(configure::Configure),
        Box::new(volumes::Volumes),
        Box::new(service::Service),
        Box::new(start::Start),
        Box::new(health::Health),
        Box::new(control_plane::ControlPlane),
        Box::new(node_ready::NodeReady),
        Box::new(images::Images),
        Box::new(system_workloads::SystemWorkloads),
        Box::new(values::Values),
        Box::new(hooks::INSTALL),
        Box::new(hooks::POST_INSTALL),
        Box::new(finish::Finish),
        Box::new(join_agent::JoinAgent),
    ]
}

/// Every record the install writes to disk is a contract with later versions (an upgrade reads
/// what an older gravity wrote): each is pinned by a golden file under `tests/golden/records/`.
#[cfg(test)]
mod records {
    use std::path::{Path, PathBuf};

    use super::super::state::{self, ClusterRecord, RecordError, Supervisor};
    use super::{kernel, user, volumes};
    use crate::node::NodeIdentity;

    fn golden(name: &str, write: impl FnOnce(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        write(&path);
        golden::check_in(
            env!("CARGO_MANIFEST_DIR"),
            &format!("records/{name}"),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }

    #[test]
    fn golden_records() {
        golden("cluster.json", |p| {
            state::write_record(
                p,
                &ClusterRecord {
                    name: "example".into(),
                    version: "1.0.0".into(),
                    installed_ms: 1_700_000_000_000,
                    node: NodeIdentity {
                        node_name: "node-1".into(),
                        advertise_ip: "10.0.0.5".parse().unwrap(),
                        role: "node".into(),
                        joined: None,
                    },
                    flavor: "one".into(),
                    service_uid: 1001,
                    service_gid: 1001,
                    supervisor: Supervisor::Gravity,
                    image_dir: PathBuf::from("/var/lib/gravity/images/example"),
                },
            )
            .unwrap()
        });
        golden("kernel.json", |p| {
            state::write_record(
                p,
                &kernel::Record {
                    files: vec![
                        kernel::Before {
                            path: "/etc/sysctl.d/99-gravity.conf".into(),
                            content: None,
                        },
                        kernel::Before {
                            path: "/proc/sys/net/ipv4/ip_forward".into(),
                            content: Some("0\n".into()),
                        },
                    ],
                },
            )
            .unwrap()
        });
        golden("volumes.json", |p| {
            state::write_record(
                p,
                &volumes::Created {
                    dirs: vec!["/var/lib/app".into()],
                },
            )
            .unwrap()
        });
        golden("service-user.json", |p| {
            state::write_record(
                p,
                &user::Record {
                    uid: 1001,
                    gid: 1001,
                    created_user: true,
                    created_group: false,
                },
            )
            .unwrap()
        });
    }

    #[test]
    fn damaged_or_newer_records_are_refused_never_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volumes.json");
        assert!(
            state::read_record::<volumes::Created>(&path)
                .unwrap()
                .dirs
                .is_empty(),
            "no record yet is the empty record"
        );
        for (bytes, want) in [
            (&b"{\"format\": 1, \"dirs\": [\"/a\""[..], "damaged"),
            (b"", "damaged"),
            (b"{\"dirs\": []}", "no format"),
            (b"{\"format\": 1, \"dirs\": 3}", "damaged"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let e = state::read_record::<volumes::Created>(&path).unwrap_err();
            assert!(matches!(e, RecordError::Damaged { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        std::fs::write(&path, b"{\"format\": 9, \"dirs\": []}").unwrap();
        let e = state::read_record::<volumes::Created>(&path).unwrap_err();
        assert!(e.to_string().contains("format 9"), "{e}");
    }
}
