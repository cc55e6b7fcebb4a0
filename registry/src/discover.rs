//! Finding the container images a cluster image needs: in Kubernetes resource files, `ImageSet`
//! resources, the manifest's hook jobs and custom planet images, and Helm charts as rendered by
//! helm (or, without a renderer, their `values.yaml`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use yaml_serde::Value;

use crate::error::Error;
use crate::reference::ImageRef;

/// The API group of Gravity's `ImageSet` resource.
pub const IMAGE_SET_GROUP: &str = "cluster.gravitational.io/";

/// Where a reference was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// Relative to the manifest's directory.
    pub file: PathBuf,
    /// 1-based document number, for files with several YAML documents.
    pub document: Option<usize>,
    /// The YAML path: `spec.template.spec.initContainers[0].image`.
    pub path: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(d) = self.document {
            write!(f, " (document {d})")?;
        }
        write!(f, ": {}", self.path)
    }
}

/// The images found, each with every place that references it, and notes for the person
/// building (skipped kinds, unrendered charts).
#[derive(Debug, Default)]
pub struct Discovery {
    pub images: BTreeMap<ImageRef, Vec<Origin>>,
    pub notes: Vec<String>,
}

impl Discovery {
    fn add(&mut self, reference: ImageRef, origin: Origin) {
        let origins = self.images.entry(reference).or_default();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }

    fn add_str(&mut self, image: &str, origin: Origin) -> Result<(), Error> {
        let reference = ImageRef::parse(image).map_err(|source| Error::Reference {
            origin: origin.to_string(),
            source,
        })?;
        self.add(reference, origin);
        Ok(())
    }

    pub fn merge(&mut self, other: Discovery) {
        for (r, origins) in other.images {
            for o in origins {
                self.add(r.clone(), o);
            }
        }
        self.notes.extend(other.notes);
    }
}

/// Kinds that never name an image: skipped without a note.
const IMAGELESS: &[&str] = &[
    "Service",
    "ConfigMap",
    "Secret",
    "Namespace",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "LimitRange",
    "ResourceQuota",
    "PriorityClass",
    "Endpoints",
    "EndpointSlice",
    "CustomResourceDefinition",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "PodSecurityPolicy",
    "Lease",
    "CSIDriver",
    "RuntimeClass",
];

/// Gravity's own kinds (the Image Manifest), read through [`discover_manifest`] instead.
const GRAVITY_KINDS: &[&str] = &[
    "Bundle",
    "Cluster",
    "Application",
    "SystemApplication",
    "Runtime",
];

/// Renders a Helm chart into its Kubernetes resources (`helm template`, the caller's helm and
/// values): the rendered text, or helm's message.
pub trait RenderChart {
    fn render(&self, chart: &Path) -> Result<String, String>;
}

/// Walks the manifest's directory: YAML and JSON files are read as Kubernetes resources, a
/// directory with `Chart.yaml` as a Helm chart. `skip` lists paths to leave out (the manifest,
/// the output, tele's state directory).
pub fn discover_dir(dir: &Path, skip: &[PathBuf]) -> Result<Discovery, Error> {
    discover_dir_rendering(dir, skip, None)
}

/// [`discover_dir`] with charts rendered by `render`: the images of the rendered resources.
pub fn discover_dir_rendering(
    dir: &Path,
    skip: &[PathBuf],
    render: Option<&dyn RenderChart>,
) -> Result<Discovery, Error> {
    let mut out = Discovery::default();
    walk(dir, dir, skip, render, &mut out)?;
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    skip: &[PathBuf],
    render: Option<&dyn RenderChart>,
    out: &mut Discovery,
) -> Result<(), Error> {
    if dir.join("Chart.yaml").is_file() {
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        return match render {
            Some(r) => {
                let text = r.render(dir).map_err(|message| Error::Chart {
                    chart: rel.to_path_buf(),
                    message,
                })?;
                out.merge(discover_text(&text, &rel.join("(helm template)"))?);
                Ok(())
            }
            None => chart(root, dir, out),
        };
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .collect::<Result<_, _>>()
        .map_err(Error::io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || skip.iter().any(|s| same_file(s, &path)) {
            continue;
        }
        let ft = entry.file_type().map_err(Error::io(&path))?;
        if ft.is_dir() {
            walk(root, &path, skip, render, out)?;
        } else if ft.is_file() && is_resource_file(&name) {
            let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.merge(discover_text(&text, rel)?);
        } else if ft.is_file() && name.ends_with(".tgz") {
            out.notes.push(format!(
                "{}: packaged Helm charts are not read; unpack the chart into the directory to vendor its images",
                path.strip_prefix(root).unwrap_or(&path).display()
            ));
        }
    }
    Ok(())
}

fn is_resource_file(name: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e))
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

/// The references in one file of Kubernetes resources (one or several YAML documents, or JSON).
/// Text that is not YAML is noted and skipped: resource directories also hold templates and
/// other files.
pub fn discover_text(text: &str, file: &Path) -> Result<Discovery, Error> {
    let mut out = Discovery::default();
    let mut docs = Vec::new();
    for de in yaml_serde::Deserializer::from_str(text) {
        match serde::Deserialize::deserialize(de) {
            Ok(v) => docs.push(v),
            Err(e) => {
                out.notes
                    .push(format!("{}: not valid YAML, skipped ({e})", file.display()));
                return Ok(out);
            }
        }
    }
    let several = docs.len() > 1;
    for (i, doc) in docs.iter().enumerate() {
        let at = |path: String| Origin {
            file: file.to_path_buf(),
            document: several.then_some(i + 1),
            path,
        };
        object(doc, "", &at, &mut out)?;
    }
    Ok(out)
}

/// One Kubernetes object (or a `List` of them) at YAML path `prefix`.
fn object(
    v: &Value,
    prefix: &str,
    at: &dyn Fn(String) -> Origin,
    out: &mut Discovery,
) -> Result<(), Error> {
    let Some(kind) = v.get("kind").and_then(Value::as_str) else {
        return Ok(());
    };
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let p = |rest: &str| format!("{prefix}{rest}");
    match kind {
        "Pod" => pod_spec(v.get("spec"), &p("spec"), at, out),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => pod_spec(
            path(v, &["spec", "template", "spec"]),
            &p("spec.template.spec"),
            at,
            out,
        ),
        "CronJob" => pod_spec(
            path(v, &["spec", "jobTemplate", "spec", "template", "spec"]),
            &p("spec.jobTemplate.spec.template.spec"),
            at,
            out,
        ),
        "PodTemplate" => pod_spec(path(v, &["template", "spec"]), &p("template.spec"), at, out),
        "ImageSet" if api.starts_with(IMAGE_SET_GROUP) => {
            let images = path(v, &["spec", "images"]).and_then(Value::as_sequence);
            for (i, item) in images.into_iter().flatten().enumerate() {
                let here = p(&format!("spec.images[{i}].image"));
                match item.get("image") {
                    Some(Value::String(s)) => out.add_str(s, at(here))?,
                    _ => {
                        return Err(Error::Reference {
                            origin: at(here).to_string(),
                            source: crate::reference::ReferenceError {
                                reference: String::new(),
                                reason: "an ImageSet entry needs `image: <reference>`".into(),
                            },
                        });
                    }
                }
            }
            Ok(())
        }
        k if k == "List" || (k.ends_with("List") && v.get("items").is_some()) => {
            let items = v.get("items").and_then(Value::as_sequence);
            for (i, item) in items.into_iter().flatten().enumerate() {
                object(item, &p(&format!("items[{i}].")), at, out)?;
            }
            Ok(())
        }
        k if IMAGELESS.contains(&k) => Ok(()),
        k if GRAVITY_KINDS.contains(&k) && api.contains("gravitational.io") => Ok(()),
        k => {
            let origin = at(if prefix.is_empty() {
                "kind".to_string()
            } else {
                p("kind")
            });
            out.notes.push(format!(
                "{origin}: kind {k} ({api}) is not one tele reads images from, skipped; list its images in an ImageSet resource"
            ));
            Ok(())
        }
    }
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(*k))
}

fn pod_spec(
    spec: Option<&Value>,
    prefix: &str,
    at: &dyn Fn(String) -> Origin,
    out: &mut Discovery,
) -> Result<(), Error> {
    let Some(spec) = spec else { return Ok(()) };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let containers = spec.get(list).and_then(Value::as_sequence);
        for (i, c) in containers.into_iter().flatten().enumerate() {
            let here = format!("{prefix}.{list}[{i}].image");
            match c.get("image") {
                Some(Value::String(s)) => out.add_str(s, at(here))?,
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(Error::Reference {
                        origin: at(here).to_string(),
                        source: crate::reference::ReferenceError {
                            reference: format!("{other:?}"),
                            reason: "an image must be a string".into(),
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// A Helm chart: templates are not rendered yet, so only images written plainly in
/// `values.yaml` are found (`image: repo:tag`, or `repository:` with `tag:` and an optional
/// `registry:`); subcharts under `charts/` likewise.
fn chart(root: &Path, dir: &Path, out: &mut Discovery) -> Result<(), Error> {
    let rel_dir = dir.strip_prefix(root).unwrap_or(dir);
    let chart_yaml = dir.join("Chart.yaml");
    let meta: Value = std::fs::read_to_string(&chart_yaml)
        .map_err(Error::io(&chart_yaml))
        .map(|t| yaml_serde::from_str(&t).unwrap_or(Value::Null))?;
    let app_version = meta.get("appVersion").and_then(scalar);
    out.notes.push(format!(
        "{}: Helm chart templates are not rendered yet; vendoring the images written in its values.yaml",
        rel_dir.display()
    ));
    let values = dir.join("values.yaml");
    if values.is_file() {
        let text = std::fs::read_to_string(&values).map_err(Error::io(&values))?;
        let file = values.strip_prefix(root).unwrap_or(&values).to_path_buf();
        match yaml_serde::from_str::<Value>(&text) {
            Ok(v) => chart_values(&v, "", &file, app_version.as_deref(), out),
            Err(e) => out
                .notes
                .push(format!("{}: not valid YAML, skipped ({e})", file.display())),
        }
    }
    let subcharts = dir.join("charts");
    if subcharts.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&subcharts)
            .map_err(Error::io(&subcharts))?
            .collect::<Result<_, _>>()
            .map_err(Error::io(&subcharts))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.path().join("Chart.yaml").is_file() {
                chart(root, &e.path(), out)?;
            }
        }
    }
    Ok(())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn chart_values(
    v: &Value,
    prefix: &str,
    file: &Path,
    app_version: Option<&str>,
    out: &mut Discovery,
) {
    let at = |path: String| Origin {
        file: file.to_path_buf(),
        document: None,
        path,
    };
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Mapping(m) => {
            // `repository:` + `tag:` (+ `registry:`) siblings: the common chart convention.
            if let Some(repo) = m.get("repository").and_then(scalar) {
                let tag = m
                    .get("tag")
                    .and_then(scalar)
                    .or(app_version.map(str::to_string));
                let registry = m.get("registry").and_then(scalar);
                let mut image = match registry {
                    Some(r) => format!("{}/{repo}", r.trim_end_matches('/')),
                    None => repo,
                };
                if let Some(d) = m.get("digest").and_then(scalar) {
                    image = format!("{image}@{d}");
                } else if let Some(t) = tag {
                    image = format!("{image}:{t}");
                }
                chart_image(&image, at(join("repository")), out);
            }
            for (k, child) in m {
                let Some(k) = k.as_str() else { continue };
                match (k, child) {
                    ("image", Value::String(s)) => chart_image(s, at(join("image")), out),
                    (_, Value::Mapping(_) | Value::Sequence(_)) => {
                        chart_values(child, &join(k), file, app_version, out)
                    }
                    _ => {}
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                chart_values(item, &format!("{prefix}[{i}]"), file, app_version, out);
            }
        }
        _ => {}
    }
}

/// Values are inputs to templates, so a value that is not an image is noted, not an error.
fn chart_image(image: &str, origin: Origin, out: &mut Discovery) {
    match ImageRef::parse(image) {
        Ok(r) => out.add(r, origin),
        Err(e) => out.notes.push(format!(
            "{origin}: skipped, not a plain image reference ({})",
            e.reason
        )),
    }
}

/// The manifest's own images: hook jobs (inline, or resolved from `file://` at load) and
/// custom planet images (`systemOptions.baseImage`, cluster-wide and per node profile).
/// `file` is how origins name the manifest.
pub fn discover_manifest(
    manifest: &cluster_image::Manifest,
    file: &Path,
) -> Result<Discovery, Error> {
    let mut out = Discovery::default();
    let at = |path: String| Origin {
        file: file.to_path_buf(),
        document: None,
        path,
    };
    if let Some(hooks) = &manifest.hooks {
        for (name, hook) in hooks.iter() {
            if cluster_image::manifest::is_uri(&hook.job) {
                // Unresolved (`file://` not yet read): the file is a resource of its own.
                continue;
            }
            let job: Value = match yaml_serde::from_str(&hook.job) {
                Ok(v) => v,
                Err(e) => {
                    out.notes.push(format!(
                        "{}: hooks.{name}.job is not valid YAML, skipped ({e})",
                        file.display()
                    ));
                    continue;
                }
            };
            let prefix = format!("hooks.{name}.job: ");
            object(&job, &prefix, &at, &mut out)?;
        }
    }
    if let Some(img) = manifest
        .system_options
        .as_ref()
        .and_then(|s| s.base_image.as_deref())
    {
        out.add_str(img, at("systemOptions.baseImage".into()))?;
    }
    for (i, p) in manifest.node_profiles.iter().enumerate() {
        if let Some(img) = p
            .system_options
            .as_ref()
            .and_then(|s| s.base_image.as_deref())
        {
            out.add_str(
                img,
                at(format!("nodeProfiles[{i}].systemOptions.baseImage")),
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn found(d: &Discovery) -> Vec<(String, Vec<String>)> {
        d.images
            .iter()
            .map(|(r, o)| (r.to_string(), o.iter().map(|o| o.to_string()).collect()))
            .collect()
    }

    #[test]
    fn workloads_containers_and_init_containers_in_every_document() {
        let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: quay.io/acme/migrate:2
      containers:
      - name: web
        image: nginx:1.25
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - image: busybox
---
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  spec:
    containers:
    - image: nginx:1.25
"#;
        let d = discover_text(text, Path::new("app/web.yaml")).unwrap();
        assert_eq!(
            found(&d),
            vec![
                (
                    "docker.io/library/busybox:latest".to_string(),
                    vec!["app/web.yaml (document 2): spec.jobTemplate.spec.template.spec.containers[0].image".to_string()]
                ),
                (
                    "docker.io/library/nginx:1.25".to_string(),
                    vec![
                        "app/web.yaml (document 1): spec.template.spec.containers[0].image".to_string(),
                        "app/web.yaml (document 4): items[0].spec.containers[0].image".to_string()
                    ]
                ),
                (
                    "quay.io/acme/migrate:2".to_string(),
                    vec!["app/web.yaml (document 1): spec.template.spec.initContainers[0].image".to_string()]
                ),
            ]
        );
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn every_workload_kind_is_read() {
        for kind in [
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ReplicationController",
            "Job",
        ] {
            let text = format!(
                "kind: {kind}\napiVersion: apps/v1\nspec:\n  template:\n    spec:\n      containers:\n      - image: x/{}:1\n",
                kind.to_lowercase()
            );
            let d = discover_text(&text, Path::new("f.yaml")).unwrap();
            assert_eq!(d.images.len(), 1, "{kind}");
        }
        let d = discover_text(
            "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: a:1\n  ephemeralContainers:\n  - image: b:1\n",
            Path::new("p.yaml"),
        )
        .unwrap();
        assert_eq!(d.images.len(), 2);
    }

    #[test]
    fn image_sets_are_read_and_unknown_kinds_noted() {
        let text = r#"
apiVersion: cluster.gravitational.io/v1beta1
kind: ImageSet
metadata: {name: extra-images}
spec:
  images:
  - image: nginx:1.11.0
  - image: quay.io/bitnami/redis:5.0
---
apiVersion: example.com/v1
kind: Widget
spec: {image: not-read:1}
"#;
        let d = discover_text(text, Path::new("extra.yaml")).unwrap();
        assert_eq!(
            found(&d),
            vec![
                (
                    "docker.io/library/nginx:1.11.0".to_string(),
                    vec!["extra.yaml (document 1): spec.images[0].image".to_string()]
                ),
                (
                    "quay.io/bitnami/redis:5.0".to_string(),
                    vec!["extra.yaml (document 1): spec.images[1].image".to_string()]
                ),
            ]
        );
        assert_eq!(d.notes.len(), 1);
        assert!(
            d.notes[0].contains("Widget") && d.notes[0].contains("ImageSet"),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn a_bad_reference_names_file_and_path() {
        let e = discover_text(
            "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: Bad:Name\n",
            Path::new("bad.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad.yaml: spec.containers[0].image") && e.contains("Bad:Name"),
            "{e}"
        );
    }

    #[test]
    fn not_yaml_is_a_note() {
        let d = discover_text("key: [unclosed\n", Path::new("t.yaml")).unwrap();
        assert!(d.images.is_empty());
        assert!(d.notes[0].contains("not valid YAML"));
    }

    #[test]
    fn charts_contribute_values_images_and_are_not_walked_as_resources() {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("charts/web");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::create_dir_all(chart.join("charts/db")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), "name: web\nappVersion: \"2.1\"\n").unwrap();
        std::fs::write(
            chart.join("values.yaml"),
            "image: nginx:1.25\nsidecar:\n  image:\n    registry: quay.io\n    repository: acme/sidecar\n    tag: \"3\"\nworker:\n  repository: acme/worker\n  tag: \"\"\ntemplated:\n  image: \"{{ .Values.x }}\"\n",
        )
        .unwrap();
        std::fs::write(
            chart.join("templates/deploy.yaml"),
            "kind: Pod\nspec:\n  containers:\n  - image: {{ .Values.image }}\n",
        )
        .unwrap();
        std::fs::write(chart.join("charts/db/Chart.yaml"), "name: db\n").unwrap();
        std::fs::write(chart.join("charts/db/values.yaml"), "image: postgres:16\n").unwrap();
        let d = discover_dir(dir.path(), &[]).unwrap();
        let names: Vec<String> = d.images.keys().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "docker.io/acme/worker:2.1",
                "docker.io/library/nginx:1.25",
                "docker.io/library/postgres:16",
                "quay.io/acme/sidecar:3",
            ]
        );
        assert!(
            d.notes.iter().any(|n| n.contains("not rendered yet")),
            "{:?}",
            d.notes
        );
        assert!(
            d.notes.iter().any(|n| n.contains("templated.image")),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn manifest_hooks_and_base_images() {
        let text = r#"
apiVersion: bundle.gravitational.io/v2
kind: Bundle
metadata: {name: app, resourceVersion: 1.0.0}
systemOptions:
  baseImage: custom-planet:1.0.0
nodeProfiles:
- name: worker
  systemOptions:
    baseImage: quay.io/acme/planet:2.0.0
hooks:
  install:
    job: |
      apiVersion: batch/v1
      kind: Job
      metadata: {name: seed}
      spec:
        template:
          spec:
            restartPolicy: OnFailure
            containers:
            - name: seed
              image: installer-hooks:latest
"#;
        let m = cluster_image::manifest::load_str(
            text,
            Path::new("app.yaml"),
            Path::new("."),
            &cluster_image::manifest::Offline,
        )
        .unwrap()
        .manifest;
        let d = discover_manifest(&m, Path::new("app.yaml")).unwrap();
        assert_eq!(
            found(&d),
            vec![
                (
                    "docker.io/library/custom-planet:1.0.0".to_string(),
                    vec!["app.yaml: systemOptions.baseImage".to_string()]
                ),
                (
                    "docker.io/library/installer-hooks:latest".to_string(),
                    vec![
                        "app.yaml: hooks.install.job: spec.template.spec.containers[0].image"
                            .to_string()
                    ]
                ),
                (
                    "quay.io/acme/planet:2.0.0".to_string(),
                    vec!["app.yaml: nodeProfiles[0].systemOptions.baseImage".to_string()]
                ),
            ]
        );
    }
}
