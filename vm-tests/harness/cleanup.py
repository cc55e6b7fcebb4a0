"""Process-wide registry of things to undo: QEMU processes, namespaces, mounts.

Normal teardown undoes resources in reverse order and unregisters them. Whatever is still
registered when the interpreter exits (a crash, an uncaught Ctrl-C, SIGTERM from CI's timeout)
is undone by `run_all`, called from atexit and from the signal handlers installed by `install`.
QEMU also gets PR_SET_PDEATHSIG so it dies even if this process is SIGKILLed; `vm-tests/run`
then sweeps namespaces by name as a last resort.
"""

from __future__ import annotations

import atexit
import itertools
import signal
import sys
import threading
import traceback

_lock = threading.Lock()
_items: dict[int, tuple[str, object]] = {}
_ids = itertools.count(1)
_installed = False


def register(what: str, fn) -> int:
    with _lock:
        t = next(_ids)
        _items[t] = (what, fn)
        return t


def unregister(token: int) -> None:
    with _lock:
        _items.pop(token, None)


def pending() -> list[str]:
    with _lock:
        return [w for w, _ in _items.values()]


def run_all() -> None:
    """Undo everything still registered, newest first; one failure does not stop the rest."""
    while True:
        with _lock:
            if not _items:
                return
            t = max(_items)
            what, fn = _items.pop(t)
        try:
            fn()
        except Exception:
            print(f"vm-tests cleanup: undoing {what} failed:", file=sys.stderr)
            traceback.print_exc()


def _on_signal(signum, frame):
    # Turn SIGTERM/SIGHUP into an exception so pytest's teardown runs like on Ctrl-C.
    raise KeyboardInterrupt(f"signal {signum}")


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(run_all)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
