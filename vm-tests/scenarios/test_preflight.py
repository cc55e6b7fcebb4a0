"""Scenario 3: preflight checks in a real guest, with the sample manifest (which is meant to fail
on a small machine: 8 CPUs, 32GB RAM, CentOS 7, 512GB volumes).

Needs only the `gravity` binary (GRAVITY_VM_BIN); skipped without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import product

pytestmark = pytest.mark.product

SAMPLE = Path(__file__).resolve().parents[2] / "image/tests/fixtures/sample-cluster"
WORKDIR = "/root/sample-cluster"


def test_sample_manifest_fails_preflight_with_a_readable_report(gravity_bin, vm):
    (node,) = vm.boot(1)
    mnt = node.attach_payload(vm.payload({"sample-cluster": SAMPLE, "gravity": gravity_bin}))
    node.run(f"cp -a {mnt}/sample-cluster {WORKDIR} && install -m 0755 {mnt}/gravity {WORKDIR}/")

    # The human report: the run fails and says what is wrong with this host.
    r = product.gravity(node, "check", cwd=WORKDIR)
    report = r.stdout + r.stderr
    assert r.rc != 0, f"preflight passed on a 2-CPU guest with the sample manifest:\n{r}"
    cpu = [ln for ln in report.splitlines() if re.search(r"\bcpus?\b", ln, re.I)]
    assert any("8" in ln and "2" in ln for ln in cpu), \
        f"no line says 8 CPUs are required and 2 were found:\n{report}"
    assert re.search(r"centos|rhel", report, re.I), f"the OS requirement is not reported:\n{report}"
    assert "/var/lib/logs" in report, f"the volume requirement is not reported:\n{report}"
    # checks.sh ran in the guest: its output (with the guest's hostname) is in the report.
    assert "hostname is node-1" in report, f"custom check output missing:\n{report}"

    # The same as JSON, for machines.
    r = product.gravity(node, "check --output json", cwd=WORKDIR)
    assert r.rc != 0, r
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"`gravity check --output json` did not print JSON ({e}):\n{r}")
    strings = product.find_strings(doc)
    assert any("hostname is node-1" in s for s in strings), json.dumps(doc, indent=2)
    assert any(re.fullmatch(r"fail(ed|ure)?", s, re.I) for s in strings), \
        f"no failed check in the JSON report:\n{json.dumps(doc, indent=2)}"


def test_run_preflight_checks_from_the_cluster_image(cluster_image, vm):
    """The image's own entry point for the same checks, as a customer runs it before install."""
    (node,) = vm.boot(1)
    d = product.copy_cluster_image(vm, node, cluster_image)
    r = node.exec(f"cd {d} && ./run_preflight_checks --output json", timeout=600)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"./run_preflight_checks --output json did not print JSON ({e}):\n{r}")
    assert product.find_strings(doc), r
    # A guest that fails a check must not report success, and the other way round.
    failed = any(re.fullmatch(r"fail(ed|ure)?", s, re.I) for s in product.find_strings(doc))
    assert (r.rc != 0) == failed, f"exit status {r.rc} disagrees with the report:\n{r}"
