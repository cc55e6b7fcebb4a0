//! Fetches the cluster image from the first node into `<state>/images/<name>-<version>/`,
//! every file checked against the image's SHA-256 index; a cut transfer continues where it
//! stopped, and files already in place are kept.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use cluster_image::archive::{ImageIndex, Kind};
use operation::{Phase, Report, failpoint};

use crate::join::plan::Ctx;

pub struct Fetch;

/// Files at least this big get a line of their own.
const BIG: u64 = 64 << 20;

/// Where the join keeps the cluster image it fetched.
pub fn image_dir(ctx: &Ctx, index: &ImageIndex) -> PathBuf {
    ctx.layout
        .unpacked_image(&format!("{}-{}", index.name, index.version))
}

impl Phase<Ctx> for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }
    fn description(&self) -> &'static str {
        "Fetch the cluster image from the cluster"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let client = ctx.client()?;
        let info = client.cluster(ctx.params.role.as_deref())?;
        let index = ImageIndex::from_json(info.index.as_bytes(), Path::new("index.json"))?;
        let dir = image_dir(ctx, &index);
        let summary = image(&client, &info.index, &dir, &mut |line| out.say(line))?;
        out.say(summary);
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let images = ctx.layout.root().join("images");
        if images.exists() {
            crate::install::state::remove_dir(&images)?;
        }
        Ok(())
    }
}

/// Fetches the image whose index (JSON) is `index_json` from the cluster's agent into `dir`:
/// every file checked against the index, a cut transfer continued, files in place kept; big
/// files are said as they arrive. A summary line back.
pub fn image(
    client: &rpc::agent::Client,
    index_json: &str,
    dir: &Path,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<String> {
    let index = ImageIndex::from_json(index_json.as_bytes(), Path::new("index.json"))?;
    let started = Instant::now();
    let (mut fetched, mut resumed, mut kept) = (0u64, 0u64, 0usize);
    for entry in &index.files {
        let dest = cluster_image::archive::resolve_beneath(dir, &entry.path).map_err(|why| {
            anyhow::anyhow!("the cluster's image index names {}: {why}", entry.path)
        })?;
        match entry.kind {
            Kind::Symlink => {
                let target = entry.target.as_deref().unwrap_or_default();
                cluster_image::archive::check_symlink_target(&entry.path, target)?;
                if std::fs::read_link(&dest).is_ok_and(|t| t == Path::new(target)) {
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let _ = std::fs::remove_file(&dest);
                std::os::unix::fs::symlink(target, &dest)
                    .with_context(|| format!("cannot link {}", dest.display()))?;
            }
            Kind::File => {
                // Only a checked file is ever renamed into place.
                if dest.is_file() {
                    kept += 1;
                    continue;
                }
                let got = client.fetch(&entry.path, &entry.sha256, &dest, &mut |_, _| {})?;
                std::fs::set_permissions(
                    &dest,
                    std::fs::Permissions::from_mode(entry.mode & 0o777),
                )?;
                fetched += got.size - got.resumed_from;
                resumed += got.resumed_from;
                if got.size >= BIG {
                    say(format!("{} ({} MiB)", entry.path, got.size >> 20));
                }
                failpoint("fetch", "during");
            }
        }
    }
    durable::write_atomic(
        &dir.join(cluster_image::layout::INDEX),
        index_json.as_bytes(),
    )?;
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "{} {} in {}: {} MiB fetched in {secs:.1}s ({:.0} MiB/s){}{}",
        index.name,
        index.version,
        dir.display(),
        fetched >> 20,
        (fetched as f64 / (1 << 20) as f64) / secs.max(0.001),
        if resumed > 0 {
            format!(", {} MiB resumed", resumed >> 20)
        } else {
            String::new()
        },
        if kept > 0 {
            format!(", {kept} files here already")
        } else {
            String::new()
        },
    ))
}
