//! `registry/`: the container images the cluster image's resources reference, as an OCI image
//! layout that `gravity install` pushes into planet's registry.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cluster_image::archive::{PackEntry, Source};
use cluster_image::layout::REGISTRY_DIR;
use cluster_image::manifest::Manifest;
use registry::store::{INDEX_FILE, Index, OCI_LAYOUT_FILE};
use registry::{DockerConfig, LocalSource, OciLayout, Platform, PullOptions};

use crate::cli::BuildArgs;

/// The vendored images' pack entries; the layout they read from lives as long as this.
pub struct Vendored {
    pub entries: Vec<PackEntry>,
    pub images: Vec<registry::Vendored>,
    _work: Option<tempfile::TempDir>,
}

/// Finds, fetches and lays out every image. `skip` are paths in the manifest's directory that
/// are not resources (the output, tele's state directory).
pub fn collect(
    args: &BuildArgs,
    manifest: &Manifest,
    manifest_dir: &Path,
    skip: &[PathBuf],
) -> anyhow::Result<Vendored> {
    let manifest_name = args
        .manifest
        .file_name()
        .map_or_else(|| PathBuf::from("app.yaml"), PathBuf::from);
    let mut skip = skip.to_vec();
    skip.push(args.manifest.clone());
    let helm = super::helm::Helm::new(args.helm.as_deref(), &args.values, &args.set)?;
    let mut found = registry::discover_dir_rendering(manifest_dir, &skip, Some(&helm))?;
    found.merge(registry::discover_manifest(manifest, &manifest_name)?);
    // A base image given as a planet image travels under planet/, not as a container image.
    let planets: Vec<registry::ImageRef> = super::planet::references(args)
        .filter_map(|r| registry::ImageRef::parse(r).ok())
        .collect();
    found.images.retain(|r, _| !planets.contains(r));
    if !args.quiet {
        for note in &found.notes {
            eprintln!("note: {note}");
        }
    }
    if found.images.is_empty() {
        return Ok(Vendored {
            entries: Vec::new(),
            images: Vec::new(),
            _work: None,
        });
    }

    // With a state directory, blobs are kept between builds (re-hashed before reuse).
    let (dir, work) = match &args.state_dir {
        Some(state) => (state.join("vendor"), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tele-vendor-")
                .tempdir()
                .context("cannot create a work directory for vendored images")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let store = OciLayout::create(&dir)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(anyhow::Error::msg)?,
        None => Platform::host(),
    };
    let sources = args
        .image_sources
        .iter()
        .map(|p| LocalSource::detect(p))
        .collect::<Result<Vec<_>, _>>()?;
    if !args.quiet {
        eprintln!(
            "vendoring {} container image{} ({platform})",
            found.images.len(),
            if found.images.len() == 1 { "" } else { "s" }
        );
    }
    let started = std::time::Instant::now();
    let bar = progress_bar(args.quiet);
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let images = registry::pull_all(
        &store,
        &found.images,
        &PullOptions {
            insecure_registries: args.insecure_registries.clone(),
            platform,
            sources,
            credentials: DockerConfig::load_default()?,
            concurrency: 4,
            progress: Some(&progress),
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let mut entries = vec![
        PackEntry {
            path: format!("{REGISTRY_DIR}/{OCI_LAYOUT_FILE}"),
            mode: 0o644,
            source: Source::Bytes(b"{\"imageLayoutVersion\":\"1.0.0\"}\n".to_vec()),
        },
        PackEntry {
            path: format!("{REGISTRY_DIR}/{INDEX_FILE}"),
            mode: 0o644,
            source: Source::Bytes(
                Index::new(images.iter().map(|i| i.descriptor.clone()).collect()).to_json(),
            ),
        },
    ];
    // Each blob once, however many images share it.
    let blobs: std::collections::BTreeMap<&str, u64> = images
        .iter()
        .flat_map(|i| i.blobs.iter().map(|b| (b.digest.as_str(), b.size)))
        .collect();
    for d in blobs.keys() {
        let path = store.blob_path(d)?;
        entries.push(PackEntry {
            path: format!(
                "{REGISTRY_DIR}/blobs/sha256/{}",
                path.file_name()
                    .expect("a blob path has a name")
                    .to_string_lossy()
            ),
            mode: 0o644,
            source: Source::File(path),
        });
    }
    if !args.quiet {
        eprintln!(
            "vendored {} image{} ({}) in {:.1?}",
            images.len(),
            if images.len() == 1 { "" } else { "s" },
            cluster_image::units::Size(blobs.values().sum()),
            started.elapsed()
        );
        for i in &images {
            eprintln!(
                "  {} -> {} ({}, from {})",
                i.reference,
                i.reference.local_name(),
                cluster_image::units::Size(i.size()),
                i.from
            );
        }
    }
    Ok(Vendored {
        entries,
        images,
        _work: work,
    })
}

fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "pulling {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template"),
    );
    Some(bar)
}
