//! The manifest's `endpoints` resolved to addresses a user can open, from the cluster's Services:
//! by `serviceName`, or by `selector` (the Service's labels). A NodePort Service is reached on
//! the node's address, a LoadBalancer on its ingress, anything else on its ClusterIP (from the
//! nodes); `port` in the manifest picks the Service port.

use std::net::IpAddr;

use cluster_image::manifest::Endpoint;
use serde_json::Value;

/// One endpoint: its URLs, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub description: Option<String>,
    pub urls: Result<Vec<String>, String>,
}

/// Resolves the visible (not `hidden`) endpoints against `services`, the JSON of
/// `kubectl get services --all-namespaces -o json`.
pub fn resolve(endpoints: &[Endpoint], services: &Value, node_ip: IpAddr) -> Vec<Resolved> {
    let items = services["items"].as_array().map_or(&[][..], Vec::as_slice);
    endpoints
        .iter()
        .filter(|e| !e.hidden)
        .map(|e| Resolved {
            name: e.name.clone(),
            description: e.description.clone(),
            urls: urls(e, items, node_ip),
        })
        .collect()
}

fn urls(e: &Endpoint, items: &[Value], node_ip: IpAddr) -> Result<Vec<String>, String> {
    let scheme = e.protocol.as_deref().unwrap_or("http");
    if e.service_name.is_none() && e.selector.is_empty() {
        // No Service to look for: a port on the node itself.
        return match e.port {
            Some(p) => Ok(vec![format!(
                "{scheme}://{}:{p}",
                bracket(node_ip.to_string())
            )]),
            None => Err("neither serviceName, selector nor port is set".into()),
        };
    }
    let matching: Vec<&Value> = items
        .iter()
        .filter(|s| match &e.service_name {
            Some(name) => s["metadata"]["name"].as_str() == Some(name),
            None => {
                !e.selector.is_empty()
                    && e.selector
                        .iter()
                        .all(|(k, v)| s["metadata"]["labels"][k].as_str() == Some(v))
            }
        })
        .collect();
    let which = match &e.service_name {
        Some(name) => format!("service `{name}`"),
        None => format!(
            "a service labelled {}",
            e.selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    if matching.is_empty() {
        return Err(format!("no {which} in the cluster yet"));
    }
    let mut out = Vec::new();
    for s in matching {
        let ports = s["spec"]["ports"].as_array().map_or(&[][..], Vec::as_slice);
        let port = match e.port {
            Some(p) => ports.iter().find(|x| {
                x["port"].as_u64() == Some(u64::from(p))
                    || x["nodePort"].as_u64() == Some(u64::from(p))
            }),
            None => ports.first(),
        };
        let Some(port) = port else {
            continue;
        };
        let host_port = match s["spec"]["type"].as_str() {
            Some("NodePort") | Some("LoadBalancer") if port["nodePort"].is_u64() => {
                let ingress = &s["status"]["loadBalancer"]["ingress"][0];
                match ingress["ip"].as_str().or(ingress["hostname"].as_str()) {
                    Some(h) => Some((h.to_string(), port["port"].as_u64())),
                    None => Some((bracket(node_ip.to_string()), port["nodePort"].as_u64())),
                }
            }
            _ => s["spec"]["clusterIP"]
                .as_str()
                .filter(|ip| *ip != "None" && !ip.is_empty())
                .map(|ip| (bracket(ip.to_string()), port["port"].as_u64())),
        };
        if let Some((host, Some(p))) = host_port {
            out.push(format!("{scheme}://{host}:{p}"));
        }
    }
    if out.is_empty() {
        Err(format!(
            "{which} has no address (headless, or no such port)"
        ))
    } else {
        Ok(out)
    }
}

fn bracket(host: String) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn endpoint(name: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            description: None,
            selector: BTreeMap::new(),
            service_name: None,
            protocol: None,
            port: None,
            hidden: false,
        }
    }

    fn services() -> Value {
        serde_json::json!({"items": [
            {"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
             "spec": {"type": "ClusterIP", "clusterIP": "10.100.3.4", "ports": [{"port": 80}, {"port": 443}]}},
            {"metadata": {"name": "panel", "namespace": "app", "labels": {"app": "nginx", "tier": "ui"}},
             "spec": {"type": "NodePort", "clusterIP": "10.100.0.9", "ports": [{"port": 443, "nodePort": 32009}]}},
            {"metadata": {"name": "db", "namespace": "app", "labels": {"app": "db"}},
             "spec": {"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 5432}]}},
        ]})
    }

    #[test]
    fn services_by_name_or_labels_become_urls() {
        let ip: IpAddr = "192.168.1.5".parse().unwrap();
        let mut by_name = endpoint("Web");
        by_name.service_name = Some("web".into());
        let mut by_labels = endpoint("Control Panel");
        by_labels.selector = BTreeMap::from([("app".into(), "nginx".into())]);
        by_labels.protocol = Some("https".into());
        let mut with_port = endpoint("Web TLS");
        with_port.service_name = Some("web".into());
        with_port.port = Some(443);
        with_port.protocol = Some("https".into());
        let mut on_node = endpoint("Node");
        on_node.port = Some(8443);
        let mut hidden = endpoint("Setup");
        hidden.service_name = Some("web".into());
        hidden.hidden = true;
        let got = resolve(
            &[by_name, by_labels, with_port, on_node, hidden],
            &services(),
            ip,
        );
        let urls: Vec<_> = got
            .iter()
            .map(|r| (r.name.as_str(), r.urls.clone()))
            .collect();
        assert_eq!(
            urls,
            [
                ("Web", Ok(vec!["http://10.100.3.4:80".to_string()])),
                (
                    "Control Panel",
                    Ok(vec!["https://192.168.1.5:32009".to_string()])
                ),
                ("Web TLS", Ok(vec!["https://10.100.3.4:443".to_string()])),
                ("Node", Ok(vec!["http://192.168.1.5:8443".to_string()])),
            ]
        );
    }

    #[test]
    fn missing_or_headless_services_say_why() {
        let ip: IpAddr = "fd00::5".parse().unwrap();
        let mut gone = endpoint("Gone");
        gone.service_name = Some("nothing".into());
        let mut headless = endpoint("DB");
        headless.selector = BTreeMap::from([("app".into(), "db".into())]);
        let got = resolve(&[gone, headless], &services(), ip);
        assert_eq!(
            got[0].urls,
            Err("no service `nothing` in the cluster yet".to_string())
        );
        assert!(
            got[1].urls.as_ref().unwrap_err().contains("app=db"),
            "{:?}",
            got[1]
        );
    }
}
