"""Scenario 4: the preflight peer check measures the network between two real guests.

Guest-to-guest TCP under TCG moves 5-12 MiB/s (vm-harness.md), so the requirement that must pass
is 1MB/s and the one that must fail is 1GB/s. Needs GRAVITY_VM_BIN; skipped without it.
"""

from __future__ import annotations

import re

import pytest

import product

pytestmark = pytest.mark.product

PORT = 4242
MANIFEST = """\
apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: vmtests-network
  resourceVersion: 1.0.0
nodeProfiles:
  - name: node
    requirements:
      network:
        minTransferRate: "{rate}"
"""
RATE = re.compile(r"^(\d+(\.\d+)?) MB/s")


def test_peer_transfer_rate_between_two_guests(gravity_bin, vm):
    node1, node2 = vm.boot(2)
    img = vm.payload({"gravity": gravity_bin,
                      "slow/app.yaml": MANIFEST.format(rate="1MB/s"),
                      "fast/app.yaml": MANIFEST.format(rate="1GB/s")})
    for node in (node1, node2):
        mnt = node.attach_payload(img)
        node.run(f"for d in slow fast; do mkdir -p /root/$d && cp {mnt}/$d/app.yaml /root/$d/ && "
                 f"install -m 0755 {mnt}/gravity /root/$d/; done")

    peer = f"{node1.addr}:{PORT}"
    node1.start_service("gravity-check-serve", f"./gravity check --serve {peer}", cwd="/root/slow")
    product.wait_listening(node1, "gravity-check-serve", PORT)

    # A few MB/s is enough for 1MB/s: both directions pass, with a measured rate.
    r, doc = product.check_json(node2, f"--peers {peer}", cwd="/root/slow", timeout=600)
    checks = {c["id"]: c for c in doc["checks"]}
    for d in ("send", "receive"):
        c = checks.get(f"peer:{peer}:rate:{d}")
        assert c and c["status"] == "pass", (d, c, r)
        m = RATE.match(c.get("measured", ""))
        assert m and float(m.group(1)) >= 1.0, c

    # Nothing under TCG reaches 1GB/s: the same checks fail and the table says so.
    r = product.gravity(node2, f"check --peers {peer}", cwd="/root/fast", timeout=600)
    rows = product.table_rows(r.stdout)
    assert r.rc == product.CHECK_FAILED, r
    for d in ("send", "receive"):
        row = rows.get(f"peer:{peer}:rate:{d}")
        assert row and row["status"] == "FAIL" and RATE.match(row["found"]), (d, row, r.stdout)
        assert "1GB/s" in row["required"] and row["fix"], row
