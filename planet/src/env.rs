//! `/etc/container-environment`: the agent's side of the contract with planet-setup and the
//! daemon units inside planet (systemd `EnvironmentFile=` syntax, `PLANET_*` keys; see
//! `planet-image/rootfs/usr/lib/planet/planet-setup`).

use super::config::PlanetConfig;

/// The file's content. Keys are always present (empty means "planet's default"), in a fixed
/// order, then the config's extra variables sorted by name.
pub fn render(config: &PlanetConfig) -> String {
    let d = &config.daemons;
    let n = &config.node;
    let mut vars: Vec<(String, String)> = vec![
        ("PLANET_NODE_NAME".into(), n.name.clone()),
        ("PLANET_ADVERTISE_IP".into(), n.advertise_ip.to_string()),
        ("PLANET_ROLE".into(), n.role.clone()),
        ("PLANET_CLUSTER_NAME".into(), n.cluster_name.clone()),
        ("PLANET_CONTROL_PLANE".into(), n.control_plane().to_string()),
        ("PLANET_REGISTRY_IP".into(), n.registry_ip().to_string()),
        ("PLANET_SERVICE_UID".into(), config.service_uid.to_string()),
        ("PLANET_SERVICE_GID".into(), config.service_gid.to_string()),
        ("PLANET_ETCD_ARGS".into(), d.etcd_args.join(" ")),
        ("PLANET_DOCKER_ARGS".into(), d.docker_args.join(" ")),
        (
            "PLANET_DOCKER_STORAGE_DRIVER".into(),
            d.docker_storage_driver.clone(),
        ),
        ("PLANET_KUBELET_ARGS".into(), d.kubelet_args.join(" ")),
        (
            "PLANET_KUBELET_HAIRPIN_MODE".into(),
            d.kubelet_hairpin_mode.clone(),
        ),
        (
            "PLANET_ALLOW_PRIVILEGED".into(),
            d.allow_privileged.to_string(),
        ),
    ];
    for (k, v) in &config.env {
        if !vars.iter().any(|(known, _)| known == k) {
            vars.push((k.clone(), v.clone()));
        }
    }
    let mut out = String::from(
        "# Written by gravity from the cluster image's manifest and the install options.\n\
         # Do not edit: gravity rewrites it at every planet start.\n",
    );
    for (k, v) in vars {
        out.push_str(&k);
        out.push('=');
        out.push_str(&quote(&v));
        out.push('\n');
    }
    out
}

/// systemd's `EnvironmentFile=` double quotes: `\`, `"`, `` ` `` and `$` are escaped, a
/// newline becomes `\n`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' | '`' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_planet_setup() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote(r#"a"b$c\d`e"#), r#""a\"b\$c\\d\`e""#);
    }
}
