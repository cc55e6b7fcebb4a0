"""Scenario 3: preflight checks in a real guest, with the sample manifest (which is meant to fail
on a small machine: 8 CPUs, 32GB RAM, CentOS/RHEL 7, 512GB volumes).

`gravity check` is run like a vendor trying a manifest: the binary next to app.yaml. Needs only
the `gravity` binary (GRAVITY_VM_BIN); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import product

pytestmark = pytest.mark.product

SAMPLE = Path(__file__).resolve().parents[2] / "cluster-image/tests/fixtures/sample-cluster"
WORKDIR = "/root/sample-cluster"


def test_sample_manifest_fails_preflight_with_a_readable_report(gravity_bin, vm):
    (node,) = vm.boot(1)
    mnt = node.attach_payload(vm.payload({"sample-cluster": SAMPLE, "gravity": gravity_bin}))
    node.run(f"cp -a {mnt}/sample-cluster {WORKDIR} && install -m 0755 {mnt}/gravity {WORKDIR}/")

    # The table a person reads: the run fails, and each failed row says what was found, what
    # is required and what to do.
    r = product.gravity(node, "check", cwd=WORKDIR)
    assert r.rc == product.CHECK_FAILED, r
    rows = product.table_rows(r.stdout)
    cpu = rows.get("cpu")
    assert cpu and cpu["status"] == "FAIL", r.stdout
    assert cpu["found"].startswith("2 CPU") and "8" in cpu["required"] and cpu["fix"], cpu
    assert rows["ram"]["status"] == "FAIL" and rows["ram"]["fix"], r.stdout
    assert rows["os"]["status"] == "FAIL" and "debian" in rows["os"]["found"].lower(), r.stdout
    # checks.sh ran in the guest: its output, with the guest's hostname, is in the report.
    assert "hostname is node-1" in r.stdout, r.stdout

    # The same report as JSON, for machines.
    r, doc = product.check_json(node, "", cwd=WORKDIR)
    assert r.rc == product.CHECK_FAILED and doc["result"] == "failed", r
    checks = {c["id"]: c for c in doc["checks"]}
    for cid in ("cpu", "ram", "os", "volume:/var/lib/logs:capacity"):
        assert checks.get(cid, {}).get("status") == "fail", (cid, checks.get(cid))
    assert all(c.get("fix") for c in doc["checks"] if c["status"] == "fail"), \
        "a failed check without a fix"
    custom = [c for c in doc["checks"] if c["id"].startswith("custom:")]
    assert any(c["status"] == "pass" and "hostname is node-1" in c.get("detail", "")
               for c in custom), custom


def test_run_preflight_checks_from_the_cluster_image(cluster_image, vm):
    """The image's own entry point for the same checks, as a customer runs it before install."""
    (node,) = vm.boot(1)
    d = product.copy_cluster_image(vm, node, cluster_image)
    r = node.exec(f"cd {d} && ./run_preflight_checks --output json", timeout=600)
    doc = product.parse_json(r)
    # The exit status says what the report says.
    assert r.rc == doc["exitCode"], r
    assert doc["checks"], r
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    assert (r.rc == product.CHECK_FAILED) == bool(failed), r
