//! The Helm values file hooks read at `<state>/helm/values.yaml`: `--values` files merged in
//! order, then `--set` assignments, with Helm's semantics (later wins, maps merge deeply).

use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

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
    #[error("--set {0}: write it as key.path=value")]
    BadSet(String),
}

pub fn merge(files: &[PathBuf], sets: &[String]) -> Result<Value, ValuesError> {
    let mut out = Value::Mapping(Mapping::new());
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
            path: path.clone(),
            source,
        })?;
        let value: Value = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            yaml_serde::from_str(&text).map_err(|source| ValuesError::Parse {
                path: path.clone(),
                source,
            })?
        };
        if !value.is_mapping() {
            return Err(ValuesError::NotAMapping { path: path.clone() });
        }
        deep_merge(&mut out, value);
    }
    for set in sets {
        let (key, raw) = set
            .split_once('=')
            .ok_or_else(|| ValuesError::BadSet(set.clone()))?;
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ValuesError::BadSet(set.clone()));
        }
        let mut nested = scalar(raw);
        for part in key.rsplit('.') {
            let mut m = Mapping::new();
            m.insert(Value::String(part.to_string()), nested);
            nested = Value::Mapping(m);
        }
        deep_merge(&mut out, nested);
    }
    Ok(out)
}

/// Helm's `--set` typing: integers, booleans and null become those; the rest stays a string.
fn scalar(raw: &str) -> Value {
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => raw
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| Value::String(raw.to_string())),
    }
}

fn deep_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, other) => *slot = other,
    }
}

/// Writes the merged values; an empty merge still writes `{}` so hooks can always read the file.
pub fn write(path: &Path, value: &Value) -> std::io::Result<()> {
    let text = yaml_serde::to_string(value).map_err(std::io::Error::other)?;
    durable::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_merge_deeply_and_sets_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "nginx:\n  image: 1.9\n  replicas: 1\nregistry: a\n").unwrap();
        std::fs::write(&b, "nginx:\n  replicas: 3\n").unwrap();
        let v = merge(
            &[a, b],
            &[
                "nginx.image=1.11.0".into(),
                "postgres.registry=internal.io".into(),
                "debug=true".into(),
                "port=80".into(),
            ],
        )
        .unwrap();
        let text = yaml_serde::to_string(&v).unwrap();
        assert_eq!(
            text,
            "nginx:\n  image: 1.11.0\n  replicas: 3\nregistry: a\npostgres:\n  registry: internal.io\ndebug: true\nport: 80\n"
        );
    }

    #[test]
    fn bad_input_names_what_and_where() {
        assert!(matches!(
            merge(&[], &["novalue".into()]),
            Err(ValuesError::BadSet(_))
        ));
        assert!(matches!(
            merge(&[], &["a..b=1".into()]),
            Err(ValuesError::BadSet(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- 1\n").unwrap();
        assert!(matches!(
            merge(&[list], &[]),
            Err(ValuesError::NotAMapping { .. })
        ));
        let missing = dir.path().join("missing.yaml");
        let e = merge(std::slice::from_ref(&missing), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }
}
