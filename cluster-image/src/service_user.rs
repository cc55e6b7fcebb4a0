//! `runAsUser: -1`, the spec's placeholder for the service user in the image's resource files,
//! replaced by the installed uid ("Service User" in building-cluster-images.md).
//!
//! Only pod security contexts change: the pod's own and each container's (containers,
//! initContainers, ephemeralContainers), in every kind that holds a pod spec, inside `List`s too.
//! The rest of a file stays byte for byte as the vendor wrote it, comments and layout included:
//! the values are found with a position-keeping parse and only their characters are replaced.

use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// The placeholder the spec defines.
const PLACEHOLDER: i64 = -1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML, so its `runAsUser: -1` cannot be translated: {message}")]
    Parse { path: PathBuf, message: String },
}

/// One file that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// Relative to the directory translated.
    pub file: PathBuf,
    /// 1-based lines of the values replaced.
    pub lines: Vec<usize>,
}

/// Translates `text`: the new text and the lines changed, or None when nothing matched.
/// Err(message) when `text` is not YAML.
pub fn translate(text: &str, uid: u32) -> Result<Option<(String, Vec<usize>)>, String> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| e.to_string())?;
    let mut spans = Vec::new();
    for doc in &docs {
        object(doc, &mut spans);
    }
    if spans.is_empty() {
        return Ok(None);
    }
    // Character indices (the parser's) to byte offsets, replaced from the end.
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let offsets: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    let byte = |c: usize| offsets.get(c).copied().unwrap_or(text.len());
    let mut out = text.to_string();
    let mut lines = Vec::new();
    for (start, end, line) in spans {
        out.replace_range(byte(start)..byte(end), &uid.to_string());
        lines.push(line);
    }
    lines.reverse();
    Ok(Some((out, lines)))
}

/// Translates every YAML file under `dir` in place, except the manifest (`app.yaml` at the top)
/// and Helm charts (directories with a `Chart.yaml`: templates are not YAML until rendered).
pub fn translate_dir(dir: &Path, uid: u32) -> Result<Vec<Translated>, Error> {
    let mut out = Vec::new();
    walk(dir, dir, uid, &mut out)?;
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

fn walk(base: &Path, dir: &Path, uid: u32, out: &mut Vec<Translated>) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if dir.join("Chart.yaml").exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            walk(base, &path, uid, out)?;
            continue;
        }
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !kind.is_file() || !yaml || (dir == base && entry.file_name() == "app.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        // Not a pod spec's value anywhere: nothing to parse (and no reason to refuse odd YAML).
        if !text.contains("runAsUser") {
            continue;
        }
        let changed = translate(&text, uid).map_err(|message| Error::Parse {
            path: path.clone(),
            message,
        })?;
        if let Some((new, lines)) = changed {
            durable::write_atomic(&path, new.as_bytes()).map_err(io(&path))?;
            let file = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
            out.push(Translated { file, lines });
        }
    }
    Ok(())
}

type Span = (usize, usize, usize);

/// A Kubernetes object: where its pod spec is, by kind.
fn object(node: &MarkedYaml<'_>, spans: &mut Vec<Span>) {
    let Some(kind) = get(node, "kind").and_then(text) else {
        return;
    };
    let pod = match kind {
        "Pod" => at(node, &["spec"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => at(node, &["spec", "template", "spec"]),
        "CronJob" => at(node, &["spec", "jobTemplate", "spec", "template", "spec"]),
        "PodTemplate" => at(node, &["template", "spec"]),
        k if k == "List" || k.ends_with("List") => {
            if let Some(YamlData::Sequence(items)) = get(node, "items").map(|i| &i.data) {
                for item in items {
                    object(item, spans);
                }
            }
            None
        }
        _ => None,
    };
    if let Some(pod) = pod {
        pod_spec(pod, spans);
    }
}

fn pod_spec(pod: &MarkedYaml<'_>, spans: &mut Vec<Span>) {
    security_context(get(pod, "securityContext"), spans);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(YamlData::Sequence(containers)) = get(pod, list).map(|c| &c.data) {
            for c in containers {
                security_context(get(c, "securityContext"), spans);
            }
        }
    }
}

fn security_context(ctx: Option<&MarkedYaml<'_>>, spans: &mut Vec<Span>) {
    if let Some(v) = ctx.and_then(|c| get(c, "runAsUser"))
        && matches!(v.data, YamlData::Value(Scalar::Integer(PLACEHOLDER)))
    {
        spans.push((
            v.span.start.index(),
            v.span.end.index(),
            v.span.start.line(),
        ));
    }
}

fn at<'a, 'b>(node: &'a MarkedYaml<'b>, path: &[&str]) -> Option<&'a MarkedYaml<'b>> {
    path.iter().try_fold(node, |n, key| get(n, key))
}

fn get<'a, 'b>(node: &'a MarkedYaml<'b>, key: &str) -> Option<&'a MarkedYaml<'b>> {
    match &node.data {
        YamlData::Mapping(map) => map
            .iter()
            .find(|(k, _)| text(k) == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn text<'a>(node: &'a MarkedYaml<'_>) -> Option<&'a str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn t(text: &str) -> String {
        translate(text, 1001)
            .unwrap()
            .map(|(s, _)| s)
            .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn pod_and_container_levels_with_comments_kept() {
        let pod = "# a vendor's pod\napiVersion: v1\nkind: Pod\nmetadata:\n  name: nginx\nspec:\n  securityContext:\n    runAsUser: -1   # to use for all containers in a Pod\n  containers:\n  - name: nginx\n    image: nginx\n    securityContext:\n      runAsUser:   -1 # one container\n";
        let (out, lines) = translate(pod, 1001).unwrap().unwrap();
        assert_eq!(
            out,
            pod.replace("runAsUser: -1", "runAsUser: 1001")
                .replace("runAsUser:   -1", "runAsUser:   1001")
        );
        assert_eq!(lines, [8, 13]);
    }

    #[test]
    fn every_workload_kind_and_container_list() {
        let doc = |kind: &str, path: &[&str]| {
            let mut s = format!("apiVersion: x\nkind: {kind}\n");
            let mut indent = String::new();
            for p in path {
                s += &format!("{indent}{p}:\n");
                indent += "  ";
            }
            s += &format!(
                "{indent}securityContext: {{runAsUser: -1, runAsGroup: -1}}\n\
                 {indent}initContainers:\n{indent}- name: i\n{indent}  securityContext:\n{indent}    runAsUser: -1\n\
                 {indent}containers: [{{name: c, securityContext: {{runAsUser: -1}}}}]\n\
                 {indent}ephemeralContainers:\n{indent}- name: e\n{indent}  securityContext: {{runAsUser: -1}}\n"
            );
            s
        };
        let cases = [
            ("Pod", &["spec"][..]),
            ("Deployment", &["spec", "template", "spec"]),
            ("StatefulSet", &["spec", "template", "spec"]),
            ("DaemonSet", &["spec", "template", "spec"]),
            ("ReplicaSet", &["spec", "template", "spec"]),
            ("ReplicationController", &["spec", "template", "spec"]),
            ("Job", &["spec", "template", "spec"]),
            (
                "CronJob",
                &["spec", "jobTemplate", "spec", "template", "spec"],
            ),
        ];
        for (kind, path) in cases {
            let input = doc(kind, path);
            let (out, lines) = translate(&input, 1001).unwrap().unwrap();
            assert_eq!(out.matches("runAsUser: 1001").count(), 4, "{kind}:\n{out}");
            assert_eq!(lines.len(), 4, "{kind}");
            // runAsGroup is not the placeholder's field.
            assert!(out.contains("runAsGroup: -1"), "{kind}:\n{out}");
            assert_eq!(
                out.replace("runAsUser: 1001", "runAsUser: -1"),
                input,
                "{kind}"
            );
        }
    }

    #[test]
    fn lists_and_multiple_documents() {
        let input = "kind: List\nitems:\n- kind: Pod\n  spec:\n    securityContext:\n      runAsUser: -1\n---\n# second\nkind: ConfigMapList\nitems: []\n---\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n      - securityContext:\n          runAsUser: -1\n";
        let (out, lines) = translate(input, 7).unwrap().unwrap();
        assert_eq!(out, input.replace("runAsUser: -1", "runAsUser: 7"));
        assert_eq!(lines, [6, 18]);
    }

    #[test]
    fn other_places_and_values_are_left_alone() {
        for input in [
            // Not a workload: a custom resource and a ConfigMap that mention it.
            "kind: Widget\nspec:\n  securityContext:\n    runAsUser: -1\n",
            "kind: ConfigMap\ndata:\n  pod.yaml: |\n    runAsUser: -1\n",
            // Not in a security context, or another value.
            "kind: Pod\nspec:\n  runAsUser: -1\n  containers:\n  - runAsUser: -1\n",
            "kind: Pod\nspec:\n  securityContext:\n    runAsUser: 0\n",
            "kind: Pod\nspec:\n  securityContext:\n    runAsUser: \"-1\"\n",
        ] {
            assert_eq!(translate(input, 1001).unwrap(), None, "{input}");
        }
    }

    #[test]
    fn multibyte_text_before_the_value() {
        let input = "# café ☕\nkind: Pod\nspec:\n  securityContext: {runAsUser: -1} # é\n";
        assert_eq!(t(input), input.replace("-1", "1001"));
    }

    #[test]
    fn directories_skip_the_manifest_and_charts_and_name_bad_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let pod = "kind: Pod\nspec:\n  securityContext:\n    runAsUser: -1\n";
        std::fs::write(dir.path().join("app.yaml"), pod).unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/pod.yml"), pod).unwrap();
        std::fs::write(dir.path().join("notes.txt"), pod).unwrap();
        std::fs::create_dir_all(dir.path().join("chart/templates")).unwrap();
        std::fs::write(dir.path().join("chart/Chart.yaml"), "name: c\n").unwrap();
        std::fs::write(
            dir.path().join("chart/templates/pod.yaml"),
            "{{ if }}runAsUser: -1\n",
        )
        .unwrap();
        let done = translate_dir(dir.path(), 1001).unwrap();
        assert_eq!(
            done,
            [Translated {
                file: "sub/pod.yml".into(),
                lines: vec![4]
            }]
        );
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert!(read("sub/pod.yml").contains("runAsUser: 1001"));
        assert_eq!(read("app.yaml"), pod);
        assert_eq!(read("notes.txt"), pod);

        std::fs::write(
            dir.path().join("bad.yaml"),
            "kind: Pod\nspec: [runAsUser: -1\n",
        )
        .unwrap();
        let err = translate_dir(dir.path(), 1001).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("not valid YAML"),
            "{err}"
        );
    }
}
