//! Workloads on the installed node: images vendored by `tele build` under their original names
//! (`example.com/web:1.0`, `nginx:1.25`) run without any download (containerd takes every
//! registry from the cluster's own); a Service answers on its ClusterIP from the host (kube-proxy)
//! and by its DNS name from another pod (CoreDNS, from planet's system images).

use std::time::Duration;

use tests::install::{Installation, SERVICE_UID, text};
use tests::oci_fixture::{Image, layer, write_layout};
use tests::planet::SharedServiceUser;
use tests::wait::eventually;
use tests::{bins, planet};

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example.com/web:1.0
        command: [/bin/busybox, httpd, -f, -p, "8080", -h, /www]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: nginx:1.25
    command: [/bin/busybox, sleep, "3600"]
"#;

/// The spec's service-user placeholder, at pod level and in an init container: the install makes
/// it the service uid in the installed resources (the API server would refuse -1).
const AS_SERVICE_USER: &str = r#"# A vendor's comment, kept.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: as-service-user
spec:
  selector:
    matchLabels: {app: as-service-user}
  template:
    metadata:
      labels: {app: as-service-user}
    spec:
      securityContext:
        runAsUser: -1   # every container
      initContainers:
      - name: init
        image: example.com/web:1.0
        command: [/bin/busybox, grep, "^Uid:", /proc/self/status]
        securityContext: {runAsUser: -1}
      containers:
      - name: main
        image: example.com/web:1.0
        command: [/bin/busybox, sh, -c, "/bin/busybox grep ^Uid: /proc/self/status; exec /bin/busybox sleep 3600"]
"#;

/// `gravity kubectl ARGS` with `stdin`, asserting success; its stdout.
fn kubectl(inst: &Installation, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = inst.command();
    cmd.arg("--state-dir")
        .arg(&inst.state)
        .arg("kubectl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("gravity kubectl");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gravity kubectl {args:?}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A shell line for busybox that GETs `/` from `host` port 80 (busybox's own wget crashes in
/// Debian's static build: nc it is).
fn http_get(host: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {host} 80")
}

/// The body of a successful HTTP 200 answer in `out`'s stdout.
fn body(out: &std::process::Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.split_once("\r\n\r\n") {
        Some((head, body)) if out.status.success() && head.starts_with("HTTP/1.1 200") => {
            Ok(body.to_string())
        }
        _ => Err(format!("{stdout}{}", text(out))),
    }
}

#[test]
fn vendored_images_run_and_services_answer_by_cluster_ip_and_dns() {
    let _planet = SharedServiceUser::hold();
    let scratch = tempfile::tempdir().unwrap();

    // One busybox image under two names, as vendors write them; web serves a page.
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup-host)");
    let layout = scratch.path().join("images");
    write_layout(
        &layout,
        &[
            Image {
                name: "example.com/web:1.0".into(),
                layers: vec![
                    layer(&[("bin/busybox", &busybox)]),
                    layer(&[("www/index.html", b"hello from web\n")]),
                ],
            },
            Image {
                name: "docker.io/library/nginx:1.25".into(),
                layers: vec![layer(&[("bin/busybox", &busybox)])],
            },
        ],
    );

    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: workloads\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("workloads.yaml"), WORKLOADS).unwrap();
    std::fs::write(dir.join("service-user.yaml"), AS_SERVICE_USER).unwrap();
    let tarball = scratch.path().join("workloads.tar");
    let out = bins::tele_build(&dir.join("app.yaml"), &tarball)
        .arg("--image-source")
        .arg(&layout)
        .arg("--planet")
        .arg(planet::image_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "tele build failed: {}", text(&out));

    let inst = Installation::new();
    // Pods reach each other's Services through this "host": forwarding on, in its namespace only.
    inst.ns.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let out = inst.install_image(&tarball);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("CoreDNS is ready"),
        "the install did not start CoreDNS:\n{log}"
    );
    let status = inst.status();
    let coredns = status["planet"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "coredns")
        .unwrap_or_else(|| panic!("no coredns endpoint in status: {status:#}"));
    assert_eq!(coredns["healthy"], true, "{coredns:#}");

    kubectl(&inst, &["apply", "-f", "-"], Some(WORKLOADS));
    kubectl(
        &inst,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=300s",
        ],
        None,
    );
    kubectl(
        &inst,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=300s",
        ],
        None,
    );
    // Pulled from the cluster's registry under the names the YAML gives.
    let images = kubectl(
        &inst,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.status.containerStatuses[0].image}{\"\\n\"}{end}",
        ],
        None,
    );
    assert!(images.contains("example.com/web:1.0"), "{images}");
    assert!(images.contains("nginx:1.25"), "{images}");

    // The ClusterIP, from the host (kube-proxy's rules in its network namespace).
    let ip = kubectl(
        &inst,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
        None,
    );
    assert!(ip.starts_with("10.100."), "ClusterIP {ip}");
    let page = eventually("the ClusterIP answers", Duration::from_secs(60), || {
        let out = inst
            .ns
            .command("busybox")
            .args(["sh", "-c", &http_get(&ip)])
            .output()
            .unwrap();
        body(&out)
    });
    assert_eq!(page, "hello from web\n");

    // By name, from another pod: CoreDNS resolves the Service.
    let page = eventually(
        "the Service answers by name",
        Duration::from_secs(60),
        || {
            let out = inst
                .command()
                .arg("--state-dir")
                .arg(&inst.state)
                .args([
                    "kubectl",
                    "exec",
                    "client",
                    "--",
                    "/bin/busybox",
                    "sh",
                    "-c",
                ])
                .arg(http_get("web.default.svc.cluster.local"))
                .output()
                .unwrap();
            body(&out)
        },
    );
    assert_eq!(page, "hello from web\n");

    // runAsUser -1: the installed resource names the service uid, and both containers run as it.
    assert!(
        log.contains("runAsUser -1 -> 1001 (the service user) in service-user.yaml, line 14, 19"),
        "{log}"
    );
    let installed = inst.state.join("resources/service-user.yaml");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        AS_SERVICE_USER.replace("runAsUser: -1", "runAsUser: 1001")
    );
    kubectl(&inst, &["apply", "-f", installed.to_str().unwrap()], None);
    kubectl(
        &inst,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/as-service-user",
            "--timeout=300s",
        ],
        None,
    );
    let uid = format!("Uid:\t{SERVICE_UID}\t{SERVICE_UID}\t{SERVICE_UID}\t{SERVICE_UID}");
    for container in ["init", "main"] {
        let logs = kubectl(
            &inst,
            &["logs", "deployment/as-service-user", "-c", container],
            None,
        );
        assert_eq!(logs.trim(), uid, "{container}");
    }

    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall failed:\n{}", text(&out));
}
