"""How the scenarios drive the product inside a guest.

Every product command line the VM scenarios use is in this file, so that when the CLI settles
only this file changes. They follow the design brief: the user unpacks the cluster image and runs
`./gravity install --service-uid=1001`, `./gravity status --output json`, `./gravity check`
(preflight with the app.yaml of the current directory), `gravity check --serve/--peers`.
Planet runs etcd on the host network at 127.0.0.1:2379, TLS only (planet-image/planet-etcd.service).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

from harness.guest import Guest

INSTALL_DIR = "/root/cluster-image"
STATE_DIR = "/var/lib/gravity"
# `gravity check` exit codes (its --help): 0 passed, 3 a check failed, 4 only warnings,
# 1 a check could not run, 2 usage.
CHECK_FAILED = 3
SERVICE_UID = 1001
# Under TCG everything is ~10x slower than on hardware: generous, but finite.
INSTALL_TIMEOUT = 1200


def copy_cluster_image(vm, node: Guest, tarball: Path, dest: str = INSTALL_DIR,
                       label: str = "cluster") -> str:
    """Unpacks the cluster image on the host onto a payload disk, then copies it to a writable
    directory in the guest, `dest` (a user would `tar xf` it there; the result is the same
    tree). `label` names the payload: one per image."""
    stage = vm.rundir / label
    stage.mkdir(parents=True, exist_ok=True)
    # GNU tar picks the decompressor (zstd, xz, gzip) by itself.
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(stage)], check=True)
    top = _image_root(stage)
    img = vm.payload({"cluster-image": top}, label=label)
    mnt = node.attach_payload(img, label=label)
    # Synced: an unpacked image that a power cut can still take away is a test artefact (one
    # did: a zero-length resources/app.yaml, which the resume refused as a damaged image).
    node.run(f"cp -a {mnt}/cluster-image {dest} && sync", timeout=600)
    node.run(f"test -x {dest}/gravity")
    return dest


def _image_root(stage: Path) -> Path:
    """The directory holding `gravity` (the tarball may or may not have one top directory)."""
    if (stage / "gravity").exists():
        return stage
    subdirs = [p for p in stage.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / "gravity").exists():
        return subdirs[0]
    raise AssertionError(f"no `gravity` at the top of the cluster image: {sorted(stage.iterdir())}")


def gravity(node: Guest, args: str, cwd: str = INSTALL_DIR, timeout: float = 300, check=False):
    return node.exec(f"cd {shlex.quote(cwd)} && ./gravity {args}", timeout=timeout, check=check)


def collect_product_logs(node: Guest) -> None:
    """What explains a failed install besides the host's journal: planet's own journal and
    what Kubernetes says about its pods (kept beside journal.txt when the guest stops)."""
    g = f"{STATE_DIR}/bin/gravity --state-dir {STATE_DIR}"
    node.extra_logs[:] = [
        ("planet-journal.txt", f"{g} planet exec -- journalctl -b --no-pager -o short-monotonic"),
        ("kube.txt", f"{g} kubectl get nodes,pods -A -o wide; {g} kubectl describe pods -A; "
                     f"{g} kubectl get events -A --sort-by=.lastTimestamp"),
    ]


def install(node: Guest, cwd: str = INSTALL_DIR):
    collect_product_logs(node)
    return gravity(node, f"install --service-uid={SERVICE_UID}", cwd, INSTALL_TIMEOUT, check=True)


def start_install(node: Guest, cwd: str = INSTALL_DIR) -> None:
    """Starts the install in the background (a transient unit); its output goes to
    /root/install.log."""
    collect_product_logs(node)
    node.start_service("gravity-install",
                       f"./gravity install --service-uid={SERVICE_UID} > /root/install.log 2>&1",
                       cwd=cwd)


def kernel_settings(node: Guest) -> list[str]:
    """The sysctls the install sets (and persists so that a boot applies them again)."""
    return node.run("sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables").stdout.split()


def status(node: Guest, cwd: str = INSTALL_DIR):
    """`gravity status --output json`: the result and the document ({cluster: {name, version,
    node_name, advertise_ip, service_uid, ...}, planet: {state, units, endpoints, ...},
    operation, healthy}); exit status 0 when healthy."""
    r = gravity(node, "status --output json", cwd)
    return r, parse_json(r)


def planet_unit(node: Guest) -> str:
    """The host's systemd unit that runs planet (its exact name belongs to systemd/)."""
    out = node.run("systemctl list-units --all --plain --no-legend --type=service '*planet*'"
                   " | awk '{print $1}'").stdout.split()
    assert len(out) == 1, f"expected one planet unit on the host, got {out}"
    return out[0]


def wait_until(what: str, fn, timeout: float, interval: float = 3.0):
    """Polls fn() until it returns something truthy; fails with the last value it returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f} s (last: {v!r})")
        time.sleep(interval)


# Planet's PID 1 seen from the host: a systemd whose NSpid ends in 1 (pid namespace of its own).
_PLANET_INIT = (
    "for s in /proc/[0-9]*/status; do "
    "awk '/^Name:/{n=$2} /^NSpid:/{if (NF>2 && $NF==1 && n==\"systemd\") print FILENAME}' $s; "
    "done 2>/dev/null | cut -d/ -f3"
)


def planet_init_pid(node: Guest) -> int:
    pids = node.run(_PLANET_INIT).stdout.split()
    assert len(pids) == 1, f"expected one planet init (systemd in its own pid namespace): {pids}"
    return int(pids[0])


def in_planet(node: Guest, cmd: str, timeout: float = 60):
    """Runs a shell command inside planet's namespaces (like `runc exec`, from the host)."""
    pid = planet_init_pid(node)
    return node.exec(f"nsenter --target {pid} --mount --uts --ipc --pid -- /bin/sh -c "
                     f"{shlex.quote(cmd)}", timeout=timeout)


# etcd serves TLS only, with the cluster's certificates (what `gravity planet exec` sets).
ETCDCTL_ENV = ("ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT=/etc/kubernetes/pki/ca.crt "
               "ETCDCTL_CERT=/etc/kubernetes/pki/etcdctl.crt ETCDCTL_KEY=/etc/kubernetes/pki/etcdctl.key")


def etcdctl(node: Guest, args: str):
    return in_planet(node, f"{ETCDCTL_ENV} etcdctl {args}")


def top_level_cgroups(node: Guest) -> set[str]:
    return set(node.run("find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'")
               .stdout.split())


def cgroups_of_namespace(node: Guest, init_pid: int) -> dict[int, str]:
    """pid -> cgroup v2 path of every process in the pid namespace of init_pid."""
    out = node.run(
        f"ns=$(readlink /proc/{init_pid}/ns/pid); for p in /proc/[0-9]*; do "
        "[ \"$(readlink $p/ns/pid 2>/dev/null)\" = \"$ns\" ] || continue; "
        "echo \"${p#/proc/} $(sed -n 's/^0:://p' $p/cgroup 2>/dev/null)\"; done").stdout
    return {int(p): cg for p, _, cg in (ln.partition(" ") for ln in out.splitlines()) if cg}


def parse_json(r) -> dict:
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"expected JSON on stdout ({e}):\n{r}") from None


def check_json(node: Guest, args: str, cwd: str, timeout: float = 300):
    """`gravity check ARGS --output json`: the result and the parsed report
    ({subject, result, exitCode, summary, checks: [{id, title, status, measured, required,
    fix, detail}], errors, notes})."""
    r = gravity(node, f"check {args} --output json", cwd, timeout)
    return r, parse_json(r)


def table_rows(text: str) -> dict[str, dict]:
    """The rows of `gravity check`'s table (STATUS CHECK FOUND REQUIRED FIX), by check id.

    Cells are separated by two or more spaces (a long cell pushes the next ones right)."""
    lines = text.splitlines()
    head = next((i for i, ln in enumerate(lines) if ln.startswith("STATUS ")), None)
    assert head is not None, f"no STATUS header in:\n{text}"
    rows = {}
    for ln in lines[head + 1:]:
        if not ln.strip():
            break
        cells = re.split(r"\s{2,}", ln.strip(), maxsplit=4) + [""] * 5
        row = dict(zip(["status", "id", "found", "required", "fix"], cells[:5], strict=True))
        rows[row["id"]] = row
    return rows


def wait_listening(node: Guest, unit: str, port: int, timeout: float = 60) -> None:
    """Waits until `unit` listens on TCP `port`; fails early, with its log, if the unit dies."""
    deadline = time.monotonic() + timeout
    while not node.exec(f"ss -Hltn 'sport = :{port}' | grep -q .").ok:
        state = node.exec(f"systemctl is-active {unit}").stdout.strip()
        if state not in ("active", "activating") or time.monotonic() > deadline:
            log = node.exec(f"journalctl -u {unit} --no-pager -n 50").stdout
            raise AssertionError(f"{unit} is {state} and does not listen on {port}:\n{log}")
        time.sleep(1)
