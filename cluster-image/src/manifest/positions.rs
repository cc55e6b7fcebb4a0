//! Where each node of a manifest sits in its file, by YAML path (`nodeProfiles[0].requirements`).
//!
//! yaml_serde gives positions only for the errors it finds itself; checks that run on the typed
//! manifest afterwards look their positions up here, from a second, position-keeping parse.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Positions {
    /// Position of the value at a path.
    values: HashMap<String, Position>,
    /// Position of the mapping key that leads to a path.
    keys: HashMap<String, Position>,
}

impl Positions {
    /// Indexes `text`; a document that does not parse yields an empty index.
    pub fn index(text: &str) -> Positions {
        let mut positions = Positions::default();
        if let Ok(docs) = MarkedYaml::load_from_str(text)
            && let Some(root) = docs.first()
        {
            positions.walk(root, String::new());
        }
        positions
    }

    fn walk(&mut self, node: &MarkedYaml<'_>, path: String) {
        let start = node.span.start;
        self.values.insert(
            path.clone(),
            Position {
                line: start.line(),
                column: start.col() + 1,
            },
        );
        match &node.data {
            YamlData::Mapping(map) => {
                for (key, value) in map {
                    let Some(name) = scalar_text(key) else {
                        continue;
                    };
                    let child = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    let k = key.span.start;
                    self.keys.insert(
                        child.clone(),
                        Position {
                            line: k.line(),
                            column: k.col() + 1,
                        },
                    );
                    // An empty value (`uninstall:`) is best shown at its key.
                    if matches!(value.data, YamlData::Value(Scalar::Null)) {
                        self.values.insert(child.clone(), self.keys[&child]);
                    } else {
                        self.walk(value, child);
                    }
                }
            }
            YamlData::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// The position of the value at `path`, or of the nearest ancestor that exists.
    pub fn value(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// The position of the key that names `path`, falling back to [`Positions::value`].
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

fn scalar_text(node: &MarkedYaml<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``.
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a:\n  b:\n    - x: 1\n    - y: two\nc: 3\nempty:\n";

    #[test]
    fn paths_point_at_values_and_keys() {
        let p = Positions::index(DOC);
        assert_eq!(p.value("c"), Some(Position { line: 5, column: 4 }));
        assert_eq!(p.key("c"), Some(Position { line: 5, column: 1 }));
        assert_eq!(
            p.value("a.b[1].y"),
            Some(Position {
                line: 4,
                column: 10
            })
        );
        assert_eq!(p.key("a.b[0].x"), Some(Position { line: 3, column: 7 }));
        assert_eq!(p.value("empty"), Some(Position { line: 6, column: 1 }));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let p = Positions::index(DOC);
        assert_eq!(p.value("a.b[1].missing"), p.value("a.b[1]"));
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
    }
}
