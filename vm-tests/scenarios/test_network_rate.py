"""Scenario 4: the preflight peer check measures the network between two real guests.

Guest-to-guest TCP under TCG moves 5-12 MiB/s (vm-harness.md), so the requirement that must pass
is 1MB/s and the one that must fail is 1GB/s. Needs GRAVITY_VM_BIN; skipped without it.
"""

from __future__ import annotations

import json
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


def test_peer_transfer_rate_between_two_guests(gravity_bin, vm):
    node1, node2 = vm.boot(2)
    img = vm.payload({"gravity": gravity_bin,
                      "slow/app.yaml": MANIFEST.format(rate="1MB/s"),
                      "fast/app.yaml": MANIFEST.format(rate="1GB/s")})
    for node in (node1, node2):
        mnt = node.attach_payload(img)
        node.run(f"for d in slow fast; do mkdir -p /root/$d && cp {mnt}/$d/app.yaml /root/$d/ && "
                 f"install -m 0755 {mnt}/gravity /root/$d/; done")

    node1.start_service("gravity-check-serve", f"./gravity check --serve {node1.addr}:{PORT}",
                        cwd="/root/slow")
    product.wait_until("the peer check server listens",
                       lambda: node1.exec(f"ss -Hltn 'sport = :{PORT}' | grep -q .").ok,
                       timeout=60, interval=1)

    # A few MB/s is enough for 1MB/s: the check passes and reports a measured rate.
    r = product.gravity(node2, f"check --peers {node1.addr}:{PORT} --output json",
                        cwd="/root/slow", timeout=300)
    doc = json.loads(r.stdout) if r.stdout.strip().startswith(("{", "[")) else None
    assert doc is not None, f"no JSON report:\n{r}"
    assert r.rc == 0, f"1MB/s between two guests failed:\n{r}"
    text = " ".join(product.find_strings(doc)) + " " + json.dumps(doc)
    assert re.search(r"\d+(\.\d+)?\s*[KMG]i?B/s", text), f"no measured rate in:\n{text}"

    # Nothing under TCG reaches 1GB/s: the same check fails and says what it measured.
    r = product.gravity(node2, f"check --peers {node1.addr}:{PORT}", cwd="/root/fast",
                        timeout=300)
    report = r.stdout + r.stderr
    assert r.rc != 0, f"1GB/s between two TCG guests passed:\n{r}"
    assert node1.addr in report, f"the report does not name the peer:\n{report}"
    assert re.search(r"\d+(\.\d+)?\s*[KMG]i?B/s", report), f"no measured rate:\n{report}"
