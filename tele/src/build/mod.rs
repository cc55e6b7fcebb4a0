//! `tele build`: resolve and validate the manifest, gather what the image carries, pack it.

mod elf;
mod helm;
mod planet;
mod readme;
mod resources;
mod vendor;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use cluster_image::archive::{Compression, DEFAULT_MTIME, PackEntry, PackOptions, Source, pack};
use cluster_image::layout;
use cluster_image::manifest::load_file;

use crate::cli::BuildArgs;
use crate::fetch::HttpFetch;

/// What `tele build` put into an image, for its summary and for tests.
#[derive(Debug)]
pub struct Built {
    pub output: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Container images vendored under `registry/`.
    pub images: usize,
}

pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let built = build(args)?;
    if !args.quiet {
        eprintln!(
            "built {} ({} files, {}) in {:.1?}",
            built.output.display(),
            built.files,
            cluster_image::units::Size(built.bytes),
            started.elapsed()
        );
    }
    Ok(())
}

pub fn build(args: &BuildArgs) -> anyhow::Result<Built> {
    let manifest_path = &args.manifest;
    let fetch = HttpFetch::new()?;
    let loaded = load_file(manifest_path, &fetch)?;
    let manifest = loaded.manifest;
    for src in &loaded.sources {
        tracing::info!(field = %src.field, uri = %src.uri, bytes = src.bytes, "resolved");
    }
    let manifest_dir = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.tar", manifest.image_stem())));

    let mut entries = Vec::new();
    let gravity = gravity_binary(args)?;
    if !elf::is_static(&gravity)? {
        eprintln!(
            "warning: {} is dynamically linked; it may not run on hosts with an older C library (build it with `make release`)",
            gravity.display()
        );
    }
    entries.push(PackEntry {
        path: layout::GRAVITY_BIN.into(),
        mode: 0o755,
        source: Source::File(gravity),
    });
    for (script, subcommand) in layout::SCRIPTS {
        entries.push(PackEntry {
            path: (*script).into(),
            mode: 0o755,
            source: Source::Bytes(layout::script(subcommand).into_bytes()),
        });
    }
    entries.push(PackEntry {
        path: layout::README.into(),
        mode: 0o644,
        source: Source::Bytes(
            readme::text(
                &manifest,
                args.planet.is_some() || !args.planet_images.is_empty(),
            )
            .into_bytes(),
        ),
    });
    entries.push(PackEntry {
        path: layout::MANIFEST.into(),
        mode: 0o644,
        source: Source::Bytes(manifest.to_yaml().into_bytes()),
    });
    let skip: Vec<PathBuf> = [Some(output.clone()), args.state_dir.clone()]
        .into_iter()
        .flatten()
        .collect();
    entries.extend(resources::collect(&manifest_dir, &skip)?);
    // First: a base image without a planet image warns before vendoring tries to pull it.
    entries.extend(planet::collect(args, &manifest)?);
    // Kept until packing is done: its entries read blobs from its work directory.
    let vendored = vendor::collect(args, &manifest, &manifest_dir, &skip)?;
    entries.extend(vendored.entries.iter().cloned());
    if !args.values.is_empty() || !args.set.is_empty() {
        entries.push(PackEntry {
            path: "helm/build-values.json".into(),
            mode: 0o644,
            source: Source::Bytes(serde_json::to_vec_pretty(
                &serde_json::json!({"values": args.values, "set": args.set}),
            )?),
        });
    }

    let compression = match Compression::for_path(&output) {
        Compression::Zstd { .. } => Compression::Zstd {
            level: args.zstd_level,
        },
        c => c,
    };
    let bar = progress_bar(args.quiet);
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let index = pack(
        entries,
        &output,
        &PackOptions {
            name: manifest.metadata.name.clone(),
            version: manifest.metadata.resource_version.clone(),
            compression,
            mtime: source_date_epoch(),
            progress: Some(&progress),
        },
    )
    .with_context(|| format!("cannot write {}", output.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Built {
        output,
        files: index.files.len(),
        bytes: index.total_size(),
        images: vendored.images.len(),
    })
}

fn gravity_binary(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    let path = match &args.gravity {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("cannot find tele's own path")?
            .with_file_name("gravity"),
    };
    if !path.is_file() {
        bail!(
            "the gravity binary {} does not exist: build it (`make release`) or pass --gravity FILE",
            path.display()
        );
    }
    Ok(path)
}

fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MTIME)
}

fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "packing {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template"),
    );
    Some(bar)
}
