"""The power fails in the middle of `gravity install` on a real machine (the QEMU process is
killed: whatever the guest had not written to its disk is gone). After the machine boots again,
`gravity install --resume` finishes the install and planet is healthy.

Needs GRAVITY_VM_IMAGE; skipped without it.
"""

from __future__ import annotations

import json

import pytest

import product

pytestmark = pytest.mark.product

# Cut the power while the planet image (~200 MB) is being copied and verified: the file on disk
# is then whatever part of it the guest had written out.
CUT_IN = "planet-image"


def phase_state(node, phase: str) -> str | None:
    r = node.exec(f"cat {product.STATE_DIR}/operation/current.json")
    if not r.ok:
        return None
    try:
        plan = json.loads(r.stdout)
    except json.JSONDecodeError:
        return None
    return next((p["state"] for p in plan.get("phases", []) if p.get("name") == phase), None)


def test_install_resumes_after_a_power_cut(cluster_image, vm_module):
    (node,) = vm_module.boot(1)
    product.copy_cluster_image(vm_module, node, cluster_image)
    product.start_install(node)
    product.wait_until(f"phase `{CUT_IN}` running",
                       lambda: phase_state(node, CUT_IN) in ("in_progress", "completed"),
                       timeout=product.INSTALL_TIMEOUT, interval=0.5)

    node.power_cycle()

    # The journal survived the power cut and says where the install stopped.
    state = phase_state(node, CUT_IN)
    assert state in ("in_progress", "completed", "failed", "unstarted"), state
    r = product.gravity(node, "install --resume", timeout=product.INSTALL_TIMEOUT)
    assert r.ok, r
    r, doc = product.status(node)
    assert r.rc == 0 and doc["healthy"] is True, json.dumps(doc, indent=2)
    r = product.gravity(node, "plan --output json")
    plan = product.parse_json(r)
    assert plan["state"] == "completed", json.dumps(plan, indent=2)
    # The kernel phase ran before the cut: its persisted settings came back with the boot.
    assert product.kernel_settings(node) == ["1", "1"]
    r = product.etcdctl(node, "endpoint health")
    assert r.ok and "is healthy" in r.stdout + r.stderr, r
