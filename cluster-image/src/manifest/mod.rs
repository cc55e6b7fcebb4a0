//! The Image Manifest (`app.yaml`): typed, strictly validated, with positioned errors.

mod error;
mod hooks;
mod installer;
mod load;
mod positions;
mod profile;
mod resolve;
mod system;
mod types;
mod validate;

use std::borrow::Cow;

pub use error::{Diagnostic, ManifestError};
pub use hooks::{HOOK_NAMES, Hook, Hooks};
pub use installer::{Eula, Flavor, FlavorNode, Flavors, Installer};
pub use load::{Loaded, closest, load_file, load_resolved, load_str};
pub use positions::{Position, Positions};
pub(crate) use profile::ParseVisitor;
pub use profile::{
    CpuRange, CustomCheck, Device, DevicePermissions, FileMode, NetworkRequirements, NodeProfile,
    OsRequirement, OsVersion, PortRange, PortRequirement, Protocol, RamRange, Requirements, Volume,
};
pub use resolve::{Fetch, Offline, ResolvedSource, is_uri};
pub use system::{DaemonArgs, Docker, Kubelet, SystemOptions};
pub use types::*;
pub use validate::{API_VERSIONS, check_job};

/// The profile a manifest without `nodeProfiles` gets.
pub const DEFAULT_PROFILE: &str = "node";
/// The flavor a manifest without flavors gets.
pub const DEFAULT_FLAVOR: &str = "default";

impl Manifest {
    /// The node profiles, or the single default profile the spec implies when none is given.
    pub fn profiles(&self) -> Cow<'_, [NodeProfile]> {
        if self.node_profiles.is_empty() {
            Cow::Owned(vec![NodeProfile {
                name: DEFAULT_PROFILE.to_string(),
                description: Some("Default node profile".to_string()),
                ..NodeProfile::default()
            }])
        } else {
            Cow::Borrowed(&self.node_profiles)
        }
    }

    /// The flavors, or one flavor of one node of the first profile.
    pub fn flavors(&self) -> Cow<'_, [Flavor]> {
        match self.installer.as_ref().and_then(|i| i.flavors.as_ref()) {
            Some(f) if !f.items.is_empty() => Cow::Borrowed(&f.items),
            _ => Cow::Owned(vec![Flavor {
                name: DEFAULT_FLAVOR.to_string(),
                description: Some("A single node".to_string()),
                nodes: vec![FlavorNode {
                    profile: self.profiles()[0].name.clone(),
                    count: 1,
                }],
            }]),
        }
    }

    /// The default flavor: the declared default, else the first.
    pub fn default_flavor(&self) -> Flavor {
        let flavors = self.flavors();
        let declared = self
            .installer
            .as_ref()
            .and_then(|i| i.flavors.as_ref())
            .and_then(|f| f.default.as_deref());
        declared
            .and_then(|d| flavors.iter().find(|f| f.name == d))
            .unwrap_or(&flavors[0])
            .clone()
    }

    /// The profile named `role`, or the first one when no role is given.
    pub fn profile(&self, role: Option<&str>) -> Option<NodeProfile> {
        let profiles = self.profiles();
        match role {
            Some(r) => profiles.iter().find(|p| p.name == r).cloned(),
            None => profiles.first().cloned(),
        }
    }

    /// System options for a profile: the profile's own, falling back field by field to the
    /// cluster-wide ones.
    pub fn system_options_for(&self, profile: &NodeProfile) -> SystemOptions {
        let global = self.system_options.clone().unwrap_or_default();
        let Some(own) = profile.system_options.clone() else {
            return global;
        };
        SystemOptions {
            base_image: own.base_image.or(global.base_image),
            docker: own.docker.or(global.docker),
            etcd: own.etcd.or(global.etcd),
            kubelet: own.kubelet.or(global.kubelet),
            allow_privileged: own.allow_privileged.or(global.allow_privileged),
        }
    }

    /// The pods' overlay between nodes: vxlan unless the generic provider asks for wireguard
    /// (validation refuses any other type).
    pub fn network_type(&self) -> NetworkType {
        let kind = self
            .providers
            .as_ref()
            .and_then(|p| p.generic.as_ref())
            .and_then(|g| g.network.as_ref())
            .and_then(|n| n.kind.as_deref());
        NetworkType::ALL
            .into_iter()
            .find(|t| kind == Some(t.as_str()))
            .unwrap_or_default()
    }

    /// `<name>-<resourceVersion>`, the stem of the cluster image's file name.
    pub fn image_stem(&self) -> String {
        format!("{}-{}", self.metadata.name, self.metadata.resource_version)
    }

    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("a manifest always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn network_type_of(providers: &str) -> NetworkType {
        let text = format!(
            "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: n\n  resourceVersion: 0.1.0\n{providers}"
        );
        load_str(&text, Path::new("app.yaml"), Path::new("."), &Offline)
            .expect("a valid manifest")
            .manifest
            .network_type()
    }

    #[test]
    fn the_network_type_is_what_the_generic_provider_says_and_vxlan_by_default() {
        let names: Vec<&str> = NetworkType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            validate::NETWORK_TYPES,
            "validation accepts every type"
        );
        assert_eq!(network_type_of(""), NetworkType::Vxlan);
        for t in NetworkType::ALL {
            let yaml = format!(
                "providers:\n  generic:\n    network:\n      type: {}\n",
                t.as_str()
            );
            assert_eq!(network_type_of(&yaml), t);
        }
    }
}
