"""Writes a manifest directory whose resources look like a real cluster image: one large
filesystem image and a few hundred MB of container layers, both already compressed (so random
bytes model them), and many small, compressible files (charts, configs, docs)."""

import os
import random
import sys

root, size_mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, "app.yaml"), "w") as f:
    f.write("apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: bench\n  resourceVersion: 1.0.0\n")

words = [b"apiVersion", b"kind", b"metadata", b"spec", b"containers", b"image", b"registry.local:5000",
         b"replicas", b"selector", b"matchLabels", b"volumeMounts", b"- name:", b"ports", b"env", b"value"]

def write_random(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n

def write_text(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = bytearray()
    while len(out) < size:
        out += b"  " * rng.randint(0, 4) + rng.choice(words) + b": " + str(rng.getrandbits(24)).encode() + b"\n"
    with open(path, "wb") as f:
        f.write(out[:size])

budget = size_mb << 20
write_random(os.path.join(root, "planet", "rootfs.img"), budget * 30 // 100)
layers, n = budget * 40 // 100, 0
while layers > 0:
    s = min(layers, rng.randint(1 << 20, 24 << 20))
    write_random(os.path.join(root, "layers", f"layer-{n:04d}.tar.gz"), s)
    layers -= s
    n += 1
small, i = budget - budget * 30 // 100 - budget * 40 // 100, 0
while small > 0:
    s = min(small, rng.choice([512, 2048, 8192, 32768, 131072]))
    write_text(os.path.join(root, "charts", f"d{i % 97:02d}", f"e{i % 13}", f"file-{i:06d}.yaml"), s)
    small -= s
    i += 1
print(f"{n} layers, {i} small files", file=sys.stderr)
