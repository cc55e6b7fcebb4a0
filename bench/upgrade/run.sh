#!/usr/bin/env bash
# A single-node upgrade, 0.1.0 to 0.2.0 of the example: a new planet image (the same rootfs
# under another version, so planet switches images), another kubelet argument, and the update
# hook (`helm upgrade` to a new web tag). Timed end to end with the per-phase breakdown the
# journal records, while a client asks the node's apiserver for /readyz four times a second:
# the longest time it did not answer is the node's API outage. For reference, in the same
# run: the floor of any upgrade that restarts the node's runtime, `gravity planet stop` and
# `start` of the same planet until its node is Ready again. Other installers' upgrades (k0s
# autopilot, kubeadm) cannot be fetched on these machines. Three control plane nodes, where
# the API must not go down at all, are measured by tests/tests/upgrade_cluster.rs (it prints
# each apiserver's outage and the longest time none answered).
#
#   sudo bench/upgrade/run.sh [RUNS]      (default 2; needs make release and free ports 2379-2381/5000/6443/10250)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-2}
bin=$PWD/target/x86_64-unknown-linux-gnu/release
work=$PWD/bench/.work/upgrade
rm -rf "$work"
mkdir -p "$work"
planet=$(planet-image/build.sh | tail -1)
examples/single-node.sh "$work/v1.tar" --planet "$planet" --gravity "$bin/gravity" -q

# 0.2.0: planet's image restamped, kubelet's arguments and the web tag changed, an update hook.
examples/single-node-next.sh "$work/v2.tar" 0.2.0 "$planet" --gravity "$bin/gravity" -q
mkdir -p "$work/v2-image"
tar -xf "$work/v2.tar" -C "$work/v2-image"

state=$work/state
g() { "$bin/gravity" --state-dir "$state" "$@"; }
cleanup() { g uninstall --yes >/dev/null 2>&1 || true; rm -rf "$work/app-data"; }
trap cleanup EXIT

# Probes until $work/stop exists: one line per probe, "SECONDS 1" answered or "SECONDS 0".
watch_api() {
    while [ ! -e "$work/stop" ]; do
        local at code
        at=$(date +%s.%N)
        code=$(curl -sk --max-time 1 -o /dev/null -w '%{http_code}' https://127.0.0.1:6443/readyz || true)
        [ "$code" = 200 ] && echo "$at 1" || echo "$at 0"
        sleep 0.25
    done > "$work/probes"
}
outage() {
    python3 - "$work/probes" <<'PY'
import sys
longest, since = 0.0, None
rows = [l.split() for l in open(sys.argv[1])]
for at, up in rows:
    at = float(at)
    if up == "0" and since is None:
        since = at
    elif up == "1" and since is not None:
        longest, since = max(longest, at - since), None
if since is not None:
    longest = max(longest, float(rows[-1][0]) - since)
print(f"{longest:.2f}")
PY
}
ready() { g kubectl get node -o 'jsonpath={.items[0].status.conditions[?(@.type=="Ready")].status}' 2>/dev/null; }

for i in $(seq "$runs"); do
    cleanup
    g install --image "$work/v1.tar" --service-uid 1001 --mount "app-data:$work/app-data" \
        --ignore-preflight-errors=all --yes >/dev/null 2>&1

    # The reference: planet restarted in place, until the node is Ready again.
    rm -f "$work/stop"; watch_api & watcher=$!
    start=$(date +%s.%N)
    g planet stop >/dev/null
    g planet start >/dev/null 2>&1
    # Ready as its restarted kubelet reports it (a status from before the stop does not count).
    until [ "$(ready)" = True ] && g status --output json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["healthy"] else 1)'; do sleep 0.5; done
    end=$(date +%s.%N)
    touch "$work/stop"; wait "$watcher"
    echo "restart $(echo "$end - $start" | bc -l)" >> "$work/times"
    echo "restart-outage $(outage)" >> "$work/times"

    rm -f "$work/stop"; watch_api & watcher=$!
    start=$(date +%s.%N)
    (cd "$work/v2-image" && ./upgrade --yes --state-dir "$state" >/dev/null 2>&1)
    end=$(date +%s.%N)
    touch "$work/stop"; wait "$watcher"
    echo "upgrade $(echo "$end - $start" | bc -l)" >> "$work/times"
    echo "upgrade-outage $(outage)" >> "$work/times"
    g plan --output json \
        | python3 bench/times.py phases "phase" \
        >> "$work/times"
    printf 'run %d: planet restart %.2f s, upgrade %.2f s\n' "$i" \
        "$(grep '^restart ' "$work/times" | tail -1 | cut -d' ' -f2)" "$(echo "$end - $start" | bc -l)"
done

PYTHONPATH=bench python3 - "$work/times" <<'PY'
import sys
from times import medians
runs, med = medians(sys.argv[1])
print()
print(f"{'median of ' + str(runs['upgrade']) + ' runs':<44}{'seconds':>8}")
print(f"{'planet stop + start to node Ready (reference)':<44}{med['restart']:>8.2f}")
print(f"{'  its API outage':<44}{med['restart-outage']:>8.2f}")
print(f"{'gravity upgrade, one node, end to end':<44}{med['upgrade']:>8.2f}   (goal: 60 s per node)")
print(f"{'  its API outage':<44}{med['upgrade-outage']:>8.2f}   (goal: 20 s on one node)")
for k, v in med.items():
    if k.startswith("phase:"):
        print(f"  {k[6:]:<42}{v:>8.2f}")
PY
rm -f "$work/times"
