"""pytest wiring for the VM scenarios: the `vm` fixture, product inputs, the time summary."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from harness import cleanup, image
from harness.cluster import Harness, Scenario

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser):
    g = parser.getgroup("vm-tests")
    g.addoption("--vm-work", default=os.environ.get("GRAVITY_VM_WORK", str(HERE / ".work")),
                help="work directory: cache/, runs/, logs/ (default vm-tests/.work)")
    g.addoption("--vm-logs", default=None,
                help="where guests' logs go (default WORK/logs/RUN_ID)")
    g.addoption("--vm-boot", choices=["clone", "cold"], default=os.environ.get("GRAVITY_VM_BOOT",
                                                                                "clone"),
                help="how tests that do not ask for one boot their guests")
    g.addoption("--vm-keep-disks", action="store_true",
                help="keep guests' disk overlays under WORK/runs/RUN_ID for inspection")


def pytest_configure(config):
    config.addinivalue_line("markers", "product: needs the gravity binary or a cluster image")
    config._vm_durations = {}


def pytest_collection_modifyitems(session, config, items):
    # The smoke scenarios first: if the harness itself is broken, say so before anything else.
    items.sort(key=lambda i: 0 if i.module.__name__.endswith("smoke") else 1)


@pytest.fixture(scope="session")
def harness(request):
    opt = request.config.getoption
    cleanup.install()
    work = Path(opt("--vm-work")).resolve()
    run_id = os.environ.get("GRAVITY_VM_RUN_ID") or time.strftime("%Y%m%d-%H%M%S")
    os.environ["GRAVITY_VM_RUN_ID"] = run_id  # names of namespaces and socket dirs
    logroot = Path(opt("--vm-logs") or work / "logs" / run_id).resolve()
    logroot.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    base = image.ensure(Path(os.environ.get("GRAVITY_VM_CACHE", work / "cache")).resolve())
    h = Harness(base=base, run_id=run_id, rundir=work / "runs" / run_id, logroot=logroot,
                default_boot=opt("--vm-boot"), keep_disks=opt("--vm-keep-disks"))
    h.metrics.append({"test": "(session)", "guest": "base image", "mode": "ensure",
                      "seconds": round(time.monotonic() - t0, 1)})
    request.config._vm_harness = h
    yield h
    h.close()


@pytest.fixture
def vm(harness, request):
    """The scenario's machines: `vm.boot(n)`, `vm.payload({...})`; all stopped at teardown."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    s = Scenario(harness, name)
    yield s
    s.teardown()


@pytest.fixture(scope="module")
def vm_module(harness, request):
    """Like `vm`, shared by the tests of one module (for scenarios that build on each other)."""
    s = Scenario(harness, request.module.__name__)
    yield s
    s.teardown()


@pytest.fixture(scope="session")
def cluster_image() -> Path:
    """The cluster image tarball (`tele build` output) the product scenarios install."""
    p = os.environ.get("GRAVITY_VM_IMAGE")
    if not p:
        pytest.skip("GRAVITY_VM_IMAGE is not set: give the path of a cluster image tarball "
                    "(tele build output) to run the product scenarios")
    path = Path(p).resolve()
    if not path.is_file():
        pytest.fail(f"GRAVITY_VM_IMAGE={p}: no such file")
    return path


@pytest.fixture(scope="session")
def upgrade_image() -> Path | None:
    """The next version of the cluster image (the cluster scenario upgrades to it before its
    reboot); None where GRAVITY_VM_UPGRADE_IMAGE is not set."""
    p = os.environ.get("GRAVITY_VM_UPGRADE_IMAGE")
    if not p:
        return None
    path = Path(p).resolve()
    if not path.is_file():
        pytest.fail(f"GRAVITY_VM_UPGRADE_IMAGE={p}: no such file")
    return path


@pytest.fixture(scope="session")
def gravity_bin() -> Path:
    """A static-enough `gravity` binary for scenarios that need no cluster image."""
    p = os.environ.get("GRAVITY_VM_BIN")
    if not p:
        pytest.skip("GRAVITY_VM_BIN is not set: give the path of a gravity binary built for "
                    "x86_64 Debian 12 to run the preflight scenarios")
    path = Path(p).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"GRAVITY_VM_BIN={p}: not an executable file")
    return path


# ------------------------------------------------------------------------- time summary

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.monotonic()
    yield
    if "harness" in getattr(item, "fixturenames", ()):  # scenarios, not the unit tests
        item.config._vm_durations[item.nodeid] = time.monotonic() - t0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    outcomes = {}
    for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for rep in tr.stats.get(key, []):
            if getattr(rep, "nodeid", None):
                # Worst outcome wins (a test can pass its call and fail its teardown).
                if outcomes.get(rep.nodeid) not in ("failed", "error"):
                    outcomes[rep.nodeid] = key
    rows = [(nid, outcomes.get(nid, "?"), secs) for nid, secs in config._vm_durations.items()]
    if not rows:
        return
    tr.section("vm-tests: time per scenario")
    for nid, outcome, secs in rows:
        tr.write_line(f"{secs:8.1f} s  {outcome:8}  {nid}")
    tr.write_line(f"{sum(r[2] for r in rows):8.1f} s  total")
    h = getattr(config, "_vm_harness", None)
    if h and h.metrics:
        tr.section("vm-tests: guest start times")
        for m in h.metrics:
            tr.write_line(f"{m['seconds']:8.1f} s  {m['mode']:6}  {m['guest']:12}  {m['test']}")
    if h:
        summary = {"scenarios": [{"id": n, "outcome": o, "seconds": round(s, 1)}
                                 for n, o, s in rows],
                   "guests": h.metrics, "base_image": h.base.info}
        (h.logroot / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        tr.write_line(f"logs: {h.logroot}")
