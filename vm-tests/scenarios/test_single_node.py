"""Scenarios 1 and 2: install on a single real host, then reboot it.

Needs GRAVITY_VM_IMAGE (a cluster image tarball); skipped without it. The two tests share one
installed guest (an install under TCG takes minutes): the reboot test runs after the install
test and fails at setup if the install did.
"""

from __future__ import annotations

import json
import uuid

import pytest

import product
from product import SERVICE_UID

pytestmark = pytest.mark.product

# systemd's own top-level cgroups; anything else new at the root after install is a leak.
SYSTEMD_TOP_LEVEL = {"init.scope", "system.slice", "user.slice", "machine.slice"}


@pytest.fixture(scope="module")
def installed(cluster_image, vm_module):
    (node,) = vm_module.boot(1)
    cgroups_before = product.top_level_cgroups(node)
    product.copy_cluster_image(vm_module, node, cluster_image)
    product.install(node)
    return node, cgroups_before


def endpoint(doc: dict, name: str) -> dict:
    """One of planet's health endpoints in `gravity status --output json`."""
    for e in doc["planet"]["endpoints"]:
        if e["name"] == name:
            return e
    raise AssertionError(f"no {name} endpoint in status: {json.dumps(doc, indent=2)}")


def test_single_node_install(installed):
    node, cgroups_before = installed

    # Planet runs as a unit of the host's systemd (PID 1 of the guest), and it is up.
    unit = product.planet_unit(node)
    assert node.exec(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert node.run("ps -p 1 -o comm=").stdout.strip() == "systemd"

    # The service user was created with the uid asked for.
    assert node.run("getent passwd planet").stdout.split(":")[2] == str(SERVICE_UID)

    r, doc = product.status(node)
    assert r.rc == 0 and doc["healthy"] is True, json.dumps(doc, indent=2)
    assert doc["cluster"]["serviceUid"] == SERVICE_UID
    # A fresh Debian has forwarding off and no br_netfilter: the install set both.
    assert product.kernel_settings(node) == ["1", "1"]
    # It advertises the address of the guest's NIC, not a loopback or a planet bridge.
    assert doc["cluster"]["advertiseIp"] == node.addr, doc["cluster"]

    # etcd answers inside planet.
    r = product.etcdctl(node, "endpoint health")
    assert r.ok and "is healthy" in r.stdout + r.stderr, r

    # Kubernetes: the apiserver ready, the node Ready, and the cluster's first pod (CoreDNS,
    # pulled from the cluster's registry) running.
    for name in ("kube-apiserver", "node", "coredns"):
        assert endpoint(doc, name)["healthy"] is True, json.dumps(doc, indent=2)

    # cgroup v2 placement: every process of planet sits under the planet unit's cgroup, and
    # planet created nothing at the root of the host's hierarchy.
    unit_cg = node.run(f"systemctl show -p ControlGroup --value {unit}").stdout.strip()
    assert unit_cg, f"{unit} has no control group"
    procs = product.cgroups_of_namespace(node, product.planet_init_pid(node))
    assert procs, "no processes found in planet's pid namespace"
    outside = {p: cg for p, cg in procs.items() if not (cg + "/").startswith(unit_cg + "/")}
    assert not outside, f"planet processes outside {unit_cg}: {outside}"
    leaked = product.top_level_cgroups(node) - cgroups_before - SYSTEMD_TOP_LEVEL
    assert not leaked, f"new cgroups at the host's root: {sorted(leaked)}"


def test_reboot_planet_comes_back_with_its_data(installed):
    node, _ = installed
    key, value = "/vm-tests/reboot", uuid.uuid4().hex
    r = product.etcdctl(node, f"put {key} {value}")
    assert r.ok, r
    unit = product.planet_unit(node)
    boot_before = node.boot_id()

    node.reboot()

    assert node.boot_id() != boot_before
    # Nobody starts planet after the reboot: the unit is enabled and comes back by itself.
    product.wait_until(f"{unit} active after reboot",
                       lambda: node.exec(f"systemctl is-active {unit}").stdout.strip() == "active",
                       timeout=900)
    product.wait_until("etcd healthy after reboot",
                       lambda: product.etcdctl(node, "endpoint health").ok, timeout=600)
    # Kubernetes comes back after etcd (minutes on this emulated CPU): apiserver, then the node.
    product.wait_until("planet healthy after reboot, the node Ready",
                       lambda: product.status(node)[1].get("healthy") is True, timeout=900,
                       interval=10)
    r = product.etcdctl(node, f"get --print-value-only {key}")
    assert r.stdout.strip() == value, r
    # The kernel settings were persisted: the boot applied them again.
    assert product.kernel_settings(node) == ["1", "1"]
    r, doc = product.status(node)
    assert r.rc == 0 and doc["healthy"] is True, json.dumps(doc, indent=2)
    # The pod came back with the node.
    assert endpoint(doc, "coredns")["healthy"] is True, json.dumps(doc, indent=2)
