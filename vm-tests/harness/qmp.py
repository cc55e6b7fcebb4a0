"""Clients for QEMU's two JSON sockets: QMP (the VMM) and the guest agent (QGA).

Each QEMU chardev socket serves ONE client at a time; a second connection hangs silently. So a
Guest holds one connection of each for its whole life and every caller goes through it.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import threading
import time


class ProtocolError(RuntimeError):
    pass


class CommandError(RuntimeError):
    """The peer answered with an error object."""

    def __init__(self, cmd: str, error: dict):
        super().__init__(f"{cmd}: {error.get('class')}: {error.get('desc')}")
        self.error = error


class _JsonLines:
    """Newline-delimited JSON over a unix socket, with deadlines."""

    def __init__(self, path: str, connect_timeout: float):
        deadline = time.monotonic() + connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock = s
        self.buf = b""
        self.lock = threading.RLock()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, obj: dict, prefix: bytes = b"") -> None:
        self.sock.sendall(prefix + json.dumps(obj).encode() + b"\n")

    def recv(self, deadline: float) -> dict:
        """Next JSON object; bytes before it that are not JSON (QGA's 0xFF marker) are skipped."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                # QGA prefixes guest-sync-delimited's reply with 0xFF; drop anything before '{'.
                start = line.find(b"{")
                if start < 0:
                    continue
                try:
                    return json.loads(line[start:])
                except json.JSONDecodeError:
                    continue  # garbage left over from a guest agent restart
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                raise TimeoutError("no reply") from None
            if not chunk:
                raise ConnectionError("socket closed by QEMU")
            self.buf += chunk


def _call(io: _JsonLines, name: str, ident: str, timeout: float, args: dict,
          events: list[dict] | None = None) -> object:
    """Sends one command with `ident` and returns its reply's `return`; replies to other ids
    (stale ones) are skipped, asynchronous events go to `events` (QMP only)."""
    with io.lock:
        msg = {"execute": name, "id": ident}
        if args:
            msg["arguments"] = args
        io.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            r = io.recv(deadline)
            if "event" in r and events is not None:
                events.append(r)
                continue
            if r.get("id") != ident:
                continue
            if "error" in r:
                raise CommandError(name, r["error"])
            return r.get("return")


class QMP:
    def __init__(self, path: str, connect_timeout: float = 10):
        self.io = _JsonLines(path, connect_timeout)
        self.events: list[dict] = []
        self._ids = itertools.count(1)  # next() is atomic: callers on any thread
        greeting = self.io.recv(time.monotonic() + 10)
        if "QMP" not in greeting:
            raise ProtocolError(f"not a QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def close(self) -> None:
        self.io.close()

    def cmd(self, name: str, timeout: float = 30, **args) -> object:
        return _call(self.io, name, f"q{next(self._ids)}", timeout, args, self.events)

    def status(self) -> str:
        return self.cmd("query-status")["status"]


class QGA:
    """qemu-guest-agent client. Every call carries an id; stale replies are skipped."""

    def __init__(self, path: str, connect_timeout: float = 10):
        self.path = path
        self.io = _JsonLines(path, connect_timeout)
        self._ids = itertools.count(1)  # next() is atomic: callers on any thread

    def close(self) -> None:
        self.io.close()

    def sync(self, timeout: float) -> None:
        """Waits until the agent answers (it is started by udev in the guest, late in boot).

        Re-sends a fresh guest-sync-delimited every couple of seconds; replies to earlier ones
        arrive later and are skipped by id. 0xFF first resets the agent's JSON parser.
        """
        deadline = time.monotonic() + timeout
        with self.io.lock:
            while True:
                ident = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
                self.io.send({"execute": "guest-sync-delimited", "arguments": {"id": ident}},
                             prefix=b"\xff")
                step = min(deadline, time.monotonic() + 2)
                try:
                    while True:
                        r = self.io.recv(step)
                        if r.get("return") == ident:
                            return
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"guest agent on {self.path} did not answer in "
                                           f"{timeout:.0f} s") from None

    def cmd(self, name: str, timeout: float = 30, **args) -> object:
        return _call(self.io, name, f"g{next(self._ids)}", timeout, args)

    # -- files: small ones only (the agent moves ~2 MiB/s); big ones go on a payload disk

    def write_file(self, path: str, data: bytes) -> None:
        h = self.cmd("guest-file-open", path=path, mode="w")
        try:
            for i in range(0, len(data), 1 << 16):
                self.cmd("guest-file-write", handle=h,
                         **{"buf-b64": base64.b64encode(data[i:i + (1 << 16)]).decode()})
        finally:
            self.cmd("guest-file-close", handle=h)

    def read_file(self, path: str) -> bytes:
        h = self.cmd("guest-file-open", path=path, mode="r")
        out = bytearray()
        try:
            while True:
                r = self.cmd("guest-file-read", handle=h, count=1 << 16)
                out += base64.b64decode(r.get("buf-b64", ""))
                if r.get("eof") or not r.get("count"):
                    return bytes(out)
        finally:
            self.cmd("guest-file-close", handle=h)
