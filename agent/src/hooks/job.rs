//! A hook's Job as the vendor wrote it, made into the Job that runs: every container of it
//! gets what the spec promises (the resources, `kubectl` and `helm`, `GRAVITY_SERVICE_USER`,
//! the Helm values for the hooks that take them), the Job is labelled with its hook and
//! operation, and runs as a service account that may change the cluster.

use serde_json::{Map, Value, json};

/// Inside planet, where the hooks' host paths are (planet binds the state directory's
/// `resources/` and `helm/` there, and has kubectl and helm in /usr/bin).
pub const RESOURCES: &str = "/var/lib/gravity/resources";
pub const HELM_DIR: &str = "/var/lib/gravity/helm";
pub const VALUES: &str = "/var/lib/gravity/helm/values.yaml";
/// Where the backup hook writes the backup and the restore hook finds it (read-write).
pub const BACKUP: &str = "/var/lib/gravity/backup";
const KUBECTL_IN_PLANET: &str = "/usr/bin/kubectl";
const HELM_IN_PLANET: &str = "/usr/bin/helm";
/// A writable home for helm's and kubectl's caches, whatever the hook's image.
const HOME: &str = "/var/lib/gravity/home";

/// The service account hooks run as unless their Job names one (bound to cluster-admin).
pub const SERVICE_ACCOUNT: &str = "gravity-hooks";
/// Where a Job that names no namespace runs (as in Gravity).
pub const DEFAULT_NAMESPACE: &str = "kube-system";
pub const HOOK_LABEL: &str = "gravity.io/hook";
pub const OPERATION_LABEL: &str = "gravity.io/operation";
/// kubelet's label of its node's name (planet's kubelet is named after the node).
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the {hook} hook's Job is not valid YAML: {source}")]
    Yaml {
        hook: String,
        source: yaml_serde::Error,
    },
    #[error("the {hook} hook is a {found}, not a Job of batch/v1 (hooks.{hook}.job)")]
    NotAJob { hook: String, found: String },
    #[error("the {hook} hook's Job has no {field} (hooks.{hook}.job)")]
    Missing { hook: String, field: &'static str },
    #[error(
        "the {hook} hook's Job already has a {what} {name:?}: gravity adds it to every hook (hooks.{hook}.job)"
    )]
    Taken {
        hook: String,
        what: &'static str,
        name: String,
    },
}

/// What a hook's Job is run with.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub hook: &'a str,
    /// The operation it runs for: a resumed operation finds its Job by this.
    pub operation: &'a str,
    pub service_uid: u32,
    /// Whether the merged Helm values are mounted (install, postInstall, update, postUpdate).
    pub values: bool,
    /// Whether the backup directory is mounted (backup, restore).
    pub backup: bool,
    /// The node a node hook (preNodeAdd, ...) runs for: `GRAVITY_NODE_NAME`.
    pub node: Option<&'a str>,
    /// The node whose files the Job mounts (the values, resources and backups are this
    /// host's): its pod runs there unless the vendor pinned it to a host.
    pub on_node: Option<&'a str>,
}

/// The Job to run, with its namespace and name.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedJob {
    pub namespace: String,
    pub name: String,
    pub job: Value,
}

pub fn prepare(text: &str, ctx: &Context<'_>) -> Result<PreparedJob, JobError> {
    let hook = ctx.hook.to_string();
    let mut job: Value = yaml_serde::from_str(text).map_err(|source| JobError::Yaml {
        hook: hook.clone(),
        source,
    })?;
    let kind = job["kind"].as_str().unwrap_or_default();
    let api = job["apiVersion"].as_str().unwrap_or_default();
    if kind != "Job" || api != "batch/v1" {
        return Err(JobError::NotAJob {
            hook,
            found: format!("{} of {}", or_none(kind), or_none(api)),
        });
    }
    let missing = |field| JobError::Missing {
        hook: hook.clone(),
        field,
    };
    let name = job["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| missing("metadata.name"))?
        .to_string();
    let namespace = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    job["metadata"]["namespace"] = json!(namespace);
    let labels = object(&mut job["metadata"], "labels");
    labels.insert(HOOK_LABEL.into(), json!(ctx.hook));
    labels.insert(OPERATION_LABEL.into(), json!(ctx.operation));

    let pod = &mut job["spec"]["template"]["spec"];
    if pod["containers"].as_array().is_none_or(|c| c.is_empty()) {
        return Err(missing("spec.template.spec.containers"));
    }
    if pod.get("serviceAccountName").is_none() && pod.get("serviceAccount").is_none() {
        pod["serviceAccountName"] = json!(SERVICE_ACCOUNT);
    }
    if let Some(node) = ctx.on_node {
        object(pod, "nodeSelector")
            .entry(HOSTNAME_LABEL)
            .or_insert_with(|| json!(node));
    }
    let volumes = volumes(ctx.values, ctx.backup);
    let list = array(pod, "volumes");
    for (name, _, _) in &volumes {
        if list.iter().any(|v| v["name"] == *name) {
            return Err(JobError::Taken {
                hook,
                what: "volume",
                name: name.to_string(),
            });
        }
    }
    for (name, source, _) in &volumes {
        list.push(match source {
            Source::HostDir(path) => {
                json!({"name": name, "hostPath": {"path": path, "type": "Directory"}})
            }
            Source::HostFile(path) => {
                json!({"name": name, "hostPath": {"path": path, "type": "File"}})
            }
            Source::Empty => json!({"name": name, "emptyDir": {}}),
        });
    }
    let mut env = vec![
        ("GRAVITY_SERVICE_USER", ctx.service_uid.to_string()),
        ("HELM_CACHE_HOME", format!("{HOME}/cache")),
        ("HELM_CONFIG_HOME", format!("{HOME}/config")),
        ("HELM_DATA_HOME", format!("{HOME}/data")),
        ("KUBECACHEDIR", format!("{HOME}/kube-cache")),
    ];
    if let Some(node) = ctx.node {
        env.push(("GRAVITY_NODE_NAME", node.to_string()));
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod[list].as_array_mut() else {
            continue;
        };
        for c in containers {
            let mounts = array(c, "volumeMounts");
            for (name, _, path) in &volumes {
                if let Some(m) = mounts.iter().find(|m| m["mountPath"] == *path) {
                    return Err(JobError::Taken {
                        hook,
                        what: "volume mount at",
                        name: format!("{path} ({})", m["name"].as_str().unwrap_or("?")),
                    });
                }
                let writable = matches!(*name, "gravity-home" | "gravity-backup");
                mounts.push(json!({"name": name, "mountPath": path, "readOnly": !writable}));
            }
            let vars = array(c, "env");
            for (var, value) in &env {
                // The vendor's own setting wins, except for the service user (the spec's).
                match vars.iter_mut().find(|e| e["name"] == *var) {
                    Some(e) if *var == "GRAVITY_SERVICE_USER" => {
                        *e = json!({"name": var, "value": value})
                    }
                    Some(_) => {}
                    None => vars.push(json!({"name": var, "value": value})),
                }
            }
        }
    }
    Ok(PreparedJob {
        namespace,
        name,
        job,
    })
}

enum Source {
    HostDir(&'static str),
    HostFile(&'static str),
    Empty,
}

/// The volumes every hook gets: (name, source, where each container sees it).
fn volumes(values: bool, backup: bool) -> Vec<(&'static str, Source, &'static str)> {
    let mut v = vec![
        ("gravity-resources", Source::HostDir(RESOURCES), RESOURCES),
        (
            "gravity-kubectl",
            Source::HostFile(KUBECTL_IN_PLANET),
            "/usr/local/bin/kubectl",
        ),
        (
            "gravity-helm",
            Source::HostFile(HELM_IN_PLANET),
            "/usr/local/bin/helm",
        ),
        ("gravity-home", Source::Empty, HOME),
    ];
    if values {
        v.push(("gravity-helm-values", Source::HostDir(HELM_DIR), HELM_DIR));
    }
    if backup {
        v.push(("gravity-backup", Source::HostDir(BACKUP), BACKUP));
    }
    v
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn object<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent[key].is_object() {
        parent[key] = json!({});
    }
    parent[key].as_object_mut().expect("just made an object")
}

fn array<'a>(parent: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !parent[key].is_array() {
        parent[key] = json!([]);
    }
    parent[key].as_array_mut().expect("just made an array")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: install-hook
spec:
  template:
    metadata:
      name: install-hook
    spec:
      restartPolicy: OnFailure
      initContainers:
        - name: wait
          image: busybox
      containers:
        - name: debian-tall
          image: quay.io/gravitational/debian-tall:buster
          env:
            - name: HELM_CACHE_HOME
              value: /cache
            - name: GRAVITY_SERVICE_USER
              value: "0"
          command:
            - /usr/local/bin/kubectl
            - create
            - -f
            - /var/lib/gravity/resources/resources.yaml
"#;

    fn ctx(values: bool) -> Context<'static> {
        Context {
            hook: "install",
            operation: "op-1",
            service_uid: 1001,
            values,
            backup: false,
            node: None,
            on_node: None,
        }
    }

    #[test]
    fn the_pod_runs_on_the_node_whose_files_it_mounts_unless_pinned() {
        let mut c = ctx(true);
        c.on_node = Some("first");
        let job = prepare(SPEC_EXAMPLE, &c).unwrap().job;
        let selector = &job["spec"]["template"]["spec"]["nodeSelector"];
        assert_eq!(selector["kubernetes.io/hostname"], "first");
        let pinned = SPEC_EXAMPLE.replace(
            "      restartPolicy: OnFailure",
            "      nodeSelector: {kubernetes.io/hostname: other, disk: ssd}\n      restartPolicy: OnFailure",
        );
        assert_ne!(pinned, SPEC_EXAMPLE);
        let job = prepare(&pinned, &c).unwrap().job;
        let selector = &job["spec"]["template"]["spec"]["nodeSelector"];
        assert_eq!(selector["kubernetes.io/hostname"], "other");
        assert_eq!(selector["disk"], "ssd");
    }

    #[test]
    fn the_spec_example_gets_what_the_spec_promises() {
        let job = prepare(SPEC_EXAMPLE, &ctx(true)).unwrap();
        assert_eq!(
            (job.namespace.as_str(), job.name.as_str()),
            ("kube-system", "install-hook")
        );
        golden::check_in(
            env!("CARGO_MANIFEST_DIR"),
            "hooks/install-hook.json",
            &serde_json::to_string_pretty(&job.job).unwrap(),
        );
    }

    #[test]
    fn backup_and_restore_get_their_directory_writable() {
        let mut c = ctx(false);
        c.backup = true;
        let job = prepare(SPEC_EXAMPLE, &c).unwrap().job;
        let mounts = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        let backup = mounts.iter().find(|m| m["mountPath"] == BACKUP).unwrap();
        assert_eq!(backup["readOnly"], false);
        assert!(
            !prepare(SPEC_EXAMPLE, &ctx(false))
                .unwrap()
                .job
                .to_string()
                .contains(BACKUP)
        );
    }

    #[test]
    fn values_are_mounted_only_for_hooks_that_take_them() {
        let job = prepare(SPEC_EXAMPLE, &ctx(false)).unwrap().job;
        let text = job.to_string();
        assert!(!text.contains(HELM_DIR), "{text}");
        assert!(text.contains(RESOURCES));
    }

    #[test]
    fn the_vendors_namespace_and_service_account_stay() {
        let text = SPEC_EXAMPLE
            .replace(
                "  name: install-hook\nspec:",
                "  name: install-hook\n  namespace: app\nspec:",
            )
            .replace(
                "restartPolicy: OnFailure",
                "restartPolicy: OnFailure\n      serviceAccountName: mine",
            );
        let job = prepare(&text, &ctx(true)).unwrap();
        assert_eq!(job.namespace, "app");
        assert_eq!(
            job.job["spec"]["template"]["spec"]["serviceAccountName"],
            "mine"
        );
    }

    #[test]
    fn what_is_not_a_job_is_refused_with_the_hook_named() {
        let e = prepare("apiVersion: v1\nkind: Pod\n", &ctx(true)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the install hook is a Pod of v1, not a Job of batch/v1 (hooks.install.job)"
        );
        let e = prepare(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {}\n",
            &ctx(true),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the install hook's Job has no metadata.name (hooks.install.job)"
        );
        let e = prepare("{", &ctx(true)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the install hook's Job is not valid YAML")
        );
    }

    #[test]
    fn a_clash_with_what_gravity_mounts_is_refused() {
        let text = SPEC_EXAMPLE.replace(
            "          command:",
            "          volumeMounts:\n            - name: mine\n              mountPath: /usr/local/bin/helm\n          command:",
        );
        let e = prepare(&text, &ctx(true)).unwrap_err();
        assert!(
            e.to_string()
                .contains("volume mount at \"/usr/local/bin/helm (mine)\""),
            "{e}"
        );
    }
}
