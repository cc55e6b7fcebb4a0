//! Checks on a typed manifest that its types alone cannot express.

use std::collections::HashSet;

use super::hooks::Hook;
use super::profile::NodeProfile;
use super::system::{HAIRPIN_MODES, STORAGE_DRIVERS, SystemOptions};
use super::types::{Manifest, Network};
use super::{DEFAULT_PROFILE, is_uri};

/// Accepted `(apiVersion, kind)` pairs. `bundle.gravitational.io/v2` is the older name.
pub const API_VERSIONS: &[(&str, &[&str])] = &[
    ("cluster.gravitational.io/v2", &["Cluster"]),
    ("bundle.gravitational.io/v2", &["Bundle", "Cluster"]),
];
pub const PROVIDERS: &[&str] = &["", "aws", "gce", "generic"];
pub const NETWORK_TYPES: &[&str] = &["vxlan", "wireguard"];
pub const ENDPOINT_PROTOCOLS: &[&str] = &["http", "https"];

/// A problem at a YAML path; the loader turns it into a positioned diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            path: path.into(),
            message: message.into(),
        });
    }

    fn one_of(&mut self, path: &str, what: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let list = allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ");
            self.add(
                path,
                format!("invalid {what} \"{value}\": use one of {list}"),
            );
        }
    }
}

pub fn validate(m: &Manifest) -> Vec<Finding> {
    let mut f = Findings::default();
    header(m, &mut f);
    endpoints(m, &mut f);
    providers(m, &mut f);
    installer(m, &mut f);
    profiles(m, &mut f);
    if let Some(options) = &m.system_options {
        system_options(options, "systemOptions", &mut f);
    }
    if let Some(hooks) = &m.hooks {
        for (name, hook) in hooks.iter() {
            hook_job(hook, &format!("hooks.{name}.job"), &mut f);
        }
    }
    f.0
}

fn header(m: &Manifest, f: &mut Findings) {
    match API_VERSIONS.iter().find(|(v, _)| *v == m.api_version) {
        None => {
            let list: Vec<&str> = API_VERSIONS.iter().map(|(v, _)| *v).collect();
            f.one_of("apiVersion", "apiVersion", &m.api_version, &list);
        }
        Some((_, kinds)) => f.one_of("kind", "kind", &m.kind, kinds),
    }
    let name = &m.metadata.name;
    if name.is_empty() {
        f.add(
            "metadata.name",
            "metadata.name is required: the cluster image's name, a single word",
        );
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        f.add(
            "metadata.name",
            format!("invalid name \"{name}\": use a single word of letters, digits, '-' and '_'"),
        );
    }
    let version = &m.metadata.resource_version;
    if version.is_empty() {
        f.add(
            "metadata.resourceVersion",
            "metadata.resourceVersion is required: a SemVer version such as \"1.2.3\"",
        );
    } else if let Err(e) = semver::Version::parse(version) {
        f.add(
            "metadata.resourceVersion",
            format!("invalid version \"{version}\": not SemVer ({e}); write e.g. \"1.2.3\" or \"1.2.3-alpha.1\""),
        );
    }
}

fn endpoints(m: &Manifest, f: &mut Findings) {
    let mut seen = HashSet::new();
    for (i, e) in m.endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        if e.name.is_empty() {
            f.add(format!("{path}.name"), "endpoint name is empty");
        } else if !seen.insert(e.name.as_str()) {
            f.add(
                format!("{path}.name"),
                format!("endpoint \"{}\" is defined twice", e.name),
            );
        }
        if let Some(p) = &e.protocol {
            f.one_of(
                &format!("{path}.protocol"),
                "protocol",
                p,
                ENDPOINT_PROTOCOLS,
            );
        }
    }
}

fn providers(m: &Manifest, f: &mut Findings) {
    let Some(p) = &m.providers else { return };
    if let Some(d) = &p.default {
        f.one_of("providers.default", "provider", d, PROVIDERS);
    }
    let networks: [(&str, Option<&Network>); 3] = [
        (
            "generic",
            p.generic.as_ref().and_then(|g| g.network.as_ref()),
        ),
        ("gce", p.gce.as_ref().and_then(|g| g.network.as_ref())),
        ("aws", p.aws.as_ref().and_then(|a| a.network.as_ref())),
    ];
    for (name, network) in networks {
        if let Some(kind) = network.and_then(|n| n.kind.as_deref()) {
            f.one_of(
                &format!("providers.{name}.network.type"),
                "network type",
                kind,
                NETWORK_TYPES,
            );
        }
    }
}

fn installer(m: &Manifest, f: &mut Findings) {
    let Some(installer) = &m.installer else {
        return;
    };
    if let Some(eula) = &installer.eula
        && eula.source.trim().is_empty()
    {
        f.add(
            "installer.eula.source",
            "the EULA is empty: give its text or a file:// URI",
        );
    }
    for (i, name) in installer.setup_endpoints.iter().enumerate() {
        if !m.endpoints.iter().any(|e| &e.name == name) {
            f.add(
                format!("installer.setupEndpoints[{i}]"),
                format!("setup endpoint \"{name}\" is not defined under endpoints"),
            );
        }
    }
    let Some(flavors) = &installer.flavors else {
        return;
    };
    let profiles: Vec<&str> = if m.node_profiles.is_empty() {
        vec![DEFAULT_PROFILE]
    } else {
        m.node_profiles.iter().map(|p| p.name.as_str()).collect()
    };
    if flavors.items.is_empty() {
        f.add(
            "installer.flavors.items",
            "flavors are declared but none is listed under items",
        );
    }
    let mut seen = HashSet::new();
    for (i, flavor) in flavors.items.iter().enumerate() {
        let path = format!("installer.flavors.items[{i}]");
        if flavor.name.is_empty() {
            f.add(format!("{path}.name"), "flavor name is empty");
        } else if !seen.insert(flavor.name.as_str()) {
            f.add(
                format!("{path}.name"),
                format!("flavor \"{}\" is defined twice", flavor.name),
            );
        }
        for (j, node) in flavor.nodes.iter().enumerate() {
            let npath = format!("{path}.nodes[{j}]");
            if !profiles.contains(&node.profile.as_str()) {
                f.add(
                    format!("{npath}.profile"),
                    format!(
                        "flavor \"{}\" uses profile \"{}\", which is not defined (node profiles: {})",
                        flavor.name,
                        node.profile,
                        profiles.join(", ")
                    ),
                );
            }
            if node.count < 0 {
                f.add(
                    format!("{npath}.count"),
                    format!(
                        "node count {} is negative: it must be 0 or more",
                        node.count
                    ),
                );
            }
        }
    }
    if let Some(default) = &flavors.default
        && !flavors.items.iter().any(|fl| &fl.name == default)
    {
        let names: Vec<&str> = flavors.items.iter().map(|fl| fl.name.as_str()).collect();
        f.add(
            "installer.flavors.default",
            format!(
                "default flavor \"{default}\" is not one of the flavors ({})",
                names.join(", ")
            ),
        );
    }
}

fn profiles(m: &Manifest, f: &mut Findings) {
    let mut seen = HashSet::new();
    for (i, profile) in m.node_profiles.iter().enumerate() {
        let path = format!("nodeProfiles[{i}]");
        if profile.name.is_empty() {
            f.add(format!("{path}.name"), "node profile name is empty");
        } else if !seen.insert(profile.name.as_str()) {
            f.add(
                format!("{path}.name"),
                format!("node profile \"{}\" is defined twice", profile.name),
            );
        }
        requirements(profile, &path, f);
        if let Some(options) = &profile.system_options {
            system_options(options, &format!("{path}.systemOptions"), f);
        }
    }
}

fn requirements(profile: &NodeProfile, path: &str, f: &mut Findings) {
    let Some(r) = &profile.requirements else {
        return;
    };
    let path = format!("{path}.requirements");
    if let Some(cpu) = &r.cpu {
        if cpu.min == Some(0) {
            f.add(
                format!("{path}.cpu.min"),
                "cpu.min is 0: at least 1 CPU is needed",
            );
        }
        if let (Some(min), Some(max)) = (cpu.min, cpu.max)
            && max < min
        {
            f.add(
                format!("{path}.cpu.max"),
                format!("cpu.max ({max}) is less than cpu.min ({min})"),
            );
        }
    }
    if let Some(ram) = &r.ram
        && let (Some(min), Some(max)) = (&ram.min, &ram.max)
        && max.value < min.value
    {
        f.add(
            format!("{path}.ram.max"),
            format!("ram.max ({}) is less than ram.min ({})", max.text, min.text),
        );
    }
    for (i, os) in r.os.iter().enumerate() {
        if os.name.trim().is_empty() {
            f.add(
                format!("{path}.os[{i}].name"),
                "OS name is empty: use the ID of /etc/os-release, e.g. \"debian\"",
            );
        }
    }
    for (i, check) in r.custom_checks.iter().enumerate() {
        let cpath = format!("{path}.customChecks[{i}]");
        if let Some(t) = &check.timeout
            && let Err(e) = crate::units::parse_duration(t)
        {
            f.add(format!("{cpath}.timeout"), e);
        }
        if !is_uri(&check.script) && check.script.trim().is_empty() {
            f.add(format!("{cpath}.script"), "custom check script is empty");
        }
    }
    let mut names = HashSet::new();
    for (i, v) in r.volumes.iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        if !v.path.starts_with('/') {
            f.add(
                format!("{vpath}.path"),
                format!("volume path \"{}\" is not absolute", v.path),
            );
        }
        if let Some(t) = &v.target_path
            && !t.starts_with('/')
        {
            f.add(
                format!("{vpath}.targetPath"),
                format!("volume targetPath \"{t}\" is not absolute"),
            );
        }
        if let Some(name) = &v.name
            && !names.insert(name.as_str())
        {
            f.add(
                format!("{vpath}.name"),
                format!(
                    "volume name \"{name}\" is used twice in profile \"{}\"",
                    profile.name
                ),
            );
        }
        if v.skip_if_missing() && v.create_if_missing.unwrap_or(false) {
            f.add(
                format!("{vpath}.skipIfMissing"),
                "skipIfMissing and createIfMissing are both true: choose one",
            );
        }
    }
    for (i, d) in r.devices.iter().enumerate() {
        if !d.path.starts_with('/') {
            f.add(
                format!("{path}.devices[{i}].path"),
                format!("device path \"{}\" is not absolute", d.path),
            );
        }
    }
}

fn system_options(o: &SystemOptions, path: &str, f: &mut Findings) {
    if let Some(driver) = o.docker.as_ref().and_then(|d| d.storage_driver.as_deref()) {
        f.one_of(
            &format!("{path}.docker.storageDriver"),
            "storage driver",
            driver,
            STORAGE_DRIVERS,
        );
    }
    if let Some(mode) = o.kubelet.as_ref().and_then(|k| k.hairpin_mode.as_deref()) {
        f.one_of(
            &format!("{path}.kubelet.hairpinMode"),
            "hairpin mode",
            mode,
            HAIRPIN_MODES,
        );
    }
}

/// A hook's job must be a Kubernetes `batch/v1` Job. URIs are checked once resolved.
fn hook_job(hook: &Hook, path: &str, f: &mut Findings) {
    if is_uri(&hook.job) {
        return;
    }
    if let Err(message) = check_job(&hook.job) {
        f.add(path, message);
    }
}

pub fn check_job(text: &str) -> Result<(), String> {
    let value: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| format!("the hook job is not valid YAML: {e}"))?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let (api, kind) = (field("apiVersion"), field("kind"));
    if api != "batch/v1" || kind != "Job" {
        return Err(format!(
            "the hook job must be a Kubernetes Job (apiVersion: batch/v1, kind: Job), found apiVersion \"{api}\", kind \"{kind}\""
        ));
    }
    let has_containers = value
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_sequence())
        .is_some_and(|c| !c.is_empty());
    if !has_containers {
        return Err("the hook job has no spec.template.spec.containers".to_string());
    }
    Ok(())
}
