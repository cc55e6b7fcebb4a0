//! `gravity backup FILE` and `gravity restore FILE`: the application's backup hook writes into
//! `/var/lib/gravity/backup` of its Job, and gravity packs that into FILE, a verified archive
//! (a SHA-256 index of every file); restore checks FILE, unpacks it there and runs the restore
//! hook.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cluster_image::archive::{self, Compression, PackEntry, PackOptions, Source};

use crate::cli::GlobalArgs;
use crate::effects::Effects;
use crate::hooks::{self, Ran};
use crate::install::state;
use crate::state_dir::StateDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup file (`.tar`, or `.tar.zst` compressed)
    pub file: PathBuf,
}

pub fn backup(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    require_root("backup")?;
    if args.file.exists() {
        bail!(
            "{} exists: give a new file (a backup never overwrites one)",
            args.file.display()
        );
    }
    let dir = layout.backup();
    empty(&dir)?;
    match hooks::run_now(
        &Effects::host(),
        &layout,
        "backup",
        hooks::TIMEOUT,
        &mut hooks::to_stderr("backup"),
    )? {
        Ran::Done => {}
        Ran::NotDefined => {
            bail!(
                "the application has no backup hook (hooks.backup in its manifest): nothing to back up"
            )
        }
    }
    let mut entries = Vec::new();
    collect(&dir, &dir, &mut entries)?;
    if entries.is_empty() {
        bail!(
            "the backup hook completed but wrote nothing into {}: no backup was written",
            hooks::job::BACKUP
        );
    }
    let cluster = crate::install::state::ClusterRecord::load(&layout)?;
    let index = archive::pack(
        entries,
        &args.file,
        &PackOptions {
            name: cluster
                .as_ref()
                .map_or("backup".into(), |c| format!("{}-backup", c.name)),
            version: cluster.map_or_else(String::new, |c| c.version),
            compression: Compression::for_path(&args.file),
            mtime: durable::now_ms() / 1000,
            progress: None,
        },
    )
    .with_context(|| format!("cannot write {}", args.file.display()))?;
    empty(&dir)?;
    eprintln!(
        "backup written to {}: {} files, {} bytes",
        args.file.display(),
        index.files.len(),
        index.total_size()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    require_root("restore")?;
    if hooks::saved(&layout, "restore")?.is_none() {
        bail!("the application has no restore hook (hooks.restore in its manifest)");
    }
    let dir = layout.backup();
    empty(&dir)?;
    // Refuses a tampered or hostile file before anything reaches the hook.
    let staging = layout.root().join(".restore");
    state::remove_dir(&staging)?;
    archive::unpack(&args.file, &staging, &archive::UnpackOptions::default())
        .with_context(|| format!("{} is not a usable backup", args.file.display()))?;
    for entry in std::fs::read_dir(&staging)? {
        let entry = entry?;
        if entry.file_name() != cluster_image::layout::INDEX {
            std::fs::rename(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    state::remove_dir(&staging)?;
    let ran = hooks::run_now(
        &Effects::host(),
        &layout,
        "restore",
        hooks::TIMEOUT,
        &mut hooks::to_stderr("restore"),
    );
    empty(&dir)?;
    ran?;
    eprintln!("restored from {}", args.file.display());
    Ok(ExitCode::SUCCESS)
}

/// Empties the directory, keeping it: planet binds this very directory (its inode) into its
/// Jobs, so a new one in its place would not be seen there.
fn empty(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            durable::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity {what} reads the cluster's state: run it as root");
    }
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PackEntry>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if ft.is_dir() {
            collect(root, &path, out)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            out.push(PackEntry {
                path: rel,
                mode: entry.metadata()?.permissions().mode() & 0o777,
                source: Source::File(path),
            });
        } else if ft.is_symlink() {
            out.push(PackEntry {
                path: rel,
                mode: 0o777,
                source: Source::Symlink(std::fs::read_link(&path)?.to_string_lossy().into_owned()),
            });
        }
    }
    Ok(())
}
