"""A newc cpio writer: enough for a small initramfs, without needing the cpio package."""

from __future__ import annotations


def _hdr(ino: int, mode: int, size: int, name: bytes) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    h = b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"
    return h + b"\0" * (-len(h) % 4)


def newc(files: dict[str, tuple[bytes, int]], dirs: list[str]) -> bytes:
    """files: path -> (content, permission bits); dirs: directories to create first."""
    out = bytearray()
    ino = 1
    for d in dirs:
        out += _hdr(ino, 0o040755, 0, d.encode())
        ino += 1
    for path, (data, perm) in files.items():
        out += _hdr(ino, 0o100000 | perm, len(data), path.encode())
        out += data + b"\0" * (-len(data) % 4)
        ino += 1
    out += _hdr(0, 0, 0, b"TRAILER!!!")
    return bytes(out)
