"""How the scenarios drive the product inside a guest.

Every product command line the VM scenarios use is in this file, so that when the CLI settles
only this file changes. They follow the design brief: the user unpacks the cluster image and runs
`./gravity install --service-uid=1001`, `./gravity status --output json`, `./gravity check`
(preflight with the app.yaml of the current directory), `gravity check --serve/--peers`.
Planet runs etcd on the host network at 127.0.0.1:2379 (planet-image/planet-etcd.service).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tarfile
import time
from pathlib import Path

from harness.guest import Guest

INSTALL_DIR = "/root/cluster-image"
SERVICE_UID = 1001
# Under TCG everything is ~10x slower than on hardware: generous, but finite.
INSTALL_TIMEOUT = 1500


def copy_cluster_image(vm, node: Guest, tarball: Path) -> str:
    """Unpacks the cluster image on the host onto a payload disk, then copies it to a writable
    directory in the guest (a user would `tar xf` it there; the result is the same tree)."""
    stage = vm.rundir / "cluster-image"
    stage.mkdir(parents=True, exist_ok=True)
    # GNU tar picks the decompressor (zstd, xz, gzip) by itself.
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(stage)], check=True)
    top = _image_root(stage)
    img = vm.payload({"cluster-image": top}, label="cluster")
    mnt = node.attach_payload(img, label="cluster")
    node.run(f"cp -a {mnt}/cluster-image {INSTALL_DIR}", timeout=600)
    node.run(f"test -x {INSTALL_DIR}/gravity")
    return INSTALL_DIR


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


def install(node: Guest, cwd: str = INSTALL_DIR):
    return gravity(node, f"install --service-uid={SERVICE_UID}", cwd, INSTALL_TIMEOUT, check=True)


def status(node: Guest, cwd: str = INSTALL_DIR) -> dict:
    r = gravity(node, "status --output json", cwd, check=True)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"`gravity status --output json` did not print JSON ({e}):\n{r}")


def healthy(doc: dict) -> bool:
    """Whether a `gravity status --output json` document says the node is healthy.

    The status schema is not pinned yet; these are the shapes it can reasonably take. Pin it here
    when the agent's status command lands (and make this stricter).
    """
    for key in ("status", "state", "health"):
        v = doc.get(key)
        if isinstance(v, str):
            return v.lower() in ("healthy", "active", "running", "ok")
        if isinstance(v, dict):
            return healthy(v)
    if isinstance(doc.get("healthy"), bool):
        return doc["healthy"]
    raise AssertionError(f"cannot find a health field in gravity status: {json.dumps(doc)}")


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


def etcdctl(node: Guest, args: str):
    return in_planet(node, f"ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 {args}")


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


def write_manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_tarball(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as t:
        t.add(src, arcname=".")
    return dest


def find_strings(doc) -> list[str]:
    """Every string in a JSON document (to look for text without pinning the schema)."""
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in find_strings(k) + find_strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in find_strings(v)]
    return []
