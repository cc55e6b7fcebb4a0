//! The Helm values file hooks read at `<state>/helm/values.yaml`: `--values` files merged in
//! order, then `--set` assignments. helm itself merges them (planet's helm, once planet runs),
//! so the merge order, the `--set` syntax (`a.b=c,d[0]=e`, `\,`) and its typing are helm's:
//! a reimplementation would differ on the corners users rely on.
//!
//! Before that, [`check`] catches what can be caught early (a missing or non-mapping file, a
//! `--set` without `=`), and the install keeps copies of the files (`<state>/helm/inputs/`), so
//! a resumed install merges what was given even if the user's files changed or went away.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use yaml_serde::Value;

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("cannot read the values file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the values file {} is not valid YAML: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: yaml_serde::Error,
    },
    #[error("the values file {} must hold a mapping at the top level", path.display())]
    NotAMapping { path: PathBuf },
    #[error("--set {0}: write it as key.path=value (helm's syntax)")]
    BadSet(String),
}

/// Checks the files and assignments before anything changes.
pub fn check(files: &[PathBuf], sets: &[String]) -> Result<(), ValuesError> {
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
            path: path.clone(),
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = yaml_serde::from_str(&text).map_err(|source| ValuesError::Parse {
            path: path.clone(),
            source,
        })?;
        if !value.is_mapping() && !value.is_null() {
            return Err(ValuesError::NotAMapping { path: path.clone() });
        }
    }
    for set in sets {
        // Each comma-separated assignment needs a key; helm checks the rest.
        let ok = set
            .split(',')
            .all(|a| a.split_once('=').is_some_and(|(k, _)| !k.is_empty()));
        if !ok {
            return Err(ValuesError::BadSet(set.clone()));
        }
    }
    Ok(())
}

/// Copies the `--values` files into `dir` (`01-name.yaml`, ... in their order); the copies.
pub fn keep(files: &[PathBuf], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    crate::install::state::remove_dir(dir)?;
    let mut kept = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().map_or_else(
            || "values.yaml".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let to = dir.join(format!("{:02}-{name}", i + 1));
        durable::copy_atomic(file, &to)
            .with_context(|| format!("cannot copy the values file {}", file.display()))?;
        kept.push(to);
    }
    Ok(kept)
}

/// The kept copies, in their order.
pub fn kept(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    files.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    files.sort();
    Ok(files)
}

/// helm's merge of `files` then `sets`, as YAML: `helm template` of a chart that prints its
/// values (under a key, so that helm's manifest sorting never reads them as an object).
pub fn merge_with_helm(helm: &Path, files: &[PathBuf], sets: &[String]) -> anyhow::Result<String> {
    let work = std::env::temp_dir().join(format!("gravity-values.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = merge_in(helm, files, sets, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn merge_in(
    helm: &Path,
    files: &[PathBuf],
    sets: &[String],
    work: &Path,
) -> anyhow::Result<String> {
    let chart = work.join("values");
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: values\nversion: 0.1.0\n",
    )?;
    std::fs::write(
        chart.join("templates/values.yaml"),
        "values:\n{{ toYaml .Values | indent 2 }}\n",
    )?;
    let mut cmd = Command::new(helm);
    cmd.args(["template", "values"])
        .arg(&chart)
        .env("HELM_CACHE_HOME", work.join("cache"))
        .env("HELM_CONFIG_HOME", work.join("config"))
        .env("HELM_DATA_HOME", work.join("data"));
    for f in files {
        cmd.arg("--values").arg(f);
    }
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run helm ({})", helm.display()))?;
    if !out.status.success() {
        bail!(
            "helm cannot merge the values (--values {}, --set {}): {}",
            files.len(),
            sets.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = yaml_serde::from_str(&text)
        .with_context(|| format!("helm printed values that are not YAML:\n{text}"))?;
    let values = doc.get("values").cloned().unwrap_or(Value::Null);
    if values.is_null() || values.as_mapping().is_some_and(|m| m.is_empty()) {
        return Ok("{}\n".into());
    }
    Ok(yaml_serde::to_string(&values)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_names_what_and_where() {
        assert!(matches!(
            check(&[], &["novalue".into()]),
            Err(ValuesError::BadSet(_))
        ));
        assert!(matches!(
            check(&[], &["a=1,=2".into()]),
            Err(ValuesError::BadSet(_))
        ));
        check(&[], &["a.b=1,c[0]=x".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- 1\n").unwrap();
        assert!(matches!(
            check(&[list], &[]),
            Err(ValuesError::NotAMapping { .. })
        ));
        let missing = dir.path().join("missing.yaml");
        let e = check(std::slice::from_ref(&missing), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }

    #[test]
    fn copies_are_kept_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("z.yaml"), dir.path().join("a.yaml"));
        std::fs::write(&a, "x: 1\n").unwrap();
        std::fs::write(&b, "x: 2\n").unwrap();
        let inputs = dir.path().join("inputs");
        let kept_now = keep(&[a, b], &inputs).unwrap();
        assert_eq!(kept(&inputs).unwrap(), kept_now);
        assert_eq!(
            kept_now
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            ["01-z.yaml", "02-a.yaml"]
        );
    }
}
