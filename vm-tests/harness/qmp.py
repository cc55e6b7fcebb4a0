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

    @staticmethod
    def _parse(line: bytes) -> dict | None:
        """The JSON object that ends `line`, or None. What comes before it is skipped: QGA's
        0xFF before guest-sync-delimited's reply, or the unfinished start of a message the peer
        never completed (a guest agent restart), which then shares the line with the next one."""
        start = line.find(b"{")
        while start >= 0:
            try:
                obj = json.loads(line[start:])
            except ValueError:  # not JSON from here, or not UTF-8 (garbage)
                start = line.find(b"{", start + 1)
                continue
            return obj if isinstance(obj, dict) else None
        return None

    def send(self, obj: dict, prefix: bytes = b"") -> None:
        self.sock.sendall(prefix + json.dumps(obj).encode() + b"\n")

    def recv(self, deadline: float) -> dict:
        """Next JSON object; bytes before it that are not JSON (QGA's 0xFF marker) are skipped."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                obj = self._parse(line)
                if obj is not None:
                    return obj
                continue
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


def _next(io: _JsonLines, deadline: float, events: list[dict] | None) -> dict:
    """The next message that is not an asynchronous event. QMP events may come at any point of
    a connection, the greeting included (see QMP.__init__), and between a command and its reply;
    they are appended to `events`. `events` None: the peer sends none (QGA)."""
    while True:
        r = io.recv(deadline)
        if events is not None and "event" in r:
            events.append(r)
            continue
        return r


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
            r = _next(io, deadline, events)
            if r.get("id") != ident:
                continue
            if "error" in r:
                raise CommandError(name, r["error"])
            return r.get("return")


class QMP:
    """QMP client. `events` keeps every asynchronous event in arrival order, whenever it came.

    An event can come before the greeting. QEMU (7.2 at least) accepts the connection and sends
    the greeting in the monitor's I/O thread while its main thread may be emitting an event;
    until that greeting the monitor is not in capabilities negotiation (the state in which it
    holds events back: it has had no client yet, or it is still in the previous client's command
    mode), so an event emitted between the accept and the greeting goes out first. A guest
    restored with -incoming emits MIGRATION {"status": "setup"} while QEMU starts (whatever the
    `events` migration capability says), just when `Guest._spawn` connects. So the greeting is
    the first message that is not an event; events before it are kept like any other.
    """

    def __init__(self, path: str, connect_timeout: float = 10, greeting_timeout: float = 10):
        self.io = _JsonLines(path, connect_timeout)
        self.events: list[dict] = []
        self._events_read = 0  # how many of `events` next_event has handed out
        self._ids = itertools.count(1)  # next() is atomic: callers on any thread
        try:
            with self.io.lock:
                greeting = _next(self.io, time.monotonic() + greeting_timeout, self.events)
            if "QMP" not in greeting:
                raise ProtocolError(f"not a QMP greeting: {greeting}")
            self.cmd("qmp_capabilities")
        except BaseException:
            self.io.close()  # the socket serves one client: do not keep it busy
            raise

    def close(self) -> None:
        self.io.close()

    def cmd(self, name: str, timeout: float = 30, **args) -> object:
        return _call(self.io, name, f"q{next(self._ids)}", timeout, args, self.events)

    def next_event(self, deadline: float) -> dict:
        """The oldest event next_event has not returned yet: first those that arrived while
        commands ran, then new ones. Replies read meanwhile are stale (their command gave up)
        and dropped. TimeoutError at `deadline`, ConnectionError when QEMU closes the socket."""
        with self.io.lock:
            while self._events_read == len(self.events):
                r = self.io.recv(deadline)
                if "event" in r:
                    self.events.append(r)
            self._events_read += 1
            return self.events[self._events_read - 1]

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
