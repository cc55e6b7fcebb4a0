//! `planet/`: the planet system container images the node profiles run. The default image
//! (`--planet`) sits at `planet/` itself; a profile's `systemOptions.baseImage: NAME:VERSION`
//! runs a custom one (`--planet-image NAME:VERSION=DIR`) packed at `planet/NAME/VERSION/`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use cluster_image::archive::{PackEntry, Source};
use cluster_image::layout;
use cluster_image::manifest::Manifest;

use crate::cli::BuildArgs;

pub fn collect(args: &BuildArgs, manifest: &Manifest) -> anyhow::Result<Vec<PackEntry>> {
    // baseImage -> the profiles that run it; None: the default image.
    let mut wanted: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for profile in manifest.profiles().iter() {
        let base = manifest.system_options_for(profile).base_image;
        wanted.entry(base).or_default().push(profile.name.clone());
    }

    let mut entries = Vec::new();
    if let Some(dir) = &args.planet {
        entries.extend(image_entries(dir, layout::PLANET_DIR)?);
    } else if wanted.contains_key(&None) && !args.quiet {
        eprintln!(
            "note: no --planet given: this image can be verified and checked, but not installed on {}",
            profile_list(&wanted[&None])
        );
    }
    for (reference, dir) in &args.planet_images {
        if !wanted.contains_key(&Some(reference.clone())) {
            bail!(
                "--planet-image {reference}: no node profile runs it (their systemOptions.baseImage: {})",
                base_images(&wanted)
            );
        }
        let relative = layout::custom_planet_dir(reference)
            .with_context(|| format!("`{reference}` is not a NAME:VERSION reference"))?;
        let prefix = format!("{}/{relative}", layout::PLANET_DIR);
        entries.extend(
            image_entries(dir, &prefix).with_context(|| format!("--planet-image {reference}"))?,
        );
    }
    for (reference, profiles) in &wanted {
        let Some(reference) = reference else { continue };
        if !args.planet_images.iter().any(|(r, _)| r == reference) {
            // It is still vendored as a container image; planet itself needs a planet image.
            eprintln!(
                "warning: systemOptions.baseImage {reference} of {} has no planet image: installing {} will fail; build one with planet-image/build.sh and pass --planet-image {reference}=DIR",
                profile_list(profiles),
                if profiles.len() == 1 { "it" } else { "them" },
            );
        }
    }
    Ok(entries)
}

/// The base image references tele was given planet images for: they are not container images
/// to vendor.
pub fn references(args: &BuildArgs) -> impl Iterator<Item = &str> {
    args.planet_images.iter().map(|(r, _)| r.as_str())
}

fn profile_list(profiles: &[String]) -> String {
    let names: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
    format!(
        "node profile{} {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

fn base_images(wanted: &BTreeMap<Option<String>, Vec<String>>) -> String {
    let names: Vec<&str> = wanted.keys().flatten().map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `planet.json` and the image file it names, under `prefix`; the image's SHA-256 must match
/// what the JSON says.
fn image_entries(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PackEntry>> {
    let meta_path = dir.join("planet.json");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path)
            .with_context(|| format!("cannot read {}", meta_path.display()))?,
    )
    .with_context(|| format!("{} is not valid JSON", meta_path.display()))?;
    let file = meta["file"]
        .as_str()
        .filter(|f| !f.contains('/'))
        .with_context(|| format!("{} has no valid \"file\" field", meta_path.display()))?;
    let expected = meta["sha256"].as_str().unwrap_or_default();
    let image_path = dir.join(file);
    let (actual, _) = cluster_image::archive::hash_file(&image_path)?;
    if actual != expected {
        bail!(
            "the planet image {} does not match {} (sha256 {actual}, expected {expected}): rebuild it",
            image_path.display(),
            meta_path.display()
        );
    }
    Ok(vec![
        PackEntry {
            path: format!("{prefix}/planet.json"),
            mode: 0o644,
            source: Source::File(meta_path),
        },
        PackEntry {
            path: format!("{prefix}/{file}"),
            mode: 0o644,
            source: Source::File(image_path),
        },
    ])
}
