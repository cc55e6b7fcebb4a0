//! Cluster images of the example in several versions, for the upgrade tests: each with its
//! own daemon arguments, application image tag and hooks; the first on planet's image with an
//! older etcd patch, the others on planet's own image, restamped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::install::{Installation, copy_example, example_web_image, text};
use crate::{bins, planet};

/// The example as version `version`: its chart deploys web:`tag`, the update hook is its
/// install hook (`helm upgrade --install`), `extra_hooks` are added, and the daemons get
/// `etcd_arg` and `kubelet_arg` beside the example's.
pub fn variant(
    dir: &Path,
    version: &str,
    tag: &str,
    etcd_arg: &str,
    kubelet_arg: &str,
    extra_hooks: &str,
) {
    copy_example(dir);
    let manifest = std::fs::read_to_string(dir.join("app.yaml"))
        .unwrap()
        .replace(
            "resourceVersion: 0.1.0",
            &format!("resourceVersion: {version}"),
        )
        .replace(
            "\"--election-timeout=1500\"]",
            &format!("\"--election-timeout=1500\", \"{etcd_arg}\"]"),
        )
        .replace(
            "\"--system-reserved=memory=500Mi\"]",
            &format!("\"--system-reserved=memory=500Mi\", \"{kubelet_arg}\"]"),
        );
    let manifest = format!(
        "{manifest}  update:\n    job: file://install.yaml\n  rollback:\n    job: file://rollback.yaml\n{extra_hooks}"
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
    std::fs::write(dir.join("rollback.yaml"), ROLLBACK).unwrap();
    std::fs::write(dir.join("fail.yaml"), FAIL).unwrap();
    let values = dir.join("charts/web/values.yaml");
    let text = std::fs::read_to_string(&values)
        .unwrap()
        .replace("tag: \"1.0\"", &format!("tag: \"{tag}\""));
    std::fs::write(values, text).unwrap();
}

/// Adds `profile` (YAML, a list item indented as the manifest's) to the example's node
/// profiles in `dir`.
pub fn add_profile(dir: &Path, profile: &str) {
    let path = dir.join("app.yaml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let at = manifest
        .find("\nsystemOptions:")
        .expect("the example has cluster-wide systemOptions");
    let manifest = format!("{}\n{}{}", &manifest[..at], profile, &manifest[at..]);
    std::fs::write(path, manifest).unwrap();
}

/// Adds a volume to the example's first profile in `dir`: `path` on the host (created where
/// missing), `target` inside planet.
pub fn add_volume(dir: &Path, name: &str, path: &Path, target: &str) {
    let file = dir.join("app.yaml");
    let manifest = std::fs::read_to_string(&file).unwrap();
    let after = "          mode: \"0750\"\n";
    assert!(manifest.contains(after), "the example's volume moved");
    let volume = format!(
        "        - name: {name}\n          path: {}\n          targetPath: {target}\n          createIfMissing: true\n          mode: \"0750\"\n",
        path.display()
    );
    std::fs::write(
        file,
        manifest.replacen(after, &format!("{after}{volume}"), 1),
    )
    .unwrap();
}

/// The rollback hook: helm puts the release back at its previous revision.
const ROLLBACK: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: example-rollback
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: rollback
          image: example.com/web:1.0
          command: ["/usr/local/bin/helm", "rollback", "web", "0", "--namespace", "default", "--wait", "--timeout", "5m"]
"#;

const FAIL: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: example-post-update
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: fail
          image: example.com/web:1.0
          command: ["/bin/busybox", "sh", "-c", "echo the post-update check failed; exit 3"]
"#;

/// The example's web image tagged 1.0 and `tags` in one OCI layout.
pub fn web_images(dir: &Path, tags: &[&str]) -> PathBuf {
    let web = example_web_image(&dir.join("web"));
    for tag in tags {
        let out = Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:example.com/web:1.0", web.display()))
            .arg(format!("oci:{}:example.com/web:{tag}", web.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy: {}", text(&out));
    }
    web
}

/// planet's image under another version: a new planet image to the upgrade.
pub fn restamped_planet(dir: &Path, version: &str) -> PathBuf {
    let from = planet::image_dir();
    std::fs::create_dir_all(dir).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("planet.json")).unwrap()).unwrap();
    let file = meta["file"].as_str().unwrap().to_string();
    meta["version"] = format!("{}-{version}", meta["version"].as_str().unwrap()).into();
    std::fs::write(dir.join("planet.json"), meta.to_string()).unwrap();
    std::fs::hard_link(from.join(&file), dir.join(&file))
        .or_else(|_| std::fs::copy(from.join(&file), dir.join(&file)).map(drop))
        .unwrap();
    dir.to_path_buf()
}

pub fn build(dir: &Path, web: &Path, planet: &Path, out: &Path) {
    let o = bins::tele_build(&dir.join("app.yaml"), out)
        .arg("--image-source")
        .arg(web)
        .arg("--planet")
        .arg(planet)
        .arg("-q")
        .output()
        .unwrap();
    assert!(o.status.success(), "tele build failed: {}", text(&o));
}

/// One version of the example ([`variant`]): (version, web tag, etcd arg, kubelet arg, extra
/// hooks); the first runs planet's image with etcd one patch older, the others planet's own
/// image, restamped.
pub type Version<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// Builds each version's cluster image under `tmp` (`example-<version>.tar`), in order, each
/// version's files changed by `edit(version, dir)` before it is built.
pub fn images_with(
    tmp: &Path,
    web: &Path,
    versions: &[Version<'_>],
    edit: impl Fn(&str, &Path),
) -> Vec<PathBuf> {
    versions
        .iter()
        .enumerate()
        .map(|(i, (version, tag, etcd, kubelet, hooks))| {
            let dir = tmp.join(version);
            variant(&dir, version, tag, etcd, kubelet, hooks);
            edit(version, &dir);
            let planet = if i == 0 {
                planet::previous_etcd_image_dir()
            } else {
                restamped_planet(&tmp.join(format!("planet-{version}")), version)
            };
            let out = tmp.join(format!("example-{version}.tar"));
            build(&dir, web, &planet, &out);
            out
        })
        .collect()
}

/// The etcd version a planet image carries (its planet.json's `kube.etcd`).
pub fn etcd_version(planet_dir: &Path) -> String {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(planet_dir.join("planet.json")).unwrap()).unwrap();
    meta["kube"]["etcd"].as_str().unwrap().to_string()
}

/// The arguments of the process whose program ends with `binary`, inside planet.
pub fn cmdline(inst: &Installation, binary: &str) -> String {
    cmdline_in(&inst.exec(&["ps", "-eo", "args="]), binary)
}

/// The command line of `binary` in `ps -eo args=` output: the line whose program ends with it,
/// or its part of a line of `kube-control-plane` or `kube-node`, which run Kubernetes'
/// components together (`kube-node kubelet ARGS... --- kube-proxy ARGS...`).
pub fn cmdline_in(ps: &str, binary: &str) -> String {
    ps.lines()
        .find_map(|l| component_args(l, binary))
        .unwrap_or_else(|| panic!("no {binary} runs inside planet:\n{ps}"))
}

/// `binary`'s command line in the command line `args`, if it runs there (see [`cmdline_in`]).
pub fn component_args(args: &str, binary: &str) -> Option<String> {
    let mut words = args.split_whitespace();
    let program = words.next()?;
    if program.ends_with(binary) {
        return Some(args.trim().to_string());
    }
    if !["kube-control-plane", "kube-node"]
        .iter()
        .any(|g| program.ends_with(g))
    {
        return None;
    }
    let words: Vec<&str> = words.collect();
    words
        .split(|w| *w == "---")
        .find(|part| part.first() == Some(&binary))
        .map(|part| part.join(" "))
}

/// 1.0.0 installed; 1.1.0 upgrades it (other daemon arguments, web:1.1); 1.2.0's postUpdate
/// hook fails.
pub const VERSIONS: [Version<'static>; 3] = [
    (
        "1.0.0",
        "1.0",
        "--max-request-bytes=1572864",
        "--max-pods=110",
        "",
    ),
    (
        "1.1.0",
        "1.1",
        "--max-request-bytes=2097152",
        "--max-pods=100",
        "",
    ),
    (
        "1.2.0",
        "1.2",
        "--max-request-bytes=3145728",
        "--max-pods=90",
        "  postUpdate:\n    job: file://fail.yaml\n",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_component_alone_or_in_its_group() {
        let ps = "/usr/bin/etcd --name=vm\n\
            /usr/bin/kube-node kubelet --config=k --max-pods=110 --- kube-proxy --config=p\n";
        assert_eq!(cmdline_in(ps, "etcd"), "/usr/bin/etcd --name=vm");
        assert_eq!(
            cmdline_in(ps, "kubelet"),
            "kubelet --config=k --max-pods=110"
        );
        assert_eq!(cmdline_in(ps, "kube-proxy"), "kube-proxy --config=p");
        assert_eq!(
            component_args(ps.lines().nth(1).unwrap(), "kube-apiserver"),
            None
        );
    }
}
