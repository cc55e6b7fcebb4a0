"""Smoke: the harness itself, no product needed. Runs on every CI run."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from harness import cleanup, net
from harness.guest import ExecTimeout


def test_two_guests_have_identities_talk_and_take_files(vm):
    node1, node2 = vm.boot(2)

    for node in (node1, node2):
        # The base image boots clean: no failed unit.
        assert node.boot_state == "running", node.run("systemctl --failed --no-pager").stdout
        # A real host: systemd is PID 1 and the cgroup hierarchy is pure v2.
        assert node.run("ps -p 1 -o comm=").stdout.strip() == "systemd"
        assert node.run("stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
        assert node.run("hostname").stdout.strip() == node.name
        assert node.run("cat /etc/hostname").stdout.strip() == node.name
        assert f" {node.addr}/24 " in node.run("ip -4 -o addr show").stdout

    # Each clone got its own machine-id.
    ids = {n.run("cat /etc/machine-id").stdout.strip() for n in (node1, node2)}
    assert len(ids) == 2

    # They reach each other by name (/etc/hosts) and by address; nothing reaches beyond the bridge.
    node1.run("ping -c 2 -W 5 node-2")
    node2.run(f"ping -c 2 -W 5 {node1.addr}")
    assert not node1.exec("ping -c 1 -W 2 192.0.2.1").ok

    # A payload disk brings files in intact.
    blob = os.urandom(3 << 20)
    img = vm.payload({"blob.bin": blob, "dir/hello.txt": "hello\n"})
    mnt = node1.attach_payload(img)
    assert node1.run(f"sha256sum {mnt}/blob.bin").stdout.split()[0] == \
        hashlib.sha256(blob).hexdigest()
    assert node1.run(f"cat {mnt}/dir/hello.txt").stdout == "hello\n"

    # Small files both ways through the guest agent.
    node2.write_file("/root/note", "a note\n", mode=0o600)
    assert node2.run("stat -c %a /root/note").stdout.strip() == "600"
    assert node2.read_file("/root/note") == b"a note\n"

    # A failing command's exit status and both streams come back separately.
    r = node2.exec("echo to-stdout; echo 'something broke' >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr) == (3, "to-stdout\n", "something broke\n")
    r = node2.exec(["ls", "/nonexistent"])
    assert r.rc == 2 and "No such file or directory" in r.stderr

    # A clone reboots like a real host and keeps the identity written to its disk.
    boot_before = node2.boot_id()
    assert node2.reboot() == "running"
    assert node2.boot_id() != boot_before
    assert node2.run("hostname").stdout.strip() == "node-2"
    node2.run("ping -c 2 -W 5 node-1")

    # A command that outlives its timeout is killed with everything it started.
    with pytest.raises(ExecTimeout):
        node2.exec("sleep 1000 & sleep 1001", timeout=3)
    assert node2.exec("pgrep -x sleep").rc == 1


def test_cold_boot_and_cleanup_leaves_nothing(vm):
    (node,) = vm.boot(1, boot="cold")
    assert node.boot_state == "running", node.run("systemctl --failed --no-pager").stdout

    # A cold boot is a first boot: the serial console has the whole story from the kernel on.
    console = node.console_log.read_text(errors="replace")
    assert "Linux version 6.1" in console
    assert node.run("systemctl is-active gvt-identity.service").stdout.strip() == "active"
    assert node.run("hostname").stdout.strip() == "node-1"
    # What the product loads on a real host exists in this kernel (planet's image is erofs, or
    # squashfs where erofs is missing).
    node.run("for m in overlay loop br_netfilter erofs squashfs; do modprobe $m; done")
    fs = node.run("cat /proc/filesystems").stdout.split()
    assert {"overlay", "erofs", "squashfs"} <= set(fs)
    # Room on / for an unpacked cluster image and planet's state.
    assert int(node.run("df --output=avail -B1G / | tail -1").stdout) >= 10

    pid = node.proc.pid
    ns = vm.nets[0].name
    sockdir = node.sockdir
    assert (sockdir / "qga.sock").exists()
    assert ns in net.namespaces()
    taps = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "type", "tun"],
                          capture_output=True, text=True).stdout
    assert "tap1" in taps

    vm.teardown()

    assert not Path(f"/proc/{pid}").exists(), "QEMU still running"
    assert ns not in net.namespaces(), "network namespace left behind"
    assert not sockdir.exists(), "sockets left behind"
    # No tap or bridge escaped into the host's namespace either.
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "tap1" not in links
    assert cleanup.pending() == []
    # The logs stay.
    assert (node.logdir / "journal.txt").stat().st_size > 0
    assert node.console_log.stat().st_size > 0
