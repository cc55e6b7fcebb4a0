//! `resources/`: everything in the manifest's directory, as the hooks will see it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cluster_image::archive::{PackEntry, Source};
use cluster_image::layout::RESOURCES_DIR;

/// Walks `dir` in a stable order. Skips `skip` (the output tarball, tele's state directory) and
/// version-control directories; refuses symlinks that lead outside `dir`.
pub fn collect(dir: &Path, skip: &[PathBuf]) -> anyhow::Result<Vec<PackEntry>> {
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot read the manifest's directory {}", dir.display()))?;
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                std::env::current_dir().ok()?.join(p)
            };
            // The output may not exist yet: canonicalize its directory instead.
            let parent = abs.parent()?.canonicalize().ok()?;
            Some(parent.join(abs.file_name()?))
        })
        .collect();
    let mut out = Vec::new();
    walk(&root, &root, &skip, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, skip: &[PathBuf], out: &mut Vec<PackEntry>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if skip.iter().any(|s| s == &path)
            || name.starts_with(".tele")
            || name.ends_with(".partial")
        {
            continue;
        }
        if [".git", ".hg", ".svn"].contains(&name.as_ref()) {
            continue;
        }
        let rel = path.strip_prefix(root).expect("walk stays under root");
        let rel = format!(
            "{RESOURCES_DIR}/{}",
            rel.to_str()
                .with_context(|| format!("{} is not UTF-8", path.display()))?
        );
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(root, &path, skip, out)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let resolved = path.parent().unwrap_or(root).join(&target).canonicalize();
            match resolved {
                Ok(r) if r.starts_with(root) && !target.is_absolute() => out.push(PackEntry {
                    path: rel,
                    mode: 0o777,
                    source: Source::Symlink(target.to_string_lossy().into_owned()),
                }),
                _ => bail!(
                    "{} is a symlink to {}, outside the manifest's directory: copy the file in instead",
                    path.display(),
                    target.display()
                ),
            }
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            // Keep whether a file is executable; normalise the rest for determinism.
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            out.push(PackEntry {
                path: rel,
                mode,
                source: Source::File(path),
            });
        } else {
            bail!(
                "{} is not a regular file, directory or symlink: remove it from the manifest's directory",
                path.display()
            );
        }
    }
    Ok(())
}
