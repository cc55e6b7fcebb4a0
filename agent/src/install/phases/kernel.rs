//! The kernel settings Kubernetes needs (modules, `ip_forward`, `bridge-nf-call-iptables`, and
//! `wireguard` for that overlay), applied and persisted as `gravity check --autofix` does, for
//! the checks not ignored. Every file it changes is recorded with its previous content in
//! `<state>/kernel.json` before the change, so rollback and uninstall put the host back as it
//! was. Loaded modules stay loaded: unloading one another program may use is not ours to do.

use crate::state_dir::StateDir;
use std::path::{Path, PathBuf};

use anyhow::bail;
use preflight::HostChanger;
use preflight::autofix::AutofixError;
use preflight::checks::kernel::{SYSCTLS, check_sysctl};
use serde::{Deserialize, Serialize};

use crate::install::{Ctx, state};
use operation::{Phase, Report};

pub struct Kernel;

/// A file as it was before the install changed it; `None`: it did not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Before {
    pub path: PathBuf,
    pub content: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub files: Vec<Before>,
}

impl Phase<Ctx> for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn description(&self) -> &'static str {
        "Load kernel modules and set the sysctls Kubernetes needs"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let ignore = preflight::IgnoreList::from_entries(&ctx.params.ignore_preflight_errors);
        let wanted = |id: &str| !ignore.matches(id);
        let host = ctx.effects.kernel.host.clone();
        let network = ctx.manifest().network_type();
        let mut changer = Recording {
            record_path: record(&ctx.layout),
            record: state::read_record(&record(&ctx.layout))?,
            inner: ctx.effects.kernel.changer.as_mut(),
        };
        let changes = preflight::autofix::autofix_only(&host, &mut changer, network, &wanted);
        let mut failed = Vec::new();
        for change in &changes {
            match &change.error {
                None => out.say(&change.what),
                Some(e) => failed.push(format!("{}: {e}", change.what)),
            }
        }
        // The checks' own verdict on each sysctl not ignored, now that it is set.
        for s in SYSCTLS.iter().filter(|s| wanted(&s.check_id())) {
            let check = check_sysctl(&host, s);
            if check.status != preflight::Status::Pass {
                failed.push(format!(
                    "{} is {} after setting it to {}",
                    s.key,
                    check.measured.as_deref().unwrap_or("unreadable"),
                    s.value
                ));
            }
        }
        if !failed.is_empty() {
            bail!(
                "cannot prepare the kernel: {}; fix it, or go on without with --ignore-preflight-errors=<the check>",
                failed.join("; ")
            );
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        restore(&ctx.layout, ctx.effects.kernel.changer.as_mut())
    }
}

fn record(layout: &StateDir) -> PathBuf {
    layout.kernel_record()
}

/// Puts back every file the install changed, newest change first, and forgets the record.
pub fn restore(layout: &StateDir, writer: &mut dyn HostChanger) -> anyhow::Result<()> {
    let path = record(layout);
    let rec: Record = state::read_record(&path)?;
    let mut errors = Vec::new();
    for before in rec.files.iter().rev() {
        let result = match &before.content {
            Some(content) => writer
                .write_file(&before.path, content)
                .map_err(|e| e.to_string()),
            // A /proc/sys file that appeared with its module goes when the module does.
            None if before.path.starts_with("/proc") => Ok(()),
            None => writer.remove_file(&before.path).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        bail!(
            "cannot restore the kernel settings files: {}",
            errors.join("; ")
        );
    }
    state::remove_file(&path)?;
    Ok(())
}

/// Records a file's content before its first change by this install, durably, then changes it.
/// A file already recorded (a resumed install) keeps its first, original content.
struct Recording<'a> {
    inner: &'a mut dyn HostChanger,
    record_path: PathBuf,
    record: Record,
}

impl HostChanger for Recording<'_> {
    fn load_module(&mut self, name: &str) -> Result<(), AutofixError> {
        self.inner.load_module(name)
    }
    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), AutofixError> {
        if !self.record.files.iter().any(|b| b.path == path) {
            self.record.files.push(Before {
                path: path.to_path_buf(),
                content: self.inner.read_file(path),
            });
            state::write_record(&self.record_path, &self.record).map_err(|source| {
                AutofixError::Write {
                    path: self.record_path.clone(),
                    source,
                }
            })?;
        }
        self.inner.write_file(path, contents)
    }
    fn read_file(&self, path: &Path) -> Option<String> {
        self.inner.read_file(path)
    }
    fn remove_file(&mut self, path: &Path) -> Result<(), AutofixError> {
        self.inner.remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_puts_back_changed_files_and_removes_created_ones() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StateDir::new(dir.path());
        let changed = dir.path().join("sysctl.conf");
        let created = dir.path().join("modules.conf");
        std::fs::write(&changed, "ours\n").unwrap();
        std::fs::write(&created, "ours\n").unwrap();
        let rec = Record {
            files: vec![
                Before {
                    path: changed.clone(),
                    content: Some("theirs\n".into()),
                },
                Before {
                    path: created.clone(),
                    content: None,
                },
            ],
        };
        state::write_record(&record(&layout), &rec).unwrap();
        let mut writer = preflight::RealChanger::new(preflight::Host::real());
        restore(&layout, &mut writer).unwrap();
        assert_eq!(std::fs::read_to_string(&changed).unwrap(), "theirs\n");
        assert!(!created.exists());
        assert!(!record(&layout).exists());
        // Nothing recorded: nothing to do.
        restore(&layout, &mut writer).unwrap();
    }
}
