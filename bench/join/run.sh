#!/usr/bin/env bash
# Join time per node: on a second "host" (a network namespace linked to the first by a veth
# pair), `gravity join` with the command the first node prints, from nothing to a Ready node:
# the image fetched over the link and verified, the preflight with the cross-node checks, the
# credentials, planet started, the node Ready. Both kinds of node: a control plane node (the
# second node's default: an etcd member added as a learner and promoted, an apiserver of its
# own) and a worker (`--role=worker`, the example's profile that pins it); each joins, is
# timed, and leaves. Per phase from the journal.
# For reference, in the same run: the floor of any join that ships the image, a plain copy of
# the same cluster image's bytes over the same link (python's http.server and urllib). kubeadm
# and k3s joins cannot be fetched on these machines.
#
#   sudo bench/join/run.sh [RUNS]      (default 3; needs make release)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
bin=$PWD/target/x86_64-unknown-linux-gnu/release
work=$PWD/bench/.work/join
rm -rf "$work"
mkdir -p "$work"
planet=$(planet-image/build.sh | tail -1)
image=$work/example.tar
examples/single-node.sh "$image" --planet "$planet" --gravity "$bin/gravity" -q
echo "cluster image: $(du -h "$image" | cut -f1)"

first=gbench-first second=gbench-second
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
cleanup() {
    in_ns "$second" "$bin/gravity" uninstall --yes --state-dir "$work/second" >/dev/null 2>&1 || true
    in_ns "$first" "$bin/gravity" uninstall --yes --state-dir "$work/first" >/dev/null 2>&1 || true
    ip netns del "$first" 2>/dev/null || true
    ip netns del "$second" 2>/dev/null || true
    rm -rf "$work/first" "$work/second" "$work/app-data-"*
}
trap cleanup EXIT
cleanup
ip netns add "$first"
ip netns add "$second"
ip link add gbench-a type veth peer name gbench-b
ip link set gbench-a netns "$first"
ip link set gbench-b netns "$second"
in_ns "$first" sh -c 'ip link set lo up; ip addr add 10.231.0.1/24 dev gbench-a; ip link set gbench-a up; sysctl -qw net.ipv4.ip_forward=1'
in_ns "$second" sh -c 'ip link set lo up; ip addr add 10.231.0.2/24 dev gbench-b; ip link set gbench-b up; sysctl -qw net.ipv4.ip_forward=1'

ignore=--ignore-preflight-errors=sysctl:net.ipv4.ip_forward,sysctl:net.bridge.bridge-nf-call-iptables
in_ns "$first" "$bin/gravity" install --image "$image" --state-dir "$work/first" --service-uid 1001 \
    --advertise-addr 10.231.0.1 --mount "app-data:$work/app-data-first" "$ignore" --yes 2>/dev/null
command=$(in_ns "$first" "$bin/gravity" status --output json --state-dir "$work/first" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["join"]["command"])')
read -r -a join <<<"$command"

# The reference: the image's bytes over the same link.
port=18080
in_ns "$first" python3 -m http.server "$port" --bind 10.231.0.1 --directory "$work" >/dev/null 2>&1 &
server=$!
sleep 1

for i in $(seq "$runs"); do
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    start=$(date +%s.%N)
    in_ns "$second" python3 -c "import shutil, urllib.request as u; shutil.copyfileobj(u.urlopen('http://10.231.0.1:$port/example.tar'), open('$work/copy.tar', 'wb'))"
    end=$(date +%s.%N)
    echo "copy $(echo "$end - $start" | bc -l)" >> "$work/times"
    rm -f "$work/copy.tar"

    for kind in control-plane worker; do
        role=()
        [ "$kind" = worker ] && role=(--role=worker)
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        start=$(date +%s.%N)
        in_ns "$second" "$bin/gravity" --state-dir "$work/second" "${join[@]:1}" --node-name=second \
            --mount "app-data:$work/app-data-second" "$ignore" "${role[@]}" 2>/dev/null
        end=$(date +%s.%N)
        echo "$kind $(echo "$end - $start" | bc -l)" >> "$work/times"
        in_ns "$second" "$bin/gravity" plan --output json --state-dir "$work/second" \
            | python3 bench/times.py phases "$kind" \
            >> "$work/times"
        printf 'run %d: %s join %.2f s\n' "$i" "$kind" "$(echo "$end - $start" | bc -l)"
        in_ns "$second" "$bin/gravity" uninstall --yes --state-dir "$work/second" >/dev/null 2>&1
    done
done
kill "$server"

PYTHONPATH=bench python3 - "$work/times" <<'PY'
import sys
from times import medians
runs, med = medians(sys.argv[1])
print()
print(f"{'median of ' + str(runs['copy']) + ' runs':<44}{'seconds':>8}")
print(f"{'copy of the cluster image over the link (ref.)':<44}{med['copy']:>8.2f}")
for kind in ("control-plane", "worker"):
    print(f"{'gravity join, nothing to a Ready ' + kind:<44}{med[kind]:>8.2f}   (goal: 30 s)")
    for k, v in med.items():
        if k.startswith(kind + ":"):
            print(f"  {k[len(kind) + 1:]:<42}{v:>8.2f}")
PY
rm -f "$work/times"
