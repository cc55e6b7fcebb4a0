"""One QEMU guest: start (cold boot or snapshot clone), run commands, move files, reboot, stop.

Every guest keeps its files in two places: `rundir` (disk overlay, sockets: deleted at the end)
and `logdir` (serial console, QEMU's own output, every command with its output, the journal
collected before stopping: kept).
"""

from __future__ import annotations

import base64
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import cleanup
from .image import BaseImage
from .net import GATEWAY, Network, Nic
from .qmp import QGA, QMP, CommandError

GUEST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG(SIGKILL): QEMU dies even if the test runner is SIGKILLed. The "parent"
    # is the thread that started it: start QEMU from the main thread only (a pool's worker
    # thread that ends takes its QEMU with it).
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class ExecError(AssertionError):
    """A guest command exited non-zero; the message carries everything needed to see why."""


class ExecTimeout(AssertionError):
    pass


@dataclass
class Result:
    guest: str
    cmd: str
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def __str__(self) -> str:
        return (f"[{self.guest}] $ {self.cmd}\nexit status {self.rc} after {self.seconds:.1f} s\n"
                f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")


@dataclass
class Machine:
    """What the guest hardware looks like. Clones must use exactly the golden guest's Machine."""

    mem_mib: int = 2048
    smp: int = 2

    def argv(self, base: BaseImage, append: str) -> list[str]:
        return [
            "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", "pc,accel=tcg", "-cpu", "max", "-m", str(self.mem_mib),
            "-smp", str(self.smp),
            # A guest reboot ends this QEMU process; Guest.reboot starts a fresh one (see there).
            "-no-reboot",
            "-kernel", str(base.kernel), "-initrd", str(base.initrd), "-append", append,
            "-device", "virtio-serial-pci,id=vser0",
            "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
        ]


# systemd.* options only reduce noise on the serial console; identity goes in gvt.* (cold boot).
BASE_APPEND = "console=ttyS0 root=/dev/vda rw panic=-1 systemd.show_status=auto"


class Guest:
    def __init__(self, name: str, index: int, base: BaseImage, rundir: Path, logdir: Path,
                 machine: Machine, net: Network | None = None, nic: Nic | None = None,
                 hosts: dict[str, str] | None = None):
        self.name = name
        self.index = index
        self.base = base
        self.machine = machine
        self.net = net
        self.nic = nic
        self.hosts = hosts or {}
        self.rundir = rundir
        self.logdir = logdir
        # (file name, command) pairs a product adds to what collect_logs gathers.
        self.extra_logs: list[tuple[str, str]] = []
        rundir.mkdir(parents=True, exist_ok=True)
        logdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.qmp: QMP | None = None
        self.qga: QGA | None = None
        self.boot_seconds: float | None = None
        self.boot_mode: str | None = None
        self.boot_state: str | None = None  # systemd's state when the boot finished
        self.reboot_times: list[float] = []
        self._token: int | None = None
        self._payload_images: dict[str, Path] = {}  # attached so far: present again after reboot
        self._disk: Path | None = None
        self._append = BASE_APPEND
        self.sockdir: Path | None = None
        self._cmdlog = open(logdir / "commands.log", "a", buffering=1)

    # ---------------------------------------------------------------- paths and argv

    @property
    def addr(self) -> str | None:
        return self.nic.addr if self.nic else None

    @property
    def console_log(self) -> Path:
        return self.logdir / "console.log"

    def _sock(self, what: str) -> str:
        # AF_UNIX paths are limited to 107 bytes: sockets live in a short directory of their own.
        if self.sockdir is None:
            # Named after the run so that vm-tests/run can sweep them after a SIGKILL.
            run = os.environ.get("GRAVITY_VM_RUN_ID", "norun")
            self.sockdir = Path(tempfile.mkdtemp(prefix=f"gvt-{run}-{self.name}-"))
        return str(self.sockdir / f"{what}.sock")

    def _argv(self, disk: Path, append: str, incoming: str | None, with_nic: bool) -> list[str]:
        a = self.machine.argv(self.base, append)
        a += [
            "-name", self.name,
            "-drive", f"if=none,id=root,file={disk},format=qcow2,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=root,id=rootdisk",
            "-chardev", f"file,id=ser0,path={self.console_log},append=on",
            "-device", "isa-serial,chardev=ser0",
            "-chardev", f"socket,id=qmp0,path={self._sock('qmp')},server=on,wait=off",
            "-mon", "chardev=qmp0,mode=control",
            "-chardev", f"socket,id=qga0,path={self._sock('qga')},server=on,wait=off",
            "-pidfile", str(self.rundir / "qemu.pid"),
        ]
        if with_nic:
            a += ["-netdev", f"tap,id=net0,ifname={self.nic.tap},script=no,downscript=no",
                  "-device", f"virtio-net-pci,netdev=net0,mac={self.nic.mac},id=nic0"]
        for node, image in self._payload_images.items():
            a += ["-blockdev", f"driver=raw,node-name={node},read-only=on,file.driver=file,"
                               f"file.filename={image},file.read-only=on",
                  "-device", f"virtio-blk-pci,drive={node},id={node}dev"]
        if incoming:
            a += ["-incoming", incoming]
        return a

    def _identity_args(self) -> list[str]:
        hosts = [f"{n}={ip}" for n, ip in self.hosts.items()]
        return [self.name, self.nic.mac, self.nic.cidr, GATEWAY, *hosts]

    def _spawn(self, argv: list[str]) -> None:
        if self.net:
            argv = self.net.exec_prefix + argv
        (self.logdir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        out = open(self.logdir / "qemu.log", "ab")
        # Own session: a Ctrl-C on the terminal reaches pytest, which then stops guests in
        # order (and collects their journals) instead of QEMU dying first.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     preexec_fn=_die_with_parent, start_new_session=True)
        out.close()
        self._token = cleanup.register(f"qemu {self.name} pid {self.proc.pid}", self.kill)
        self.qmp = QMP(self._sock("qmp"), connect_timeout=20)

    def _overlay(self, backing: Path, fmt: str) -> Path:
        disk = self.rundir / "disk.qcow2"
        disk.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(backing), "-F", fmt,
                        str(disk)], check=True)
        return disk

    # ---------------------------------------------------------------- starting

    def start_cold(self) -> None:
        """A real first boot: fresh overlay on the base image, NIC present, identity from the
        kernel command line (applied by gvt-identity.service before networkd starts)."""
        disk = self._disk = self._overlay(self.base.disk, "raw")
        append = BASE_APPEND
        if self.nic:
            hosts = ",".join(f"{n}={ip}" for n, ip in self.hosts.items())
            append += (f" gvt.hostname={self.name} gvt.mac={self.nic.mac} gvt.addr={self.nic.cidr}"
                       f" gvt.gw={GATEWAY} gvt.hosts={hosts}")
        self._append = append
        self.boot_mode = "cold"
        self._t0 = time.monotonic()
        self._spawn(self._argv(disk, append, None, with_nic=self.nic is not None))

    def start_clone(self, golden: "Golden") -> None:
        """Restore the golden guest's memory and disk, then give this guest its identity."""
        disk = self._disk = self._overlay(golden.disk, "qcow2")
        self.boot_mode = "clone"
        self._t0 = time.monotonic()
        self._spawn(self._argv(disk, BASE_APPEND, f"exec:cat {shlex.quote(str(golden.state))}",
                               with_nic=False))

    def wait_ready(self, timeout: float = 300) -> str:
        """Blocks until systemd finished booting; returns its state ('running' or 'degraded')."""
        deadline = time.monotonic() + timeout
        if self.boot_mode == "clone":
            self._finish_clone(deadline)
        self._connect_qga(deadline)
        r = self.exec("systemctl is-system-running --wait", timeout=max(deadline - time.monotonic(),
                                                                        1))
        state = r.stdout.strip()
        if state not in ("running", "degraded"):
            raise RuntimeError(f"{self.name}: system state {state!r} after boot\n{r}")
        if self.boot_mode == "clone" and self.nic:
            self._identity_clone(deadline)
        if self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - self._t0
        self.boot_state = state
        return state

    def _connect_qga(self, deadline: float) -> None:
        if self.qga is None:
            self.qga = QGA(self._sock("qga"))
        try:
            self.qga.sync(max(deadline - time.monotonic(), 1))
        except TimeoutError:
            self._check_alive()
            raise TimeoutError(f"{self.name}: guest agent did not answer; "
                               f"see {self.console_log}") from None

    def _finish_clone(self, deadline: float) -> None:
        while self.qmp.status() == "inmigrate":
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: snapshot restore did not finish")
            time.sleep(0.05)
        mig = self.qmp.cmd("query-migrate")
        if mig.get("status") not in (None, "completed"):
            raise RuntimeError(f"{self.name}: snapshot restore failed: {mig}")
        # Without cont the restored guest stays paused forever.
        self.qmp.cmd("cont")

    def _identity_clone(self, deadline: float) -> None:
        # The NIC goes in first: udev and the driver work while the identity is written.
        self.qmp.cmd("netdev_add", type="tap", id="net0", ifname=self.nic.tap, script="no",
                     downscript="no")
        self.qmp.cmd("device_add", driver="virtio-net-pci", netdev="net0", mac=self.nic.mac,
                     id="nic0")
        # Clones share the golden guest's clock, RNG state and machine-id: fix what can be fixed.
        # RNDRESEEDCRNG (0x5207) after mixing in fresh bytes makes the guest's CRNG diverge now
        # (this kernel has no vmgenid driver to do it on restore).
        seed = base64.b64encode(os.urandom(64)).decode()
        self.sync_clock()
        self.run(f"echo {seed} | base64 -d > /dev/urandom && "
                 "perl -e 'open(F, \">/dev/urandom\") or die; "
                 "ioctl(F, 0x5207, 0) or die \"$!\"' && "
                 f"echo {uuid.uuid4().hex} > /etc/machine-id && "
                 f"gvt-identity {shlex.join(self._identity_args())} && networkctl reload")
        left = max(int(deadline - time.monotonic()), 5)
        self.run(f"for i in $(seq {left * 5}); do ip -4 -o addr show | grep -q ' {self.nic.cidr} '"
                 " && exit 0; sleep 0.2; done; echo 'address never came up'; ip addr; exit 1",
                 timeout=left + 5)

    def _check_alive(self) -> None:
        if self.proc and self.proc.poll() is not None:
            tail = (self.logdir / "qemu.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name}: QEMU exited with status {self.proc.returncode}:\n"
                               f"{tail}\nconsole: {self.console_log}")

    # ---------------------------------------------------------------- commands

    def exec(self, cmd: str | list[str], timeout: float = 120, input: bytes | None = None,
             env: dict[str, str] | None = None, check: bool = False) -> Result:
        """Runs a command (a shell string, or an argv) and returns its exit status and output.

        The command runs in its own session (setsid) so a timeout can kill all it started.
        It must not leave a background child holding stdout open (the agent would wait for it):
        start daemons with `start_service`.
        """
        if isinstance(cmd, str):
            shown, argv = cmd, ["/bin/sh", "-c", cmd]
        else:
            shown, argv = shlex.join(cmd), list(cmd)
        args = {"path": "/usr/bin/setsid", "arg": argv, "capture-output": True,
                "env": [f"{k}={v}" for k, v in {**GUEST_ENV, **(env or {})}.items()]}
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        t0 = time.monotonic()
        pid = self.qga.cmd("guest-exec", **args)["pid"]
        delay = 0.01
        while True:
            st = self.qga.cmd("guest-exec-status", pid=pid)
            if st.get("exited"):
                break
            if time.monotonic() - t0 > timeout:
                self.qga.cmd("guest-exec", path="/bin/kill", arg=["-KILL", "--", f"-{pid}"])
                self._log_cmd(shown, None, b"", b"", time.monotonic() - t0)
                raise ExecTimeout(f"[{self.name}] $ {shown}\nstill running after {timeout:.0f} s; "
                                  f"killed. Console: {self.console_log}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        # Killed by a signal: report it like a shell does.
        rc = 128 + st["signal"] if "signal" in st else st.get("exitcode", -1)
        out = base64.b64decode(st.get("out-data", ""))
        err = base64.b64decode(st.get("err-data", ""))
        secs = time.monotonic() - t0
        self._log_cmd(shown, rc, out, err, secs)
        r = Result(self.name, shown, rc, out.decode(errors="replace"),
                   err.decode(errors="replace"), secs)
        if check and rc != 0:
            raise ExecError(str(r))
        return r

    def run(self, cmd: str | list[str], **kw) -> Result:
        """exec() that fails the test when the command fails."""
        return self.exec(cmd, check=True, **kw)

    def _log_cmd(self, cmd: str, rc, out: bytes, err: bytes, secs: float) -> None:
        status = "TIMEOUT" if rc is None else f"exit {rc}"
        self._cmdlog.write(f"$ {cmd}\n# {status} after {secs:.2f} s\n")
        if out:
            self._cmdlog.write("# stdout:\n" + out.decode(errors="replace").rstrip("\n") + "\n")
        if err:
            self._cmdlog.write("# stderr:\n" + err.decode(errors="replace").rstrip("\n") + "\n")

    def clock_offset(self) -> tuple[float, float]:
        """(guest minus host, round trip) in seconds, from the agent's guest-get-time."""
        t0 = time.time()
        g = self.qga.cmd("guest-get-time") / 1e9
        t1 = time.time()
        return g - (t0 + t1) / 2, t1 - t0

    def sync_clock(self, within: float = 0.05, tries: int = 8) -> float:
        """Sets the guest's clock to the host's, as NTP would on real hosts (these guests reach
        no NTP server), and returns the offset it had.

        The agent sets it in-process (guest-set-time): a `date -s` through guest-exec lands a
        fork and an exec later, up to seconds late on a busy TCG host. Each try aims half a
        round trip ahead and checks the result; the guest's clock also drifts under load, so
        tests call this again before a step that compares clocks between nodes.
        """
        off, rtt = self.clock_offset()
        before = off
        for _ in range(tries):
            if abs(off) <= within:
                break
            try:
                self.qga.cmd("guest-set-time", time=int((time.time() + rtt / 2) * 1e9))
            except CommandError:
                pass  # the agent sets the clock, then fails on `hwclock -w`: measured next
            off, rtt = self.clock_offset()
        if abs(off) > within:
            raise RuntimeError(f"{self.name}: clock still {off * 1e3:+.0f} ms off the host's "
                               f"after {tries} tries (round trip {rtt * 1e3:.0f} ms)")
        self._cmdlog.write(f"# clock: was {before * 1e3:+.1f} ms off the host's, now "
                           f"{off * 1e3:+.1f} ms (round trip {rtt * 1e3:.1f} ms)\n")
        return before

    def start_service(self, unit: str, cmd: str, cwd: str = "/root") -> None:
        """Starts a long-running command as a transient systemd unit (see `exec`)."""
        self.run(["systemd-run", f"--unit={unit}", "--collect", f"--working-directory={cwd}",
                  "--", "/bin/sh", "-c", cmd])

    # ---------------------------------------------------------------- files

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Small files only (the guest agent moves ~2 MiB/s): use a payload disk for big ones."""
        if isinstance(data, str):
            data = data.encode()
        self.qga.write_file(path, data)
        self.run(["chmod", f"{mode:o}", path])

    def read_file(self, path: str) -> bytes:
        return self.qga.read_file(path)

    def attach_payload(self, image: Path, label: str = "payload") -> str:
        """Hot-plugs a payload disk (see payload.make) read-only and mounts it at /mnt/LABEL."""
        node = f"payload{len(self._payload_images) + 1}"
        self.qmp.cmd("blockdev-add", driver="raw", **{"node-name": node, "read-only": True},
                     file={"driver": "file", "filename": str(image), "read-only": True})
        self.qmp.cmd("device_add", driver="virtio-blk-pci", drive=node, id=f"{node}dev")
        self._payload_images[node] = image
        mnt = f"/mnt/{label}"
        self.run(f"for i in $(seq 150); do [ -b /dev/disk/by-label/{label} ] && break; "
                 f"udevadm settle; sleep 0.2; done; mkdir -p {mnt} && "
                 f"mount -o ro /dev/disk/by-label/{label} {mnt}")
        return mnt

    # ---------------------------------------------------------------- power

    def boot_id(self) -> str:
        return self.run("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, timeout: float = 300) -> str:
        """Reboots from inside, like a user would (`systemctl reboot`): the guest shuts down
        completely and boots again from its disk. Returns systemd's state after the new boot.

        The reset is a new QEMU process (-no-reboot): under TCG a guest reset inside the same
        QEMU boots 3-8x slower (soft lockups in clear_page_erms: pages that held translated code
        of the previous boot are slow to write). To the guest this is a power cycle: shutdown,
        firmware, kernel, systemd, on the same disk with the same NIC and payload disks.
        """
        return reboot_together([self], timeout)[0]

    def _ask_reboot(self) -> None:
        # A moment later: run directly, the agent is stopped before it can report the command's
        # exit status, and this call would hang until its timeout.
        self.run("systemd-run --on-active=2 --timer-property=AccuracySec=100ms systemctl reboot")

    def power_cycle(self, timeout: float = 300) -> str:
        """Pulls the plug: QEMU is killed with no warning to the guest (whatever the guest
        had not written to its disk is lost, as on a power cut), then the machine boots again
        from the same disk. Returns systemd's state after the new boot."""
        before = self.boot_id()
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.proc.kill()
        return self._boot_again(before, t0, deadline)

    def _boot_again(self, before: str, t0: float, deadline: float) -> str:
        """A new QEMU process on the same disk, NIC and payload disks, after the old one
        ended; waits for systemd and returns its state."""
        self._respawn()
        return self._wait_booted(before, t0, deadline)

    def _respawn(self) -> None:
        self._release()
        self._spawn(self._argv(self._disk, self._append, None, with_nic=self.nic is not None))

    def _wait_booted(self, before: str, t0: float, deadline: float) -> str:
        self._connect_qga(deadline)
        r = self.exec("systemctl is-system-running --wait",
                      timeout=max(deadline - time.monotonic(), 1))
        if self.boot_id() == before:
            raise RuntimeError(f"{self.name}: same boot id after the machine started again")
        # The boot set the clock from the emulated RTC (whole seconds): up to a second off the
        # other guests', which the product's clock check between nodes (500 ms) refuses.
        self.sync_clock()
        self.reboot_times.append(time.monotonic() - t0)
        return r.stdout.strip()

    def _wait_exit(self, deadline: float) -> str | None:
        """Waits for QEMU to exit; returns the reason of its SHUTDOWN event."""
        reason = None
        while True:
            try:
                ev = self.qmp.next_event(min(deadline, time.monotonic() + 1))
                if ev.get("event") == "SHUTDOWN":
                    reason = ev.get("data", {}).get("reason")
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: did not shut down; "
                                       f"see {self.console_log}") from None
            except (ConnectionError, OSError):
                break
        self.proc.wait(timeout=60)
        return reason

    def collect_logs(self) -> None:
        """Journal and failed units into logdir; best effort, the guest may be broken."""
        if not self.alive() or self.qga is None:
            return
        for name, cmd in [("journal.txt", "journalctl -b --no-pager -o short-monotonic"),
                          ("failed-units.txt", "systemctl --failed --no-pager --all"),
                          ("ps.txt", "ps -eo pid,ppid,time,rss:8,cgroup:60,args --forest"),
                          ("memory.txt", "free -m; cat /proc/pressure/cpu /proc/pressure/memory /proc/pressure/io"),
                          *self.extra_logs]:
            try:
                self.qga.sync(5)
                r = self.exec(cmd, timeout=30)
                (self.logdir / name).write_text(r.stdout + r.stderr)
            except Exception as e:  # noqa: BLE001 - a broken guest must not hide the test's error
                (self.logdir / name).write_text(f"could not collect: {e}\n")
                return

    def _release(self) -> None:
        """Forgets a QEMU process that is dead or being killed: connections, cleanup entry."""
        for c in (self.qga, self.qmp):
            if c:
                c.close()
        self.qga = self.qmp = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        if self._token:
            cleanup.unregister(self._token)
            self._token = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, collect: bool = True) -> None:
        """Collects logs, then stops QEMU (quit over QMP, SIGKILL if that does not work)."""
        if collect:
            self.collect_logs()
        if self.alive() and self.qmp:
            try:
                self.qmp.cmd("quit", timeout=5)
            except Exception:  # noqa: BLE001 - QEMU may die before answering
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._release()
        if self.sockdir:
            shutil.rmtree(self.sockdir, ignore_errors=True)
        self._cmdlog.flush()


class Golden:
    """A booted guest saved to a file (memory + its disk overlay) that clones restore from.

    Boots with no NIC and no identity: those are hot-plugged/set in each clone. The state only
    restores on the same QEMU build and the same Machine, so it is made once per run, never cached.
    """

    def __init__(self, base: BaseImage, machine: Machine, rundir: Path, logdir: Path):
        self.rundir = rundir
        self.state = rundir / "golden.state"
        self.disk = rundir / "disk.qcow2"
        self.machine = machine
        self.guest = Guest("golden", 0, base, rundir, logdir, machine)

    def create(self, timeout: float = 300) -> float:
        t0 = time.monotonic()
        g = self.guest
        g.start_cold()
        try:
            g.wait_ready(timeout)
            g.qga.close()  # the clone's agent must not see half a conversation
            g.qga = None
            g.qmp.cmd("stop")
            g.qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(self.state))}")
            while True:
                st = g.qmp.cmd("query-migrate").get("status")
                if st == "completed":
                    break
                if st in ("failed", "cancelled"):
                    raise RuntimeError(f"saving the golden guest failed: {st}")
                time.sleep(0.1)
        finally:
            g.stop(collect=False)
        return time.monotonic() - t0


def reboot_together(guests: list[Guest], timeout: float = 300) -> list[str]:
    """Reboots `guests` from inside at the same time (see Guest.reboot), as a power failure of
    a rack would; returns systemd's state in each after its new boot. QEMU is restarted from
    this (the main) thread, the waits run in parallel."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    before = [g.boot_id() for g in guests]
    for g in guests:
        g._ask_reboot()
    for g in guests:
        reason = g._wait_exit(deadline)
        if reason != "guest-reset":
            raise RuntimeError(f"{g.name}: QEMU stopped with reason {reason!r} instead of a "
                               f"guest reset; see {g.console_log}")
    for g in guests:
        g._respawn()
    with ThreadPoolExecutor(len(guests)) as pool:
        futures = [pool.submit(g._wait_booted, b, t0, deadline) for g, b in zip(guests, before)]
        return [f.result() for f in futures]
