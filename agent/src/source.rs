//! Finding the cluster image a command works on, and checking it before anything else happens.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cluster_image::archive::{ImageIndex, UnpackOptions, unpack, verify_dir};
use cluster_image::layout;
use cluster_image::manifest::{Manifest, load_resolved};

/// A verified, unpacked cluster image.
#[derive(Debug, Clone)]
pub struct ClusterImage {
    pub dir: PathBuf,
    pub index: ImageIndex,
    pub manifest: Manifest,
}

impl ClusterImage {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// The directory the running `gravity` binary is in.
pub fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the gravity executable's path")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Opens the image named by `--image` (a tarball or a directory), or the unpacked image this
/// `gravity` runs from. A tarball is unpacked under `<state>/images/`, where a later `--resume`
/// finds it again. Every file is verified before this returns.
pub fn open(image: Option<&Path>, state_dir: &Path) -> anyhow::Result<ClusterImage> {
    let dir = match image {
        Some(p) if p.is_file() => unpack_into_state(p, state_dir)?,
        Some(p) if p.is_dir() => {
            verify(p)?;
            p.to_path_buf()
        }
        Some(p) => bail!("the cluster image {} does not exist", p.display()),
        None => {
            let dir = own_dir()?;
            if !dir.join(layout::INDEX).exists() {
                bail!(
                    "{} is not an unpacked cluster image (it has no {}): run gravity from the directory you unpacked the image into, or pass --image PATH",
                    dir.display(),
                    layout::INDEX
                );
            }
            verify(&dir)?;
            dir
        }
    };
    let index = ImageIndex::from_json(
        &std::fs::read(dir.join(layout::INDEX)).context("cannot read the image index")?,
        &dir.join(layout::INDEX),
    )?;
    let manifest = load_resolved(&dir.join(layout::MANIFEST))?;
    Ok(ClusterImage {
        dir,
        index,
        manifest,
    })
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    let report = verify_dir(dir)
        .with_context(|| format!("the cluster image in {} failed verification", dir.display()))?;
    tracing::info!(
        files = report.files,
        bytes = report.bytes,
        elapsed = ?report.elapsed,
        "verified {} {}",
        report.index.name,
        report.index.version
    );
    Ok(())
}

/// Where a cluster image tarball is unpacked under the state directory.
pub fn unpack_target(archive: &Path, state_dir: &Path) -> PathBuf {
    let stem = archive
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".zst").trim_end_matches(".tar"))
        .unwrap_or("image");
    crate::state_dir::StateDir::new(state_dir).unpacked_image(stem)
}

fn unpack_into_state(archive: &Path, state_dir: &Path) -> anyhow::Result<PathBuf> {
    let target = unpack_target(archive, state_dir);
    if target.join(layout::INDEX).exists() {
        // Unpacked by an earlier, perhaps interrupted, run: reuse it if it is intact.
        verify(&target)?;
        return Ok(target);
    }
    let report = unpack(archive, &target, &UnpackOptions::default())
        .with_context(|| format!("cannot unpack the cluster image {}", archive.display()))?;
    tracing::info!(files = report.files, elapsed = ?report.elapsed, "unpacked {}", archive.display());
    Ok(target)
}
