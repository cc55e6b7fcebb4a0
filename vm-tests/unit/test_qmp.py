"""harness/qmp.py against a fake QEMU on a unix socket: no QEMU, no root.

The fake sends what QEMU sends (JSON objects ended by CRLF), in the orders QEMU can send them:
an asynchronous event before the greeting (a clone started with -incoming emits MIGRATION
"setup" while the monitor's I/O thread accepts the connection), events between a command and
its reply, stale replies, a second connection to the same path (a rebooted guest's new QEMU).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from harness.qmp import QGA, QMP, ProtocolError, _JsonLines

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}},
                    "capabilities": ["oob"]}}


def event(_name: str, **data) -> dict:
    return {"timestamp": {"seconds": 1, "microseconds": 2}, "event": _name, "data": data}


MIGRATION_SETUP = event("MIGRATION", status="setup")


class Peer:
    """The server side of one accepted connection."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.conn.settimeout(10)
        self.buf = b""

    def send(self, *msgs: dict | bytes, split: bool = False) -> None:
        data = b"".join(m if isinstance(m, bytes) else json.dumps(m).encode() + b"\r\n"
                        for m in msgs)
        if not split:
            self.conn.sendall(data)
            return
        # A few bytes at a time: messages cut mid-object and mid-line on the way.
        for i in range(0, len(data), 7):
            self.conn.sendall(data[i:i + 7])
            time.sleep(0.001)

    def command(self) -> dict:
        """The next command the client sent (a leading 0xFF, QGA's parser reset, stripped)."""
        while b"\n" not in self.buf:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("client closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line.lstrip(b"\xff"))

    def reply(self, cmd: dict, ret=None, before: tuple = ()) -> None:
        """Answers `cmd` with `ret`, after the messages in `before`."""
        self.send(*before, {"return": {} if ret is None else ret, "id": cmd["id"]})

    def closed_by_client(self) -> bool:
        try:
            return self.conn.recv(1) == b""
        except OSError:
            return True


class FakeQemu:
    """Listens on `path`; serves each connection, in turn, with the next of `handlers`
    (functions of a Peer). A handler's exception fails the test in `check`."""

    def __init__(self, path: str, *handlers):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.handlers = list(handlers)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for h in self.handlers:
            try:
                conn, _ = self.sock.accept()
            except OSError as e:
                self.errors.append(e)
                return
            with conn:
                try:
                    h(Peer(conn))
                except BaseException as e:  # noqa: BLE001 - reported by check()
                    self.errors.append(e)

    def check(self) -> None:
        self.thread.join(10)
        self.sock.close()
        assert not self.thread.is_alive(), "fake QEMU still serving"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def sock_path():
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="gvt-unit-")
    yield str(Path(d) / "qmp.sock")
    shutil.rmtree(d, ignore_errors=True)


def negotiate(peer: Peer, before_greeting: tuple = (), before_reply: tuple = (),
              split: bool = False) -> None:
    peer.send(*before_greeting, GREETING, split=split)
    cmd = peer.command()
    assert cmd["execute"] == "qmp_capabilities", cmd
    peer.reply(cmd, before=before_reply)


# ------------------------------------------------------------------------- the greeting

@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split-writes"])
def test_event_before_the_greeting_is_kept_not_taken_for_the_greeting(sock_path, split):
    def qemu(peer):
        negotiate(peer, before_greeting=(MIGRATION_SETUP,), split=split)
        cmd = peer.command()
        assert cmd["execute"] == "query-status"
        peer.reply(cmd, {"status": "inmigrate", "running": False})

    fake = FakeQemu(sock_path, qemu)
    q = QMP(sock_path, connect_timeout=5)
    assert q.status() == "inmigrate"
    assert q.events == [MIGRATION_SETUP]
    q.close()
    fake.check()


def test_several_events_before_the_greeting_and_before_the_capabilities_reply(sock_path):
    # The other interleaving of the same race: the event lands after the greeting, before
    # qmp_capabilities is answered.
    evs = [event("MIGRATION", status="setup"), event("RESUME"),
           event("MIGRATION", status="active")]
    fake = FakeQemu(sock_path, lambda p: negotiate(p, before_greeting=(evs[0], evs[1]),
                                                   before_reply=(evs[2],)))
    q = QMP(sock_path, connect_timeout=5)
    assert q.events == evs
    q.close()
    fake.check()


def test_a_first_message_that_is_neither_event_nor_greeting_is_an_error(sock_path):
    seen = {}

    def qemu(peer):
        peer.send(MIGRATION_SETUP, {"return": {}})
        seen["closed"] = peer.closed_by_client()

    fake = FakeQemu(sock_path, qemu)
    with pytest.raises(ProtocolError, match="not a QMP greeting"):
        QMP(sock_path, connect_timeout=5)
    fake.check()
    # The socket serves one client: a failed handshake must not keep it.
    assert seen["closed"]


def test_only_events_and_no_greeting_times_out(sock_path):
    def qemu(peer):
        peer.send(MIGRATION_SETUP, event("RESUME"))
        peer.closed_by_client()

    fake = FakeQemu(sock_path, qemu)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        QMP(sock_path, connect_timeout=5, greeting_timeout=0.5)
    assert time.monotonic() - t0 < 5
    fake.check()


# ------------------------------------------------------------------------- replies

def test_events_and_stale_replies_between_a_command_and_its_reply(sock_path):
    evs = [event("DEVICE_DELETED", device="nic0"), event("NIC_RX_FILTER_CHANGED", name="nic0"),
           event("RESUME")]

    def qemu(peer):
        negotiate(peer)
        cmd = peer.command()
        assert cmd["execute"] == "device_add"
        peer.reply(cmd, before=(evs[0], {"return": {}, "id": "q-stale"}, evs[1]))
        cmd = peer.command()
        assert cmd["execute"] == "cont"
        peer.send(evs[2], split=True)
        peer.reply(cmd)
        cmd = peer.command()
        peer.send({"error": {"class": "GenericError", "desc": "no"}, "id": "q-stale"},
                  event("STOP"))
        peer.send({"error": {"class": "DeviceNotFound", "desc": "nope"}, "id": cmd["id"]})

    fake = FakeQemu(sock_path, qemu)
    q = QMP(sock_path, connect_timeout=5)
    assert q.cmd("device_add", driver="virtio-net-pci") == {}
    assert q.cmd("cont") == {}
    with pytest.raises(Exception, match="DeviceNotFound: nope"):
        q.cmd("device_del", id="x")
    assert [e["event"] for e in q.events] == ["DEVICE_DELETED", "NIC_RX_FILTER_CHANGED",
                                              "RESUME", "STOP"]
    q.close()
    fake.check()


def test_next_event_returns_queued_events_first_then_new_ones(sock_path):
    def qemu(peer):
        negotiate(peer, before_greeting=(MIGRATION_SETUP,))
        cmd = peer.command()
        peer.reply(cmd, {"status": "running", "running": True}, before=(event("RESUME"),))
        # What Guest._wait_exit waits for: a late reply (dropped), SHUTDOWN, then EOF.
        peer.send({"return": {}, "id": "q-late"}, event("SHUTDOWN", guest=True,
                                                        reason="guest-reset"))

    fake = FakeQemu(sock_path, qemu)
    q = QMP(sock_path, connect_timeout=5)
    assert q.status() == "running"
    deadline = time.monotonic() + 5
    assert q.next_event(deadline)["event"] == "MIGRATION"
    assert q.next_event(deadline)["event"] == "RESUME"
    ev = q.next_event(deadline)
    assert ev["event"] == "SHUTDOWN" and ev["data"]["reason"] == "guest-reset"
    with pytest.raises(ConnectionError):
        q.next_event(deadline)
    assert [e["event"] for e in q.events] == ["MIGRATION", "RESUME", "SHUTDOWN"]
    q.close()
    fake.check()


# ------------------------------------------------------------------------- reconnecting

def test_a_new_connection_on_the_same_path_starts_clean(sock_path):
    # A reboot: the guest's QEMU ends and a new one listens on the same socket path; the harness
    # connects again. Nothing of the first connection (here: half a message QEMU never finished)
    # may be read on the second, and the second may again start with an event.
    def first(peer):
        negotiate(peer)
        peer.send(b'{"timestamp": {"seconds": 1}, "event": "SHUT')

    def second(peer):
        negotiate(peer, before_greeting=(event("MIGRATION", status="setup"),), split=True)
        cmd = peer.command()
        peer.reply(cmd, {"status": "running", "running": True}, before=(event("RESUME"),))

    fake = FakeQemu(sock_path, first, second)
    q1 = QMP(sock_path, connect_timeout=5)
    assert q1.events == []
    time.sleep(0.1)
    q1.close()
    q2 = QMP(sock_path, connect_timeout=5)
    assert q2.status() == "running"
    assert [e["event"] for e in q2.events] == ["MIGRATION", "RESUME"]
    q2.close()
    fake.check()


# ------------------------------------------------------------------------- the guest agent

def test_guest_agent_sync_and_commands(sock_path):
    def agent(peer):
        cmd = peer.command()
        assert cmd["execute"] == "guest-sync-delimited"
        # A reply to an earlier sync, then the 0xFF marker and the reply to this one.
        peer.send({"return": 1}, b"\xff" + json.dumps({"return": cmd["arguments"]["id"]}).encode()
                  + b"\n")
        cmd = peer.command()
        peer.send({"return": {"version": "old"}, "id": "g0"}, split=True)
        peer.reply(cmd, {"version": "7.2"})

    fake = FakeQemu(sock_path, agent)
    qga = QGA(sock_path, connect_timeout=5)
    qga.sync(5)
    assert qga.cmd("guest-info") == {"version": "7.2"}
    qga.close()
    fake.check()


@pytest.mark.parametrize("line, want", [
    (b'{"return": 1}', {"return": 1}),
    (b'\xff{"return": 7}', {"return": 7}),
    # The unfinished start of a message, then a whole one on the same line.
    (b'{"return": {"buf-b64": "QUJD{"return": 2, "id": "g3"}', {"return": 2, "id": "g3"}),
    (b'\xff{\xfe\xff garbage {"return": {"a": {"b": 1}}}', {"return": {"a": {"b": 1}}}),
    (b'garbage without an object', None),
    (b'{"return": ', None),
    (b'\xff\xfe', None),
])
def test_a_line_yields_the_object_it_ends_with(line, want):
    assert _JsonLines._parse(line) == want


def test_a_reply_after_an_unfinished_message_on_the_same_line_is_not_lost(sock_path):
    def agent(peer):
        cmd = peer.command()
        # The agent died while writing a reply; after its restart the next reply follows it.
        peer.send(b'{"return": {"count": 3, "buf-b64": "QU',
                  {"return": {"version": "7.2"}, "id": cmd["id"]})

    fake = FakeQemu(sock_path, agent)
    qga = QGA(sock_path, connect_timeout=5)
    assert qga.cmd("guest-info", timeout=5) == {"version": "7.2"}
    qga.close()
    fake.check()
