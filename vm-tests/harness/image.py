"""Guest base image: Debian bookworm rootfs, Debian's cloud kernel, a tiny initramfs.

Built without loop mounts (mmdebstrap into a directory, `mkfs.ext4 -d`) and cached under a key
that is the hash of the recipe files and of this file, so editing the recipe rebuilds the image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import cpio

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipe"
SUITE = "bookworm"
# Debian's own mirrors; security is where the current cloud kernel lives.
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# Sparse: the rootfs uses ~0.3 GiB; the rest is room for an unpacked cluster image and planet's
# state (images, registry, etcd) on the guest's root filesystem.
ROOT_DISK_SIZE = "16G"
INITRAMFS_MODULES = [
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "virtio_blk",
]


@dataclass(frozen=True)
class BaseImage:
    dir: Path
    kernel: Path
    initrd: Path
    disk: Path  # raw ext4, used read-only as the backing file of per-guest qcow2 overlays
    kver: str
    key: str

    @property
    def info(self) -> dict:
        return json.loads((self.dir / "info.json").read_text())


def recipe_files() -> list[Path]:
    return sorted([p for p in RECIPE.iterdir() if p.is_file()] + [Path(__file__).resolve(),
                                                                 HERE / "cpio.py"])


def recipe_key() -> str:
    h = hashlib.sha256()
    for p in recipe_files():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _lines(name: str) -> list[str]:
    out = []
    for line in (RECIPE / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _run(cmd: list[str], log, **kw) -> subprocess.CompletedProcess:
    log(f"+ {' '.join(cmd)}")
    return subprocess.run(cmd, check=True, **kw)


def _load(key: str, d: Path) -> BaseImage:
    info = json.loads((d / "info.json").read_text())
    return BaseImage(dir=d, kernel=d / "vmlinuz", initrd=d / "initrd.img", disk=d / "base.raw",
                     kver=info["kver"], key=key)


def ensure(cache_dir: Path, log=lambda s: print(s, file=sys.stderr)) -> BaseImage:
    """Returns the cached base image for the current recipe, building it if needed.

    A lock serialises concurrent runs; a build goes to a temporary directory renamed into place
    at the end, so an interrupted build never looks complete.
    """
    key = recipe_key()
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "info.json").exists():
            os.utime(final)  # marks it used, for _prune
            log(f"base image {key}: cached in {final}")
            return _load(key, final)
        tmp = cache_dir / f".build-{key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        t0 = time.monotonic()
        try:
            _build(tmp, log)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        info = json.loads((tmp / "info.json").read_text())
        info["build_seconds"] = round(time.monotonic() - t0, 1)
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        os.rename(tmp, final)
        log(f"base image {key}: built in {info['build_seconds']} s -> {final}")
        _prune(cache_dir, keep=key)
        return _load(key, final)


def _prune(cache_dir: Path, keep: str, unused_days: float = 2) -> None:
    """Deletes images of other recipes not used for a while (one is ~0.4 GiB). Not at once:
    a run of another checkout (another recipe) may share this cache and be using its image."""
    for old in cache_dir.iterdir():
        if old.is_dir() and old.name != keep and not old.name.startswith("."):
            if time.time() - old.stat().st_mtime > unused_days * 86400:
                shutil.rmtree(old, ignore_errors=True)


def _download_deb(pkg: str, dest: Path, log) -> Path:
    """apt-get download of one package (resolving a metapackage's linux-image dependency)."""
    # Sandbox user root: _apt cannot write into a build directory under /root or /work.
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg], log, cwd=dest,
         stdout=subprocess.DEVNULL)
    debs = sorted(dest.glob(f"{pkg}_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download {pkg}: expected one .deb in {dest}, got {debs}")
    return debs[0]


def _kernel_package(log) -> str:
    meta = _lines("kernel-package")[0]
    out = subprocess.run(["apt-cache", "depends", meta], check=True, capture_output=True,
                         text=True).stdout
    deps = [w.split(":", 1)[1].strip() for w in out.splitlines()
            if w.strip().startswith("Depends:") and "linux-image-" in w]
    if len(deps) != 1:
        raise RuntimeError(f"apt-cache depends {meta}: cannot find the kernel package in:\n{out}"
                           "\nRun apt-get update first.")
    return deps[0]


def _build(out: Path, log) -> None:
    work = out / "work"
    work.mkdir()
    timings = {}

    t = time.monotonic()
    kpkg = _kernel_package(log)
    kdeb = _download_deb(kpkg, work, log)
    bbdeb = _download_deb("busybox-static", work, log)
    kx = work / "kernel"
    _run(["dpkg-deb", "-x", str(kdeb), str(kx)], log)
    bbx = work / "busybox"
    _run(["dpkg-deb", "-x", str(bbdeb), str(bbx)], log)
    kvers = [p.name for p in (kx / "lib/modules").iterdir()]
    if len(kvers) != 1:
        raise RuntimeError(f"{kdeb}: expected one module tree, got {kvers}")
    kver = kvers[0]
    shutil.copy(kx / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
    shutil.copy(kx / "boot" / f"config-{kver}", out / "kernel-config")
    timings["kernel_seconds"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    rootfs = work / "rootfs"
    pkgs = _lines("packages")
    _run(["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase", "--format=directory",
          "--include=" + ",".join(pkgs),
          "--aptopt=Acquire::Languages \"none\"",
          "--dpkgopt=path-exclude=/usr/share/man/*",
          "--dpkgopt=path-exclude=/usr/share/locale/*",
          "--dpkgopt=path-exclude=/usr/share/doc/*",
          "--dpkgopt=path-include=/usr/share/doc/*/copyright",
          SUITE, str(rootfs), *MIRRORS], log)
    timings["rootfs_seconds"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    shutil.copytree(kx / "lib/modules" / kver, rootfs / "lib/modules" / kver, symlinks=True)
    _run(["sh", str(RECIPE / "configure.sh"), str(rootfs), kver], log)
    versions = subprocess.run(
        ["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
        check=True, capture_output=True, text=True).stdout
    (out / "packages.txt").write_text(versions)
    _run(["truncate", "-s", ROOT_DISK_SIZE, str(out / "base.raw")], log)
    _run(["mkfs.ext4", "-q", "-F", "-L", "gvt-root", "-E", "root_owner=0:0", "-d", str(rootfs),
          str(out / "base.raw")], log)
    timings["disk_seconds"] = round(time.monotonic() - t, 1)

    files = {"init": ((RECIPE / "initramfs-init").read_bytes(), 0o755),
             "bin/busybox": ((bbx / "bin/busybox").read_bytes(), 0o755)}
    for m in INITRAMFS_MODULES:
        found = list((kx / "lib/modules" / kver / "kernel").rglob(f"{m}.ko"))
        if len(found) != 1:
            raise RuntimeError(f"kernel {kver}: module {m}.ko not found (or ambiguous): {found}")
        files[f"modules/{m}.ko"] = (found[0].read_bytes(), 0o644)
    (out / "initrd.img").write_bytes(cpio.newc(files, dirs=["bin", "modules", "dev", "proc",
                                                            "sys", "newroot"]))

    config = (out / "kernel-config").read_text()
    fs = {}
    for opt in ["EROFS_FS", "SQUASHFS", "OVERLAY_FS", "BRIDGE_NETFILTER", "BLK_DEV_LOOP"]:
        fs[opt] = next((ln.split("=", 1)[1] for ln in config.splitlines()
                        if ln.startswith(f"CONFIG_{opt}=")), "n")
    info = {"key": recipe_key(), "kver": kver, "kernel_package": kdeb.name,
            "suite": SUITE, "kernel_config": fs, **timings,
            "rootfs_bytes": int(subprocess.run(["du", "-sb", str(rootfs)], check=True,
                                               capture_output=True, text=True).stdout.split()[0])}
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="build or show the cached guest base image")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--key", action="store_true", help="print the recipe key and exit")
    a = ap.parse_args()
    if a.key:
        print(recipe_key())
    else:
        img = ensure(a.cache)
        print(json.dumps(img.info, indent=2))
