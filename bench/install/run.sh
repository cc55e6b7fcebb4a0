#!/usr/bin/env bash
# The whole single-node install, tarball to a Ready Kubernetes node running its first pod
# (CoreDNS: the install ends when it is ready), timed end to end with the per-phase breakdown
# the journal records. For reference, the same run times what any tarball-based installer must
# do at least: `tar -xf` of the same cluster image. k3s (about 30 s to a Ready node, its own
# figure) cannot be fetched on these machines. After the last run, planet's idle memory with
# the whole control plane: the sum of RSS (and PSS) of every process inside planet.
#
#   sudo bench/install/run.sh [RUNS]      (default 3; needs make release and free ports 2379-2381/5000/6443/10250)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
bin=$PWD/target/x86_64-unknown-linux-gnu/release
work=$PWD/bench/.work/install
mkdir -p "$work"
planet=$(planet-image/build.sh | tail -1)
image=$work/example.tar
examples/single-node.sh "$image" --planet "$planet" --gravity "$bin/gravity" -q
echo "cluster image: $(du -h "$image" | cut -f1)"

state=$work/state
cleanup() { "$bin/gravity" uninstall --yes --state-dir "$state" >/dev/null 2>&1 || true; rm -rf "$work/app-data" "$work/tar-out"; }
trap cleanup EXIT

for i in $(seq "$runs"); do
    cleanup
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    mkdir -p "$work/tar-out"
    start=$(date +%s.%N)
    tar -xf "$image" -C "$work/tar-out"
    end=$(date +%s.%N)
    echo "tar $(echo "$end - $start" | bc -l)" >> "$work/times"
    rm -rf "$work/tar-out"

    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    start=$(date +%s.%N)
    "$bin/gravity" install --image "$image" --state-dir "$state" --service-uid 1001 \
        --mount "app-data:$work/app-data" --ignore-preflight-errors=all --yes 2>/dev/null
    end=$(date +%s.%N)
    echo "install $(echo "$end - $start" | bc -l)" >> "$work/times"
    "$bin/gravity" plan --output json --state-dir "$state" \
        | python3 bench/times.py phases "phase" \
        >> "$work/times"
    printf 'run %d: install %.2f s\n' "$i" "$(echo "$end - $start" | bc -l)"
done

# Idle memory: a minute after the install, every process in planet's PID namespace.
sleep 60
init=$("$bin/gravity" planet status --output json --state-dir "$state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["initPid"])')
python3 - "$init" <<'PY'
import os, sys
init = sys.argv[1]
ns = os.readlink(f"/proc/{init}/ns/pid")
rss = pss = anon = 0
top = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") != ns:
            continue
        fields = dict(l.split(":", 1) for l in open(f"/proc/{pid}/smaps_rollup") if ":" in l and not l.startswith(" "))
        r = int(fields["Rss"].split()[0]); p = int(fields["Pss"].split()[0])
        a = int(fields["Anonymous"].split()[0])
        # Not comm: it keeps 15 characters ("kube-control-pl").
        name = os.path.basename(open(f"/proc/{pid}/cmdline").read().split("\0")[0]) or open(f"/proc/{pid}/comm").read().strip()
    except (OSError, KeyError, ValueError):
        continue
    rss += r; pss += p; anon += a; top.append((r, name))
print(f"planet idle, a minute after the install: RSS sum {rss / 1024:.0f} MiB (goal: 700), PSS sum {pss / 1024:.0f} MiB")
# kube-control-plane and kube-node share one multi-call binary: its pages count once per process in RSS.
print(f"  of the RSS: anonymous {anon / 1024:.0f} MiB, file-backed (binaries, mostly shared) {(rss - anon) / 1024:.0f} MiB")
print("  (pods run in PID namespaces of their own and are not counted)")
for r, name in sorted(top, reverse=True)[:8]:
    print(f"  {name:<24}{r / 1024:>6.0f} MiB")
PY

PYTHONPATH=bench python3 - "$work/times" <<'PY'
import sys
from times import medians
runs, med = medians(sys.argv[1])
print()
print(f"{'median of ' + str(runs['install']) + ' runs':<40}{'seconds':>8}")
print(f"{'tar -xf of the cluster image (reference)':<40}{med['tar']:>8.2f}")
print(f"{'gravity install, tarball to pod Ready':<40}{med['install']:>8.2f}   (goal: 30 s; k3s: ~30 s to a Ready node)")
for k, v in med.items():
    if k.startswith("phase:"):
        print(f"  {k[6:]:<38}{v:>8.2f}")
print(f"  {'(before the plan: unpack and verify)':<38}{med['install'] - sum(v for k, v in med.items() if k.startswith('phase:')):>8.2f}")
PY
rm -f "$work/times"
