"""A private network for guests: a network namespace with a bridge and one tap per guest.

The namespace has no link to the outside, so nothing a guest sends leaves this machine. QEMU runs
inside the namespace (`ip netns exec`) and opens its tap there.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from . import cleanup

SUBNET = "10.0.0"
GATEWAY = f"{SUBNET}.1"
PREFIX = 24


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Nic:
    tap: str
    mac: str
    addr: str  # without prefix

    @property
    def cidr(self) -> str:
        return f"{self.addr}/{PREFIX}"


class Network:
    """Namespace `name` with bridge br0 (GATEWAY) and taps tap1..tapN."""

    def __init__(self, name: str):
        self.name = name
        self.taps: list[str] = []
        # Registered before creating anything: a failure half-way still gets cleaned up.
        self._token = cleanup.register(f"netns {name}", self.destroy)
        _ip("netns", "add", name)
        self.exec_prefix = ["ip", "netns", "exec", name]
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "br0", "type", "bridge")
        _ip("-n", name, "addr", "add", f"{GATEWAY}/{PREFIX}", "dev", "br0")
        _ip("-n", name, "link", "set", "br0", "up")

    def add_nic(self, index: int) -> Nic:
        """Tap for guest number `index` (1-based): address SUBNET.(10+index), a fixed MAC."""
        tap = f"tap{index}"
        _ip("-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap")
        self.taps.append(tap)
        _ip("-n", self.name, "link", "set", tap, "master", "br0", "up")
        return Nic(tap=tap, mac=f"52:54:00:00:00:{index:02x}", addr=f"{SUBNET}.{10 + index}")

    def destroy(self) -> None:
        """Deletes taps, bridge and namespace. QEMU must be dead first (it holds the taps)."""
        for tap in self.taps:
            _ip("-n", self.name, "link", "del", tap, check=False)
        _ip("-n", self.name, "link", "del", "br0", check=False)
        _ip("netns", "del", self.name, check=False)
        cleanup.unregister(self._token)

    def exists(self) -> bool:
        return self.name in namespaces()


def namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.strip()]
