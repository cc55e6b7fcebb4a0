"""Scenario: a second real host joins the first's cluster with the command `gravity status`
prints there, holding nothing but the `gravity` binary; it becomes a Ready worker node, and
comes back Ready after its own reboot.

Needs GRAVITY_VM_IMAGE (a cluster image tarball) and GRAVITY_VM_BIN; skipped without them.
Two guests, not three: under TCG an install takes minutes and each guest a core (the host's
integration test `tests/tests/join.rs` joins two hosts, one of them concurrently).
"""

from __future__ import annotations

import json

import pytest

import product

pytestmark = pytest.mark.product

JOIN_TIMEOUT = 1500


def nodes_ready(first) -> dict[str, str]:
    """Each node's Ready condition, as the cluster says."""
    r = product.gravity(first, "kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}="
                               "{.status.conditions[?(@.type==\"Ready\")].status} {end}'")
    if not r.ok:
        return {}
    return dict(n.split("=", 1) for n in r.stdout.split() if "=" in n)


def joined_healthy(node) -> dict | None:
    r = node.exec("cd /root && ./gravity status --output json")
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        return None
    return doc if r.rc == 0 and doc.get("healthy") is True else None


def test_a_host_joins_with_the_printed_command_and_survives_its_reboot(
        cluster_image, gravity_bin, vm_module):
    first, second = vm_module.boot(2)
    product.copy_cluster_image(vm_module, first, cluster_image)
    assert product.install(first).ok

    r, doc = product.status(first)
    command = doc["join"]["command"]
    assert command.startswith(f"gravity join {first.addr} "), command

    # Only gravity itself on the new host.
    binary = vm_module.payload({"gravity": gravity_bin}, label="bin")
    mnt = second.attach_payload(binary, label="bin")
    second.run(f"install -m 0755 {mnt}/gravity /root/gravity")
    product.collect_product_logs(second)
    r = second.exec(f"cd /root && ./{command} --node-name=node-2", timeout=JOIN_TIMEOUT)
    assert r.ok, r
    assert "joined the cluster" in r.stderr + r.stdout, r

    def both_ready():
        n = nodes_ready(first)
        return n if len(n) == 2 and n.get("node-2") == "True" and set(n.values()) == {"True"} else None

    product.wait_until("both nodes Ready", both_ready, timeout=600, interval=10)
    doc = product.wait_until("the joined node healthy", lambda: joined_healthy(second),
                             timeout=600, interval=10)
    assert doc["cluster"]["joined"]["controlPlane"] == first.addr, json.dumps(doc, indent=2)
    unit = product.planet_unit(second)
    assert second.exec(f"systemctl is-active {unit}").stdout.strip() == "active"

    # The joined host reboots: planet comes back by itself and the node is Ready again.
    boot_before = second.boot_id()
    second.reboot()
    assert second.boot_id() != boot_before
    product.wait_until("the joined node healthy after its reboot", lambda: joined_healthy(second),
                       timeout=900, interval=10)
    product.wait_until("node-2 Ready after its reboot",
                       lambda: nodes_ready(first).get("node-2") == "True", timeout=600, interval=10)
