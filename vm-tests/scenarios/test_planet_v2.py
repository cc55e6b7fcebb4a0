"""planet on a pure cgroup v2 host with systemd as PID 1 (the VM guest): configure from a
manifest, run as a Type=notify unit, check health, cgroup placement, device filter and read-only
limits from inside, stop, and find nothing left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

PLANET_DIR = os.environ.get("GRAVITY_VM_PLANET")

APP = """apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: planet-v2
  resourceVersion: 0.0.1
nodeProfiles:
  - name: node
    requirements:
      volumes:
        - name: app-data
          path: /srv/app-data
          targetPath: /var/lib/app-data
          uid: 1001
          gid: 1001
          mode: "0750"
      devices:
        - path: /dev/gravity-test-nvidia*
          permissions: r
          fileMode: "0640"
          gid: 1001
    systemOptions:
      etcd:
        args: ["--heartbeat-interval=150"]
      docker:
        args: ["--log-level=debug"]
"""

UNIT = """[Unit]
Description=planet (test)
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/local/bin/gravity planet run --state-dir /var/lib/gravity
Environment=RUST_LOG=info,agent=debug,libcontainer=error,libcgroups=error
Restart=always
TimeoutStartSec=15min
KillMode=mixed
TimeoutStopSec=5min
Delegate=yes
"""


def test_planet_on_cgroup_v2(gravity_bin, vm, tmp_path):
    if not PLANET_DIR:
        pytest.skip("GRAVITY_VM_PLANET (planet image dir) not set")
    (tmp_path / "app.yaml").write_text(APP)
    (tmp_path / "gravity-planet.service").write_text(UNIT)
    (node,) = vm.boot(1)
    img = vm.payload({"gravity": gravity_bin, "planet": Path(PLANET_DIR),
                      "app.yaml": tmp_path / "app.yaml",
                      "gravity-planet.service": tmp_path / "gravity-planet.service"})
    mnt = node.attach_payload(img)
    node.run("stat -f -c %T /sys/fs/cgroup | grep -qx cgroup2fs")
    node.run(f"install -m 0755 {mnt}/gravity /usr/local/bin/gravity")
    node.run(f"cp {mnt}/gravity-planet.service /etc/systemd/system/ && systemctl daemon-reload")
    node.run("losetup -f >/dev/null; truncate -s 1M /root/dev.img; printf listed-marker | dd of=/root/dev.img conv=notrunc 2>/dev/null;"
             " dev=$(losetup --find --show /root/dev.img); mknod -m 600 /dev/gravity-test-nvidia0 b 7 ${dev#/dev/loop};"
             " truncate -s 1M /root/other.img; losetup --find --show /root/other.img > /root/other.dev")
    r = node.run(f"gravity planet configure --manifest {mnt}/app.yaml --planet-dir {mnt}/planet "
                 f"--service-uid 1001 --node-name v2node", timeout=600)
    print(r)
    r = node.exec("systemctl start gravity-planet.service", timeout=900)
    print(r)
    print(node.exec("journalctl -u gravity-planet --no-pager | tail -60"))
    assert r.rc == 0, r
    r = node.exec("gravity planet status --output json --wait 600s", timeout=700)
    print(r)
    doc = json.loads(r.stdout)
    assert r.rc == 0 and doc["state"] == "running", json.dumps(doc, indent=2)
    status = json.loads(node.run("cat /var/lib/gravity/planet/status.json").stdout)
    print("status:", json.dumps(status, indent=2))
    assert status["cgroup"]["mode"] == "unified"
    unit_cg = node.run("systemctl show -p ControlGroup --value gravity-planet").stdout.strip()
    assert status["cgroup"]["path"] == unit_cg + "/planet", (status, unit_cg)

    ex = lambda c: node.exec(f"gravity planet exec -- /bin/sh -c '{c}' 2>&1", timeout=120)
    print(ex("cat /proc/1/cgroup; ls /sys/fs/cgroup | head -50; id planet; stat -c '%u %g %a' /var/lib/app-data"))
    r = ex("echo max > /sys/fs/cgroup/memory.max")
    print(r)
    assert r.rc != 0
    r = ex("echo max > /sys/fs/cgroup/pids.max")
    assert r.rc != 0, r
    r = ex("stat -c '%a %u %g' /dev/gravity-test-nvidia0; head -c 13 /dev/gravity-test-nvidia0")
    print(r)
    assert "640 0 1001" in r.stdout and "listed-marker" in r.stdout, r
    other = node.run("cat /root/other.dev").stdout.strip()
    minor = other.replace("/dev/loop", "")
    r = ex(f"mknod /dev/x b 7 {minor} && head -c 1 /dev/x")
    print(r)
    assert r.rc != 0 and "Operation not permitted" in r.stdout, r
    r = ex("systemd-run --wait --quiet /bin/true && echo nested-ok")
    print(r)
    assert "nested-ok" in r.stdout, r
    r = ex("ETCDCTL_API=3 etcdctl endpoint health")
    print(r)
    assert "is healthy" in r.stdout, r
    r = node.exec("gravity planet exec -- /bin/sh -c 'exit 7'")
    assert r.rc == 7, r
    r = node.exec("systemctl stop gravity-planet", timeout=600)
    print(r)
    print(node.exec("journalctl -u gravity-planet --no-pager | tail -15"))
    left = node.exec(f"find {unit_cg and '/sys/fs/cgroup' + unit_cg} -mindepth 1 -type d; grep /var/lib/gravity /proc/self/mountinfo; losetup -a")
    print(left)
    assert "planet" not in left.stdout, left
