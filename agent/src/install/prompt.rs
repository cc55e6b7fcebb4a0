//! Questions for the person installing. Only ever asked on a terminal; without one (or with
//! `--yes`), the answer must come from flags, and the error says which.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use cluster_image::Manifest;

pub fn interactive(yes: bool) -> bool {
    !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The EULA must be accepted, by `--accept-eula` or, on a terminal, by answering yes.
pub fn eula(manifest: &Manifest, accepted: bool, interactive: bool) -> anyhow::Result<()> {
    let Some(eula) = manifest.installer.as_ref().and_then(|i| i.eula.as_ref()) else {
        return Ok(());
    };
    if accepted {
        return Ok(());
    }
    if !interactive {
        bail!(
            "{} has an end user license agreement: read it in the image's app.yaml (installer.eula) and accept it with --accept-eula",
            manifest.metadata.name
        );
    }
    eprintln!("\n{}\n", eula.source.trim());
    if ask("Do you accept this license agreement? [y/N] ")? {
        Ok(())
    } else {
        bail!("the license agreement was not accepted: nothing was installed")
    }
}

/// The flavor: `--flavor`, else a choice on a terminal when there are several, else the default.
pub fn flavor(
    manifest: &Manifest,
    chosen: Option<&str>,
    interactive: bool,
) -> anyhow::Result<String> {
    let flavors = manifest.flavors();
    if let Some(name) = chosen {
        if flavors.iter().any(|f| f.name == name) {
            return Ok(name.to_string());
        }
        let names: Vec<&str> = flavors.iter().map(|f| f.name.as_str()).collect();
        bail!(
            "--flavor {name}: the image has no such flavor (it has: {})",
            names.join(", ")
        );
    }
    let default = manifest.default_flavor();
    if flavors.len() < 2 || !interactive {
        return Ok(default.name);
    }
    let prompt = manifest
        .installer
        .as_ref()
        .and_then(|i| i.flavors.as_ref())
        .and_then(|f| f.prompt.clone())
        .unwrap_or_else(|| "Which flavor of the cluster?".into());
    eprintln!("{prompt}");
    for (i, f) in flavors.iter().enumerate() {
        let mark = if f.name == default.name {
            " (default)"
        } else {
            ""
        };
        eprintln!(
            "  {}) {}{mark}: {}",
            i + 1,
            f.name,
            f.description.as_deref().unwrap_or("")
        );
    }
    let answer = line(&format!(
        "Choose 1-{} [default {}]: ",
        flavors.len(),
        default.name
    ))?;
    if answer.is_empty() {
        return Ok(default.name);
    }
    match answer.parse::<usize>() {
        Ok(n) if (1..=flavors.len()).contains(&n) => Ok(flavors[n - 1].name.clone()),
        _ => {
            bail!("`{answer}` is not one of the choices; pass --flavor to choose without a prompt")
        }
    }
}

pub fn ask(question: &str) -> anyhow::Result<bool> {
    let answer = line(question)?;
    Ok(matches!(answer.to_lowercase().as_str(), "y" | "yes"))
}

fn line(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}
