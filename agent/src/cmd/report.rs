//! `gravity report FILE`: a debug report to send to the vendor, as one tarball: gravity's logs
//! (hook logs among them), the operation plans, the node's records and status, planet's journal
//! and the cluster's nodes, pods and events, and the application's dump hook output. Secrets
//! stay out: no PKI, no kubeconfigs, no Helm values (they may hold passwords), no backups.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cluster_image::archive::{self, Compression, PackEntry, PackOptions, Source};

use crate::cli::GlobalArgs;
use crate::effects::Effects;
use crate::hooks::{self, Ran};
use crate::state_dir::StateDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report file (`.tar`, or `.tar.zst` compressed)
    pub file: PathBuf,
    /// Do not run the application's dump hook
    #[arg(long)]
    pub skip_hooks: bool,
}

/// Files and directories of the state directory that go in as they are.
const STATE_FILES: &[&str] = &[
    "cluster.json",
    "checks",
    "kernel.json",
    "volumes.json",
    "service-user.json",
    "operation",
    "hooks",
    "planet/config.json",
    "planet/status.json",
];

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity report reads the cluster's state: run it as root");
    }
    if !layout.root().exists() {
        bail!("nothing is installed in {}", layout.root().display());
    }
    if args.file.exists() {
        bail!("{} exists: give a new file", args.file.display());
    }
    let mut notes = Vec::new();
    if !args.skip_hooks {
        // Its output is its Job's log, which lands in logs/hooks/ with the other logs.
        match hooks::run_now(
            &Effects::host(),
            &layout,
            "dump",
            hooks::STATUS_TIMEOUT,
            &mut hooks::to_stderr("dump"),
        ) {
            Ok(Ran::Done) => notes.push("the dump hook ran: its output is in logs/hooks/".into()),
            Ok(Ran::NotDefined) => notes.push("the application has no dump hook".into()),
            Err(e) => notes.push(format!("the dump hook failed: {e:#}")),
        }
    }

    let mut entries = Vec::new();
    let root = layout.root();
    for rel in STATE_FILES.iter().copied().chain(["logs"]) {
        let path = root.join(rel);
        if path.exists() {
            add(root, &path, &mut entries)?;
        }
    }
    let mut text = |name: &str, content: String| {
        entries.push(PackEntry {
            path: format!("report/{name}"),
            mode: 0o644,
            source: Source::Bytes(content.into_bytes()),
        })
    };
    text("status.txt", command_output(root, &["status"]));
    text(
        "status.json",
        command_output(root, &["status", "--output", "json"]),
    );
    match planet::status::Status::running_init_pid(root) {
        Some(_) => {
            // Through `gravity planet exec` in a child: its output is large, and exec needs a
            // fresh single-threaded process.
            let journal = command_output(
                root,
                &[
                    "planet",
                    "exec",
                    "--",
                    "journalctl",
                    "--no-pager",
                    "--output=short-precise",
                    "-n",
                    "20000",
                ],
            );
            text("planet-journal.txt", journal);
            match hooks::kubectl::Kubectl::of(root) {
                Ok(k) => {
                    for (name, args) in [
                        ("nodes.txt", &["get", "nodes", "-o", "wide"][..]),
                        ("pods.txt", &["get", "pods", "-A", "-o", "wide"][..]),
                        ("jobs.txt", &["get", "jobs", "-A", "-o", "wide"][..]),
                        (
                            "events.txt",
                            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
                        ),
                        ("describe-nodes.txt", &["describe", "nodes"][..]),
                    ] {
                        text(name, k.run(args).unwrap_or_else(|e| format!("{e:#}\n")));
                    }
                }
                Err(e) => notes.push(format!("no Kubernetes: {e:#}")),
            }
        }
        None => notes.push("planet is not running: no journal, no Kubernetes state".into()),
    }
    text("notes.txt", notes.join("\n") + "\n");
    let index = archive::pack(
        entries,
        &args.file,
        &PackOptions {
            name: "gravity-report".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            compression: Compression::for_path(&args.file),
            mtime: durable::now_ms() / 1000,
            progress: None,
        },
    )
    .with_context(|| format!("cannot write {}", args.file.display()))?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "report written to {}: {} files, {} bytes",
        args.file.display(),
        index.files.len(),
        index.total_size()
    );
    Ok(ExitCode::SUCCESS)
}

/// This gravity's own output for `args` (stdout and stderr), with the same state directory.
fn command_output(state_dir: &Path, args: &[&str]) -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "cannot find gravity's own binary\n".into();
    };
    match std::process::Command::new(exe)
        .args(args)
        .env("GRAVITY_STATE_DIR", state_dir)
        .output()
    {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("cannot run gravity {}: {e}\n", args.join(" ")),
    }
}

fn add(root: &Path, path: &Path, out: &mut Vec<PackEntry>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
        {
            add(root, &entry?.path(), out)?;
        }
    } else if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        // Lock files and temporaries say nothing.
        if name == "lock" || name.ends_with(".tmp") {
            return Ok(());
        }
        out.push(PackEntry {
            path: format!(
                "state/{}",
                path.strip_prefix(root)
                    .expect("under the state directory")
                    .display()
            ),
            mode: 0o644,
            source: Source::Bytes(
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            ),
        });
    }
    Ok(())
}
