//! The application's hooks on a real single-node cluster: each hook with a command fires at its
//! event as a Kubernetes Job and sees what the spec promises (the resources, kubectl and helm,
//! GRAVITY_SERVICE_USER, the merged values); the example's install hook deploys its Helm chart
//! from the cluster's registry with the install's --values and --set; a failing install hook
//! fails the install with its logs, and `gravity plan rollback` leaves the host clean.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use tests::install::{Installation, SERVICE_UID, copy_example, example_web_image, text};
use tests::planet::SharedServiceUser;
use tests::{bins, planet};

/// A hook that records what it saw in the ConfigMap `hook-<name>` (and says it in its log).
const SPY: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: spy-NAME
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: spy
          image: example.com/web:1.0
          command:
            - /bin/busybox
            - sh
            - -c
            - |
              set -e
              bb=/bin/busybox
              echo "HOOK saw the service user $GRAVITY_SERVICE_USER"
              EXTRA
              values=$($bb cat /var/lib/gravity/helm/values.yaml 2>/dev/null || echo none)
              restored=$($bb cat /var/lib/gravity/backup/data.txt 2>/dev/null || echo none)
              /usr/local/bin/kubectl create configmap hook-NAME -n default \
                --from-literal=uid="$GRAVITY_SERVICE_USER" \
                --from-literal=resources="$($bb ls /var/lib/gravity/resources | $bb tr '\n' ' ')" \
                --from-literal=helm="$(/usr/local/bin/helm version --short)" \
                --from-literal=values="$values" \
                --from-literal=restored="$restored" \
                --dry-run=client -o yaml | /usr/local/bin/kubectl apply -f -
"#;

fn spy(hook: &str, extra: &str) -> String {
    SPY.replace("NAME", &hook.to_lowercase())
        .replace("HOOK", hook)
        .replace("EXTRA", extra)
}

/// The example with the spy on every hook that has a command, beside its own install hook.
fn spied_example(dir: &Path) {
    copy_example(dir);
    let manifest = std::fs::read_to_string(dir.join("app.yaml")).unwrap();
    let mut hooks = String::from("hooks:\n  install:\n    job: file://install.yaml\n");
    for hook in [
        "postInstall",
        "status",
        "start",
        "stop",
        "dump",
        "backup",
        "restore",
        "preUninstall",
        "uninstall",
    ] {
        let extra = match hook {
            "backup" => "echo backed-up-data > /var/lib/gravity/backup/data.txt",
            _ => "true",
        };
        let file = format!("{}-hook.yaml", hook.to_lowercase());
        std::fs::write(dir.join(&file), spy(hook, extra)).unwrap();
        hooks.push_str(&format!("  {hook}:\n    job: file://{file}\n"));
    }
    let (before, _) = manifest
        .split_once("hooks:\n")
        .expect("the example has hooks");
    std::fs::write(dir.join("app.yaml"), format!("{before}{hooks}")).unwrap();
}

fn build(dir: &Path, web: &Path, out: &Path) {
    let o = bins::tele_build(&dir.join("app.yaml"), out)
        .arg("--image-source")
        .arg(web)
        .arg("--planet")
        .arg(planet::image_dir())
        .arg("-q")
        .output()
        .unwrap();
    assert!(o.status.success(), "tele build failed: {}", text(&o));
}

fn kubectl(inst: &Installation, args: &[&str]) -> String {
    let mut all = vec!["kubectl"];
    all.extend_from_slice(args);
    let out = inst.gravity(&all);
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the hook recorded.
fn seen(inst: &Installation, hook: &str, key: &str) -> String {
    kubectl(
        inst,
        &[
            "get",
            "configmap",
            &format!("hook-{}", hook.to_lowercase()),
            "-n",
            "default",
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ],
    )
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
    text(out)
}

#[test]
fn every_hook_fires_at_its_event_and_sees_what_the_spec_promises() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("cluster");
    spied_example(&dir);
    let web = example_web_image(&scratch.path().join("web"));
    let image = scratch.path().join("hooks.tar");
    build(&dir, &web, &image);
    let values = scratch.path().join("site.yaml");
    std::fs::write(&values, "greeting: hello\nreplicas: 1\n").unwrap();

    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let mut args = vec![
        "install".to_string(),
        "--image".into(),
        image.display().to_string(),
        "--values".into(),
        values.display().to_string(),
        "--set".into(),
        "replicas=2".into(),
    ];
    args.extend(inst.install_args().into_iter().skip(3));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = ok(&inst.gravity(&args), "install");
    // The install hook's own lines (helm's) come through the install's output.
    assert!(log.contains("install: [pod/example-install-"), "{log}");
    assert!(log.contains("STATUS: deployed"), "{log}");
    assert!(log.contains("the postInstall hook completed"), "{log}");
    assert!(
        log.contains("Web: http://"),
        "the endpoint is printed:\n{log}"
    );

    // postInstall saw the resources, kubectl (it wrote the ConfigMap with it), helm, the service
    // user and the merged values: the file's, then --set over them (helm's order).
    let resources = seen(&inst, "postInstall", "resources");
    for f in [
        "app.yaml",
        "charts",
        "install.yaml",
        "postinstall-hook.yaml",
    ] {
        assert!(
            resources.split(' ').any(|r| r == f),
            "{f} not in {resources}"
        );
    }
    assert_eq!(seen(&inst, "postInstall", "uid"), SERVICE_UID.to_string());
    assert!(seen(&inst, "postInstall", "helm").starts_with("v3."));
    let merged = seen(&inst, "postInstall", "values");
    assert!(
        merged.contains("greeting: hello") && merged.contains("replicas: 2"),
        "{merged}"
    );

    // The spec's Helm workflow: the chart's image from {{.Values.registry}} set to the
    // cluster's registry, the install's values deployed, run as the service user.
    let deployed = kubectl(
        &inst,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas} {.spec.template.spec.securityContext.runAsUser} {.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(
        deployed,
        format!("2 {SERVICE_UID} registry.local:5000/web:1.0")
    );

    // status: asked once a minute by planet's supervisor, without anyone running a command
    // (its answer is recorded once its Job completed)...
    let answer = inst.state.join("hooks/status.json");
    let deadline = Instant::now() + Duration::from_secs(200);
    while !answer.exists() {
        assert!(
            Instant::now() < deadline,
            "the status hook did not run by itself within 200 s"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let by_timer = std::fs::read_to_string(&answer).unwrap();
    assert!(by_timer.contains("\"ok\": true"), "{by_timer}");
    assert_eq!(seen(&inst, "status", "uid"), SERVICE_UID.to_string());
    // ... and by `gravity status`, its answer shown there.
    let status = inst.status();
    assert_eq!(status["application"]["ok"], true, "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(seen(&inst, "status", "uid"), SERVICE_UID.to_string());
    // Values are only for the hooks that take them.
    assert_eq!(seen(&inst, "status", "values"), "none");

    ok(&inst.gravity(&["app", "stop"]), "app stop");
    assert_eq!(seen(&inst, "stop", "uid"), SERVICE_UID.to_string());
    ok(&inst.gravity(&["app", "start"]), "app start");
    assert_eq!(seen(&inst, "start", "uid"), SERVICE_UID.to_string());

    // backup writes into its directory, gravity packs it; restore gets it back.
    let backup = scratch.path().join("backup.tar");
    ok(
        &inst.gravity(&["backup", backup.to_str().unwrap()]),
        "backup",
    );
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l == "data.txt"),
        "{listing:?}"
    );
    ok(
        &inst.gravity(&["restore", backup.to_str().unwrap()]),
        "restore",
    );
    assert_eq!(seen(&inst, "restore", "restored"), "backed-up-data");

    // The report: logs (the dump hook's among them), plans and status; no secrets.
    let report = scratch.path().join("report.tar");
    ok(
        &inst.gravity(&["report", report.to_str().unwrap()]),
        "report",
    );
    let members = report_members(&report);
    assert!(
        members.iter().any(|m| m == "report/status.json"),
        "{members:?}"
    );
    assert!(
        members.iter().any(|m| m == "report/pods.txt"),
        "{members:?}"
    );
    assert!(
        members.iter().any(|m| m == "state/operation/current.json"),
        "{members:?}"
    );
    let dump = members
        .iter()
        .find(|m| m.starts_with("state/logs/hooks/dump-"))
        .unwrap_or_else(|| panic!("no dump hook log: {members:?}"));
    assert!(
        read_member(&report, dump).contains("dump saw the service user 1001"),
        "{dump}"
    );
    assert!(
        !members
            .iter()
            .any(|m| m.contains("pki") || m.contains("kubeconfig") || m.contains("values.yaml")),
        "{members:?}"
    );

    // Uninstall runs preUninstall then uninstall, their lines in its output.
    let log = ok(&inst.uninstall(), "uninstall");
    let pre = log.find("preUninstall saw the service user 1001");
    let un = log.find("uninstall saw the service user 1001");
    assert!(pre.is_some() && un.is_some() && pre < un, "{log}");
}

#[test]
fn a_failing_install_hook_fails_the_install_with_its_logs_and_rollback_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("cluster");
    copy_example(&dir);
    std::fs::write(
        dir.join("install.yaml"),
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: example-install
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: install
          image: example.com/web:1.0
          command: [/bin/busybox, sh, -c, "echo 'migrating the schema'; echo 'migration failed: table users is locked' >&2; exit 3"]
"#,
    )
    .unwrap();
    let web = example_web_image(&scratch.path().join("web"));
    let image = scratch.path().join("failing.tar");
    build(&dir, &web, &image);

    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let out = inst.install_example_variant(&image);
    assert!(
        !out.status.success(),
        "the install succeeded:\n{}",
        text(&out)
    );
    let log = text(&out);
    for expected in [
        "the install hook failed: Job kube-system/example-install: BackoffLimitExceeded",
        "migration failed: table users is locked",
        "see more: gravity kubectl -n kube-system logs job/example-install --all-containers",
    ] {
        assert!(log.contains(expected), "no {expected:?} in:\n{log}");
    }

    // Resuming is another try: the failed Job is replaced by a new one, not followed.
    let out = inst.gravity(&["install", "--resume"]);
    assert!(
        !out.status.success(),
        "the resume succeeded:\n{}",
        text(&out)
    );
    let log = text(&out);
    assert!(
        log.contains("created the Job kube-system/example-install")
            && log.contains("migration failed: table users is locked"),
        "{log}"
    );

    let out = inst.gravity(&["plan", "rollback"]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    let left = ::planet::leftovers(&inst.state);
    assert!(left.is_clean(), "rollback left planet behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(inst.state.to_str().unwrap()),
        "mounts left:\n{mounts}"
    );
}

fn report_members(tarball: &PathBuf) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(tarball)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn read_member(tarball: &Path, member: &str) -> String {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(tarball)
        .arg(member)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
