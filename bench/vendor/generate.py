"""Writes an OCI image layout of IMAGES images for the vendoring benchmark: every image has one
shared base layer and two layers of its own, random bytes (already-compressed content, like
real layers), uncompressed tar media type. Names are `acme/app-<i>:1.0`.

    generate.py DIR TOTAL_MB [IMAGES]
"""

import hashlib
import io
import json
import os
import sys
import tarfile

root, total_mb = sys.argv[1], int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 6
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')


def put(data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer(name: str, size: int) -> tuple[dict, str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 946684800
        t.addfile(info, io.BytesIO(os.urandom(size)))
    data = buf.getvalue()
    d = put(data)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", **d}, d["digest"]


# A quarter of the bytes in the shared base, the rest spread over the images' own layers.
base_size = total_mb * (1 << 20) // 4
own_size = (total_mb * (1 << 20) - base_size) // (count * 2)
base, base_diff = layer("base/lib.so", base_size)
index = []
for i in range(count):
    layers = [base]
    diffs = [base_diff]
    for j in range(2):
        l, d = layer(f"app{i}/part{j}.bin", own_size)
        layers.append(l)
        diffs.append(d)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/app"]},
                         "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": layers,
    }).encode()
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
                  "annotations": {"org.opencontainers.image.ref.name": f"app-{i}"}})
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": index}, f)
