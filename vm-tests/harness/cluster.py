"""Runs of tests: the session-wide harness (base image, golden guests, timings) and the per-test
scenario object that boots nodes and always tears them down."""

from __future__ import annotations

import itertools
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import payload
from .guest import Golden, Guest, Machine
from .image import BaseImage
from .net import Network, SUBNET


@dataclass
class Harness:
    base: BaseImage
    run_id: str
    rundir: Path  # disks, sockets, golden state: removed at the end
    logroot: Path  # kept
    default_boot: str = "clone"
    keep_disks: bool = False
    metrics: list[dict] = field(default_factory=list)
    _goldens: dict = field(default_factory=dict)
    _nets: itertools.count = field(default_factory=lambda: itertools.count(1))

    def golden(self, machine: Machine) -> Golden:
        key = (machine.mem_mib, machine.smp)
        if key not in self._goldens:
            d = self.rundir / f"golden-{machine.mem_mib}m-{machine.smp}c"
            g = Golden(self.base, machine, d, self.logroot / "_golden" / d.name)
            secs = g.create()
            self.metrics.append({"test": "(session)", "guest": "golden", "mode": "golden",
                                 "seconds": round(secs, 1)})
            self._goldens[key] = g
        return self._goldens[key]

    def close(self) -> None:
        if not self.keep_disks:
            shutil.rmtree(self.rundir, ignore_errors=True)


class Scenario:
    """What a test gets as `vm`: boot nodes, make payload disks; everything stops at teardown."""

    def __init__(self, harness: Harness, name: str):
        self.h = harness
        self.name = name
        self.logdir = harness.logroot / name
        self.rundir = harness.rundir / name
        self.guests: list[Guest] = []
        self.nets: list[Network] = []

    def boot(self, n: int, boot: str | None = None, mem_mib: int = 2048,
             smp: int = 2, timeout: float = 300) -> list[Guest]:
        """Boots n nodes named node-1..node-n at SUBNET.11.. on a private bridge; returns them
        when systemd in each one has finished booting.

        boot: "clone" restores a snapshot of a booted guest (fast; the clone shares the golden
        guest's uptime and boot id), "cold" is a real first boot (needed for first-boot tests).
        """
        boot = boot or self.h.default_boot
        if boot not in ("clone", "cold"):
            raise ValueError(f"boot must be 'clone' or 'cold', not {boot!r}")
        machine = Machine(mem_mib=mem_mib, smp=smp)
        golden = self.h.golden(machine) if boot == "clone" else None
        net = Network(f"gvt-{self.h.run_id}-{next(self.h._nets)}")
        self.nets.append(net)
        first = len(self.guests) + 1
        names = [f"node-{i}" for i in range(first, first + n)]
        hosts = {nm: f"{SUBNET}.{10 + i}" for i, nm in enumerate(names, first)}
        new = []
        for i, nm in enumerate(names, first):
            g = Guest(nm, i, self.h.base, self.rundir / nm, self.logdir / nm, machine, net,
                      net.add_nic(i), hosts)
            self.guests.append(g)
            new.append(g)
        t0 = time.monotonic()
        for g in new:
            g.start_clone(golden) if golden else g.start_cold()
        # Wait in parallel: clones are restored and given identities at the same time.
        with ThreadPoolExecutor(len(new)) as pool:
            for f in [pool.submit(g.wait_ready, timeout) for g in new]:
                f.result()
        for g in new:
            self.h.metrics.append({"test": self.name, "guest": g.name, "mode": boot,
                                   "seconds": round(g.boot_seconds, 1)})
        self.h.metrics.append({"test": self.name, "guest": f"{n} together", "mode": boot,
                               "seconds": round(time.monotonic() - t0, 1)})
        return new

    def payload(self, files: dict, label: str = "payload") -> Path:
        """An ext4 image with `files` (see payload.make), for Guest.attach_payload."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        return payload.make(self.rundir / f"{label}.img", files, label)

    def teardown(self) -> None:
        """Stops every guest (collecting its logs), then removes taps, bridges, namespaces."""
        for g in self.guests:
            for secs in g.reboot_times:
                self.h.metrics.append({"test": self.name, "guest": g.name, "mode": "reboot",
                                       "seconds": round(secs, 1)})
        for g in reversed(self.guests):
            try:
                g.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                g.kill()
        for n in reversed(self.nets):
            n.destroy()
        # Idempotent: a test may tear down early to check the cleanup itself.
        self.guests, self.nets = [], []
        if not self.h.keep_disks:
            shutil.rmtree(self.rundir, ignore_errors=True)
