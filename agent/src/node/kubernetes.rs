//! The cluster's Kubernetes settings, the same on the agent's side (certificates, checks) and
//! planet's (its daemons read them from the container environment).

use std::net::IpAddr;
use std::path::Path;

use cluster_image::manifest::NetworkType;

/// The Services' cluster IPs.
pub const SERVICE_CIDR: &str = "10.100.0.0/16";
/// The `kubernetes` Service's cluster IP: the first of [`SERVICE_CIDR`], in the apiserver's
/// certificate.
pub const SERVICE_IP: [u8; 4] = [10, 100, 0, 1];
/// Pods' addresses; each node gets a /24 of it.
pub const POD_CIDR: &str = "10.244.0.0/16";
/// CoreDNS's cluster IP.
pub const CLUSTER_DNS: &str = "10.100.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// kube-apiserver's port on the node's address.
pub const APISERVER_PORT: u16 = 6443;
/// Where a worker's kubelet and kube-proxy reach the apiservers: its agent's proxy to them
/// ([`crate::node::apiserver_proxy`]); the apiservers' certificates name 127.0.0.1.
pub const APISERVER_PROXY: ([u8; 4], u16) = ([127, 0, 0, 1], 6444);

/// The Kubernetes version of an imported planet image (from its `planet.json`), if it has one:
/// then the node runs Kubernetes.
pub fn version_of(image: &Path) -> Option<String> {
    let meta = planet::artifact::ImageMeta::load(&image.with_file_name("planet.json")).ok()?;
    meta.extra
        .get("kube")?
        .get("kubernetes")?
        .as_str()
        .map(str::to_string)
}

/// What the node's certificates are made for.
pub fn pki_request(node_name: &str, advertise_ip: IpAddr) -> pki::Request {
    pki::Request {
        node_name: node_name.to_string(),
        node_ips: vec![advertise_ip],
        service_ip: IpAddr::from(SERVICE_IP),
        cluster_domain: CLUSTER_DOMAIN.to_string(),
        apiserver_url: format!(
            "https://{}",
            std::net::SocketAddr::new(advertise_ip, APISERVER_PORT)
        ),
    }
}

/// The container environment planet's Kubernetes units read.
pub fn planet_env(
    labels: &std::collections::BTreeMap<String, String>,
    network: NetworkType,
) -> Vec<(String, String)> {
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("PLANET_SERVICE_CIDR".into(), SERVICE_CIDR.into()),
        ("PLANET_POD_CIDR".into(), POD_CIDR.into()),
        ("PLANET_CLUSTER_DNS".into(), CLUSTER_DNS.into()),
        ("PLANET_CLUSTER_DOMAIN".into(), CLUSTER_DOMAIN.into()),
        ("PLANET_NODE_LABELS".into(), labels),
        // planet-podnet's overlay between nodes.
        ("PLANET_NETWORK_TYPE".into(), network.as_str().into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_ip_is_the_first_of_the_service_cidr() {
        let (net, _) = SERVICE_CIDR.split_once('/').unwrap();
        let net: std::net::Ipv4Addr = net.parse().unwrap();
        assert_eq!(
            u32::from(net) + 1,
            u32::from(std::net::Ipv4Addr::from(SERVICE_IP))
        );
        assert!(CLUSTER_DNS.starts_with("10.100."));
    }

    #[test]
    fn the_apiserver_url_brackets_ipv6() {
        let r = pki_request("n1", "fd00::5".parse().unwrap());
        assert_eq!(r.apiserver_url, "https://[fd00::5]:6443");
    }
}
