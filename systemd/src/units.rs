//! The unit files gravity installs on the host, rendered from templates in `templates/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("cannot write the unit file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove the unit file {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where units of the local administrator live; ours belong there, not in /lib.
pub const UNIT_DIR: &str = "etc/systemd/system";
pub const PLANET_UNIT: &str = "gravity-planet.service";
pub const AGENT_UNIT: &str = "gravity-agent.service";

/// What a planet unit needs to know.
#[derive(Debug, Clone)]
pub struct PlanetUnit {
    pub gravity: PathBuf,
    pub state_dir: PathBuf,
    pub cluster: String,
    pub cluster_version: String,
}

impl PlanetUnit {
    pub fn render(&self) -> String {
        render_service(
            include_str!("templates/gravity-planet.service"),
            &["planet", "run"],
            &self.gravity,
            &self.state_dir,
            &self.cluster,
            &self.cluster_version,
        )
    }
}

/// What the join agent's unit needs to know.
#[derive(Debug, Clone)]
pub struct AgentUnit {
    pub gravity: PathBuf,
    pub state_dir: PathBuf,
    pub cluster: String,
    pub cluster_version: String,
}

impl AgentUnit {
    pub fn render(&self) -> String {
        render_service(
            include_str!("templates/gravity-agent.service"),
            &["agent", "serve"],
            &self.gravity,
            &self.state_dir,
            &self.cluster,
            &self.cluster_version,
        )
    }
}

/// A unit whose ExecStart is `GRAVITY <command> --state-dir STATE`.
fn render_service(
    template: &str,
    command: &[&str],
    gravity: &Path,
    state_dir: &Path,
    cluster: &str,
    cluster_version: &str,
) -> String {
    let mut exec_start = vec![quote(&gravity.to_string_lossy())];
    exec_start.extend(command.iter().map(|w| w.to_string()));
    exec_start.push("--state-dir".into());
    exec_start.push(quote(&state_dir.to_string_lossy()));
    render(
        template,
        &BTreeMap::from([
            ("gravity_version", env!("CARGO_PKG_VERSION").to_string()),
            ("cluster", cluster.to_string()),
            ("cluster_version", cluster_version.to_string()),
            ("state_dir", escape_specifiers(&state_dir.to_string_lossy())),
            ("exec_start", exec_start.join(" ")),
        ]),
    )
}

/// Replaces `{{key}}`; every placeholder must have a value.
fn render(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = template.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(
        !out.contains("{{"),
        "unrendered placeholder in template:\n{out}"
    );
    out
}

/// systemd expands `%` specifiers in most settings; a literal `%` is written `%%`.
fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// A word of a command line as systemd parses it.
fn quote(word: &str) -> String {
    let escaped = escape_specifiers(word);
    if escaped
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%".contains(c))
    {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Writes a unit under `root`/etc/systemd/system atomically. Returns whether it changed.
pub fn install(root: &Path, name: &str, content: &str) -> Result<bool, UnitError> {
    let dir = root.join(UNIT_DIR);
    let path = dir.join(name);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let err = |source| UnitError::Write {
        path: path.clone(),
        source,
    };
    // Durable: the install journals the phase as done right after, and a power cut must not
    // then leave an empty unit behind.
    durable::write_atomic(&path, content.as_bytes()).map_err(err)?;
    Ok(true)
}

/// Removes a unit file; a missing one is fine. Returns whether one was removed.
pub fn remove(root: &Path, name: &str) -> Result<bool, UnitError> {
    let path = root.join(UNIT_DIR).join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(UnitError::Remove { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words_are_quoted_when_needed() {
        assert_eq!(quote("/var/lib/gravity"), "/var/lib/gravity");
        assert_eq!(quote("/opt/my state"), "\"/opt/my state\"");
        assert_eq!(quote("/data/100%"), "/data/100%%");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn install_is_idempotent_and_remove_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert!(install(dir.path(), "x.service", "a").unwrap());
        assert!(!install(dir.path(), "x.service", "a").unwrap());
        assert!(install(dir.path(), "x.service", "b").unwrap());
        assert!(remove(dir.path(), "x.service").unwrap());
        assert!(!remove(dir.path(), "x.service").unwrap());
    }
}
