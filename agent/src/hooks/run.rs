//! Runs a prepared hook Job in planet's Kubernetes and follows it to its end: its logs as they
//! come, its failure with the last lines and the command that shows the rest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::job::{OPERATION_LABEL, PreparedJob, SERVICE_ACCOUNT};
use super::kubectl::Kubectl;

const POLL: Duration = Duration::from_secs(2);
/// How long an earlier run's Job may take to go (see its deletion).
const REPLACE_TIMEOUT: Duration = Duration::from_secs(300);
/// A pod that cannot start (its image cannot be pulled, its config is wrong) fails the hook
/// after this long instead of at the hook's timeout.
const STUCK: Duration = Duration::from_secs(90);
const LAST_LINES: usize = 15;
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Runs `job` and waits for it; `say` gets each new log line, `log` keeps all of them.
pub fn run(
    kubectl: &Kubectl,
    hook: &str,
    job: &PreparedJob,
    timeout: Duration,
    log: &Path,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let (ns, name) = (job.namespace.as_str(), job.name.as_str());
    let operation = job.job["metadata"]["labels"][OPERATION_LABEL]
        .as_str()
        .unwrap_or_default();
    if job.job["spec"]["template"]["spec"]["serviceAccountName"] == SERVICE_ACCOUNT {
        service_account(kubectl, ns)?;
    }
    let found = kubectl.run(&[
        "-n",
        ns,
        "get",
        "job",
        name,
        "--ignore-not-found",
        "-o",
        "json",
    ])?;
    let resumed = match serde_json::from_str::<Value>(&found).ok() {
        // This operation's Job, running or done: followed, never run twice. One that failed is
        // run again: resuming after a failed hook is asking for another try.
        Some(old)
            if old["metadata"]["labels"][OPERATION_LABEL] == operation
                && !matches!(ended(&old), Some(Err(_))) =>
        {
            true
        }
        Some(_) => {
            // An earlier run of this hook (the status hook every minute, an earlier
            // operation, this operation's failed try): it is replaced, so that its name can
            // be used again.
            // Foreground: the Job goes once its pods are gone, which takes the garbage
            // collector, and a controller manager that was just restarted (an upgrade's) may
            // first wait for its leader lease.
            kubectl.run_for(
                &[
                    "-n",
                    ns,
                    "delete",
                    "job",
                    name,
                    "--cascade=foreground",
                    "--wait=true",
                    &format!("--timeout={}s", REPLACE_TIMEOUT.as_secs()),
                ],
                REPLACE_TIMEOUT + Duration::from_secs(30),
            )?;
            false
        }
        None => false,
    };
    if resumed {
        say(format!(
            "the Job {ns}/{name} of this operation exists already: following it, not running it again"
        ));
    } else {
        let bytes = serde_json::to_vec(&job.job)?;
        kubectl
            .run_with_input(&["create", "-f", "-"], Some(&bytes))
            .with_context(|| format!("cannot create the {hook} hook's Job {ns}/{name}"))?;
        say(format!("created the Job {ns}/{name}"));
    }

    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A new Job's log starts the file over; a followed one continues it.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut logs = Logs::default();
    let deadline = Instant::now() + timeout;
    let mut stuck_since: Option<(Instant, String)> = None;
    let see_all = format!("gravity kubectl -n {ns} logs job/{name} --all-containers");
    loop {
        let status = kubectl
            .run(&["-n", ns, "get", "job", name, "-o", "json"])
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok());
        let end = status.as_ref().and_then(ended);
        for line in logs.update(kubectl, ns, name) {
            writeln!(file, "{line}")?;
            say(line);
        }
        match end {
            Some(Ok(())) => return Ok(()),
            Some(Err(why)) => bail!(logs.failure(hook, ns, name, &why, &see_all)),
            None => {}
        }
        match stuck(kubectl, ns, name) {
            Some(why) => {
                let since = stuck_since.get_or_insert_with(|| (Instant::now(), why.clone()));
                if since.0.elapsed() >= STUCK {
                    bail!(logs.failure(
                        hook,
                        ns,
                        name,
                        &format!("its pod cannot start for {STUCK:?}: {why}"),
                        &format!("gravity kubectl -n {ns} describe pods -l batch.kubernetes.io/job-name={name}"),
                    ));
                }
            }
            None => stuck_since = None,
        }
        if Instant::now() >= deadline {
            bail!(logs.failure(
                hook,
                ns,
                name,
                &format!("it did not finish within {timeout:?} (it is left running)"),
                &see_all,
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// The hooks' service account in `ns`, bound to cluster-admin: hooks install the application.
fn service_account(kubectl: &Kubectl, ns: &str) -> anyhow::Result<()> {
    let objects = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": SERVICE_ACCOUNT, "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": format!("{SERVICE_ACCOUNT}:{ns}")},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]},
        ],
    });
    kubectl
        .run_with_input(
            &[
                "apply",
                "--server-side",
                // The server validates (server-side apply refuses undeclared fields); kubectl's
                // own check first downloads the whole OpenAPI schema, which on an emulated CPU
                // overran the request timeout during an install.
                "--validate=false",
                "--force-conflicts",
                "--field-manager=gravity",
                "-f",
                "-",
            ],
            Some(&serde_json::to_vec(&objects)?),
        )
        .with_context(|| format!("cannot create the hooks' service account in namespace {ns}"))?;
    Ok(())
}

/// `Some(Ok)` when the Job completed, `Some(Err(why))` when it failed, `None` while it runs.
fn ended(job: &Value) -> Option<Result<(), String>> {
    let conditions = job["status"]["conditions"].as_array()?;
    for c in conditions {
        if c["status"] != "True" {
            continue;
        }
        match c["type"].as_str() {
            Some("Complete") => return Some(Ok(())),
            Some("Failed") => {
                return Some(Err(format!(
                    "{}: {}",
                    c["reason"].as_str().unwrap_or("Failed"),
                    c["message"].as_str().unwrap_or("")
                )));
            }
            _ => {}
        }
    }
    None
}

/// Why one of the Job's pods cannot start, if one cannot.
fn stuck(kubectl: &Kubectl, ns: &str, name: &str) -> Option<String> {
    let selector = format!("batch.kubernetes.io/job-name={name}");
    let pods = kubectl
        .run(&["-n", ns, "get", "pods", "-l", &selector, "-o", "json"])
        .ok()?;
    let pods: Value = serde_json::from_str(&pods).ok()?;
    for pod in pods["items"].as_array()? {
        for list in ["initContainerStatuses", "containerStatuses"] {
            for c in pod["status"][list].as_array().into_iter().flatten() {
                let waiting = &c["state"]["waiting"];
                let reason = waiting["reason"].as_str().unwrap_or_default();
                if STUCK_REASONS.contains(&reason) {
                    return Some(format!(
                        "pod {} container {}: {reason}: {}",
                        pod["metadata"]["name"].as_str().unwrap_or("?"),
                        c["name"].as_str().unwrap_or("?"),
                        waiting["message"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    None
}

/// The Job's log lines seen so far, per pod and container (kubectl's `--prefix`).
#[derive(Default)]
struct Logs {
    seen: BTreeMap<String, usize>,
    last: Vec<String>,
}

impl Logs {
    /// The lines not seen before.
    fn update(&mut self, kubectl: &Kubectl, ns: &str, name: &str) -> Vec<String> {
        let selector = format!("batch.kubernetes.io/job-name={name}");
        // Fails while a container has not started: its lines come on a later round.
        let Ok(all) = kubectl.run(&[
            "-n",
            ns,
            "logs",
            "-l",
            &selector,
            "--all-containers",
            "--prefix",
            "--tail=-1",
            "--max-log-requests=20",
        ]) else {
            return Vec::new();
        };
        let mut by_source: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for line in all.lines() {
            let source = line
                .strip_prefix('[')
                .and_then(|l| l.split_once(']'))
                .map_or("", |(s, _)| s);
            by_source.entry(source.to_string()).or_default().push(line);
        }
        let mut new = Vec::new();
        for (source, lines) in by_source {
            let seen = self.seen.entry(source).or_default();
            // Fewer lines than before: the container restarted; its new lines start over.
            if lines.len() < *seen {
                *seen = 0;
            }
            new.extend(lines[*seen..].iter().map(|l| l.to_string()));
            *seen = lines.len();
        }
        self.last.extend(new.iter().cloned());
        let excess = self.last.len().saturating_sub(LAST_LINES);
        self.last.drain(..excess);
        new
    }

    fn failure(&self, hook: &str, ns: &str, name: &str, why: &str, more: &str) -> String {
        let mut s = format!("the {hook} hook failed: Job {ns}/{name}: {why}");
        if self.last.is_empty() {
            s.push_str("\nit wrote no log lines");
        } else {
            s.push_str("\nits last log lines:");
            for l in &self.last {
                s.push_str("\n  ");
                s.push_str(l);
            }
        }
        s.push_str(&format!("\nsee more: {more}"));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_ends_by_its_conditions() {
        let complete = json!({"status": {"conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}]}});
        assert_eq!(ended(&complete), Some(Ok(())));
        let failed = json!({"status": {"conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            ended(&failed),
            Some(Err(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            ))
        );
        assert_eq!(ended(&json!({"status": {"active": 1}})), None);
    }
}
