//! `providers.generic.network.type`: the overlay between nodes that pods' traffic takes. This
//! gravity builds it with vxlan; `wireguard` is refused, not silently run as vxlan: its users
//! expect that traffic encrypted.

use cluster_image::manifest::Providers;

use crate::check::CheckResult;

/// What the cluster builds.
pub const BUILT: &str = "vxlan";

/// The check of the manifest's overlay type; none where it asks for the one built (or none).
pub fn check_network_type(providers: Option<&Providers>) -> Option<CheckResult> {
    let kind = providers?
        .generic
        .as_ref()?
        .network
        .as_ref()?
        .kind
        .as_deref()
        .filter(|k| *k != BUILT)?;
    Some(
        CheckResult::fail(format!("network-type:{kind}"), "Pod overlay network")
            .measured(format!("providers.generic.network.type: {kind}"))
            .required(format!(
                "{BUILT} (this gravity builds no {kind} overlay: pods' traffic between nodes would cross the network unencrypted over {BUILT})"
            ))
            .fix(format!(
                "set providers.generic.network.type: {BUILT} in the image's manifest, or pass --ignore-preflight-errors=network-type:{kind} to run {BUILT} knowingly"
            )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn providers(kind: Option<&str>) -> Providers {
        use cluster_image::manifest::{GenericProvider, Network};
        Providers {
            generic: Some(GenericProvider {
                network: Some(Network {
                    kind: kind.map(str::to_string),
                }),
            }),
            ..Providers::default()
        }
    }

    #[test]
    fn wireguard_is_refused_and_vxlan_or_none_passes_unchecked() {
        let c = check_network_type(Some(&providers(Some("wireguard")))).unwrap();
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.id, "network-type:wireguard");
        assert!(c.required.unwrap().contains("unencrypted"));
        assert!(check_network_type(Some(&providers(Some("vxlan")))).is_none());
        assert!(
            check_network_type(Some(&providers(None)))
                .or(check_network_type(None))
                .is_none()
        );
    }
}
