//! Text to a validated, resolved manifest, or every problem with its position.

use std::path::Path;

use super::error::{Diagnostic, ManifestError};
use super::positions::Positions;
use super::resolve::{Fetch, ResolvedSource, resolve};
use super::types::Manifest;
use super::validate::{Finding, validate};

/// A manifest that parsed, resolved and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    /// The `file://` and remote content that was inlined.
    pub sources: Vec<ResolvedSource>,
}

/// Reads `path`, resolving `file://` relative to its directory and remote URIs with `fetch`.
pub fn load_file(path: &Path, fetch: &dyn Fetch) -> Result<Loaded, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(&text, path, base, fetch)
}

/// `file` names the manifest in messages; `base_dir` anchors relative `file://` URIs.
pub fn load_str(
    text: &str,
    file: &Path,
    base_dir: &Path,
    fetch: &dyn Fetch,
) -> Result<Loaded, ManifestError> {
    let positions = Positions::index(text);
    let invalid = |diagnostics| ManifestError::Invalid {
        file: file.to_path_buf(),
        diagnostics,
    };
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(invalid(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            path: String::new(),
            message: "the manifest is empty: it needs at least apiVersion, kind and metadata"
                .into(),
        }]));
    }
    let mut manifest: Manifest = yaml_serde::from_str(text)
        .map_err(|e| invalid(vec![from_yaml_error(&e, text, file, &positions)]))?;

    let mut findings = Vec::new();
    let sources = match resolve(&mut manifest, base_dir, fetch) {
        Ok(sources) => sources,
        Err(failures) => {
            findings.extend(failures);
            Vec::new()
        }
    };
    for mut finding in validate(&manifest) {
        // A problem inside resolved content should name the file it came from.
        if let Some(src) = sources.iter().find(|s| s.field == finding.path) {
            finding.message = format!("{} (in {})", finding.message, src.uri);
        }
        findings.push(finding);
    }
    if findings.is_empty() {
        return Ok(Loaded { manifest, sources });
    }
    let mut diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|f| positioned(f, file, &positions))
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(invalid(diagnostics))
}

fn positioned(f: Finding, file: &Path, positions: &Positions) -> Diagnostic {
    let pos = positions.value(&f.path);
    Diagnostic {
        file: file.to_path_buf(),
        line: pos.map_or(1, |p| p.line),
        column: pos.map_or(1, |p| p.column),
        path: f.path,
        message: f.message,
    }
}

/// yaml_serde writes `path: message at line L column C`; split that into its parts and, for an
/// unknown key or value, name the closest known one.
fn from_yaml_error(
    e: &yaml_serde::Error,
    source: &str,
    file: &Path,
    positions: &Positions,
) -> Diagnostic {
    let text = strip_marks(&e.to_string());
    let (mut path, mut message) = split_path(&text);
    let mut location = e.location().map(|l| (l.line(), l.column()));
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        // serde names the key but not where the second one is.
        path = join(&path, field);
        location = second_occurrence(source, field).or(location);
        message = format!("`{field}` is given twice: keep one");
    }
    if let Some(unknown) = message
        .strip_prefix("unknown field ")
        .or_else(|| message.strip_prefix("unknown variant "))
    {
        let words = backticked(unknown);
        if let Some((name, known)) = words.split_first() {
            let is_field = message.starts_with("unknown field");
            let what = if is_field { "field" } else { "value" };
            message = match closest(name, known) {
                Some(best) => format!("unknown {what} `{name}`, did you mean `{best}`?"),
                None if known.is_empty() => {
                    format!("unknown {what} `{name}`: nothing is allowed here")
                }
                None => format!(
                    "unknown {what} `{name}`; expected one of {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            if is_field {
                path = join(&path, name);
            }
        }
    }
    let (line, column) = match (location, positions.key(&path)) {
        (Some(l), _) => l,
        (None, Some(p)) => (p.line, p.column),
        (None, None) => (1, 1),
    };
    Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        path,
        message,
    }
}

/// libyaml and yaml_serde append " at line L column C" to messages; the diagnostic shows it once.
fn strip_marks(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let end = tail
            .find(" column ")
            .map(|c| {
                let after = &tail[c + " column ".len()..];
                c + " column ".len()
                    + after
                        .find(|ch: char| !ch.is_ascii_digit())
                        .unwrap_or(after.len())
            })
            .unwrap_or(0);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Line and column of the second `key:` at the indentation of the first.
fn second_occurrence(source: &str, key: &str) -> Option<(usize, usize)> {
    let mut first_indent = None;
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_key = trimmed
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'));
        if !is_key {
            continue;
        }
        match first_indent {
            None => first_indent = Some(indent),
            Some(i) if i == indent => return Some((n + 1, indent + 1)),
            Some(_) => {}
        }
    }
    None
}

fn split_path(text: &str) -> (String, String) {
    if let Some((head, rest)) = text.split_once(": ")
        && !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'))
    {
        return (head.to_string(), rest.to_string());
    }
    (String::new(), text.to_string())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The known name nearest to `name`, if it is near enough to be a typo.
pub fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&name.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Loads a manifest that was already resolved by `tele build` (inside a cluster image).
pub fn load_resolved(path: &Path) -> Result<Manifest, ManifestError> {
    load_file(path, &super::resolve::Offline).map(|l| l.manifest)
}
