//! Helm charts rendered with helm's own engine (`helm template`, the helm planet ships), so
//! that the images the rendered resources reference are vendored as the cluster will run them,
//! with the build's `--values` and `--set`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Renders charts with one helm binary and the build's values.
pub struct Helm {
    program: Result<PathBuf, String>,
    values: Vec<PathBuf>,
    set: Vec<String>,
    /// helm's cache and configuration directories, so the user's are neither read nor written.
    home: tempfile::TempDir,
}

impl Helm {
    /// `explicit` (`--helm`), else `helm` in PATH; a missing helm is an error only once a chart
    /// needs rendering.
    pub fn new(
        explicit: Option<&Path>,
        values: &[PathBuf],
        set: &[String],
    ) -> anyhow::Result<Helm> {
        let program = match explicit {
            Some(p) if p.is_file() => Ok(p.to_path_buf()),
            Some(p) => Err(format!("--helm {} does not exist", p.display())),
            None => in_path("helm").ok_or_else(|| {
                "rendering it needs helm: give --helm FILE (or TELE_HELM), or put helm in PATH \
                 (planet-image/kube/build.sh builds the one planet ships)"
                    .to_string()
            }),
        };
        for v in values {
            anyhow::ensure!(v.is_file(), "--values {}: no such file", v.display());
        }
        Ok(Helm {
            program,
            values: values.to_vec(),
            set: set.to_vec(),
            home: tempfile::tempdir()?,
        })
    }
}

impl registry::RenderChart for Helm {
    fn render(&self, chart: &Path) -> Result<String, String> {
        let program = self.program.as_ref().map_err(Clone::clone)?;
        let name = chart.file_name().map_or_else(
            || "release".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut cmd = Command::new(program);
        cmd.args(["template", &name])
            .arg(chart)
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"));
        for v in &self.values {
            cmd.arg("--values").arg(v);
        }
        for s in &self.set {
            cmd.arg("--set").arg(s);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            // helm's message names the template and line: "Error: template: web/templates/...".
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("helm template: {}", stderr.trim()));
        }
        String::from_utf8(out.stdout).map_err(|_| "helm template printed non-UTF-8 text".into())
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
