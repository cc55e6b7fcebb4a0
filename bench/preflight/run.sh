#!/usr/bin/env bash
# The preflight rate checks side by side with the reference tools, in the same run, alternating:
#   disk:    our O_DIRECT write-rate check vs `fio --direct=1 --rw=write --bs=1M` in the same
#            directory: on this machine's root filesystem, and on xfs and ext4 loop volumes
#            (loop devices with direct I/O, so that they measure the disk and not the page cache),
#            and on an xfs loop volume throttled to 50 and 150 MB/s by the block I/O controller
#            (a disk of known speed, as tc gives a link of known speed);
#   network: our peer transfer-rate check vs iperf3 between two network namespaces joined by a veth
#            pair shaped with tc tbf at 20, 50 and 100 MB/s, each direction on its own;
#   suite:   the whole `gravity check` of the sample manifest without and with rate tests.
#
#   bench/preflight/run.sh [disk|network|suite|all] [RUNS]     (defaults: all, 3 runs)
#
# Needs root, the packages of bench/preflight/setup.sh, and a gravity binary (make release;
# GRAVITY_BIN overrides). Work files go to bench/.work/preflight (git-ignored). Medians are shown.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
runs=${2:-3}
bin=${GRAVITY_BIN:-}
if [[ -z $bin ]]; then
    for b in target/x86_64-unknown-linux-gnu/release/gravity target/release/gravity target/debug/gravity; do
        [[ -x $b ]] && { bin=$b; break; }
    done
fi
[[ -x ${bin:-} ]] || { echo "no gravity binary: run make release or set GRAVITY_BIN" >&2; exit 1; }
bin=$(realpath "$bin")
work=$(realpath -m bench/.work/preflight)
mkdir -p "$work"
state="$work/state"
mkdir -p "$state"
tag=$$

declare -a cleanup_cmds=()
cleanup() {
    local i
    for ((i = ${#cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${cleanup_cmds[i]}" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f %%", (a-b)/b*100}'; }
now_ms() { date +%s%3N; }

manifest() { # $1: requirements YAML body (indented 6)
    cat <<YAML
apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: bench
  resourceVersion: 1.0.0
nodeProfiles:
  - name: node
    requirements:
$1
YAML
}

# ----------------------------------------------------------------------------------------- disk
ours_disk() { # dir [cgroup] -> "MB/s seconds"
    local m="$work/disk.yaml" run=()
    [[ -n ${2:-} ]] && run=(in_cg "$2")
    manifest "      volumes:
        - path: $1
          minTransferRate: \"1MB/s\"" > "$m"
    "${run[@]}" "$bin" --state-dir "$state" check --manifest "$m" --output json 2>/dev/null |
        jq -r '.checks[] | select(.id | endswith(":rate")) | "\(.measured | split(" ")[0]) \(.duration_ms / 1000)"'
}

fio_disk() { # dir [cgroup] -> "MB/s seconds"
    local run=()
    [[ -n ${2:-} ]] && run=(in_cg "$2")
    "${run[@]}" fio --name=bench --directory="$1" --direct=1 --rw=write --bs=1M --size=256M \
        --output-format=json 2>/dev/null |
        jq -r '.jobs[0].write | "\(.bw_bytes / 1e6) \(.runtime / 1000)"'
    rm -f "$1"/bench.*
}

vol_dir="" vol_dev="" nvol=0
loop_volume() { # fs -> sets vol_dir (the mount) and vol_dev; not in a subshell, so that the
    # cleanup commands it registers survive
    local fs=$1 img dir dev
    nvol=$((nvol + 1))
    img="$work/$fs-$tag-$nvol.img" dir="$work/$fs-$tag-$nvol"
    rm -f "$img"
    truncate -s 2G "$img"
    cleanup_cmds+=("rm -f $img")
    "mkfs.$fs" -q "$img"
    dev=$(losetup --find --show --direct-io=on "$img")
    cleanup_cmds+=("losetup -d $dev")
    mkdir -p "$dir"
    cleanup_cmds+=("rmdir $dir")
    mount "$dev" "$dir"
    cleanup_cmds+=("umount $dir")
    vol_dir=$dir vol_dev=$dev
}

# A disk of known speed, as tc gives a link of known speed: the block I/O controller throttles
# writes to the loop device for the processes in a cgroup (v1 blkio, or v2 io.max).
throttle_cg=""
throttle() { # device bytes/s -> sets throttle_cg (a cgroup directory), or fails
    local mm cg
    mm=$(lsblk -dno MAJ:MIN "$1" | tr -d ' ')
    if [[ -d /sys/fs/cgroup/blkio ]]; then
        cg=/sys/fs/cgroup/blkio/gravity-bench-$tag
        mkdir -p "$cg"
        echo "$mm $2" > "$cg/blkio.throttle.write_bps_device"
    elif [[ -f /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw io /sys/fs/cgroup/cgroup.controllers; then
        echo +io > /sys/fs/cgroup/cgroup.subtree_control
        cg=/sys/fs/cgroup/gravity-bench-$tag
        mkdir -p "$cg"
        echo "$mm wbps=$2" > "$cg/io.max"
    else
        return 1
    fi
    cleanup_cmds+=("rmdir $cg")
    throttle_cg=$cg
}

in_cg() { # cgroup command... : runs the command inside the cgroup
    local cg=$1
    shift
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

bench_disk() {
    local root_dir="$work/rootfs-$tag"
    mkdir -p "$root_dir"
    cleanup_cmds+=("rm -rf $root_dir")
    echo "== disk write rate: ours (O_DIRECT, 1 MiB, <=256 MiB or 1 s after a warm-up) vs fio --direct=1 --rw=write --bs=1M --size=256M"
    printf '%-34s %12s %12s %10s %10s %10s\n' target "ours MB/s" "fio MB/s" diff "ours s" "fio s"
    local target dir fs cg
    for target in "root fs ($(stat -f -c %T "$work"))" xfs ext4 "xfs@50" "xfs@150"; do
        cg=""
        case $target in
            xfs | ext4) loop_volume "$target"; dir=$vol_dir; fs="loop $target" ;;
            xfs@*)
                loop_volume xfs
                dir=$vol_dir
                if ! throttle "$vol_dev" "${target#xfs@}000000"; then
                    echo "(no block I/O controller: skipping the throttled volumes)"
                    continue
                fi
                cg=$throttle_cg
                fs="loop xfs throttled ${target#xfs@} MB/s"
                ;;
            *) dir=$root_dir; fs=$target ;;
        esac
        local -a o=() f=() ot=() ft=()
        for _ in $(seq "$runs"); do
            read -r r t < <(ours_disk "$dir" "$cg"); o+=("$r"); ot+=("$t")
            read -r r t < <(fio_disk "$dir" "$cg"); f+=("$r"); ft+=("$t")
        done
        local om fm
        om=$(median "${o[@]}"); fm=$(median "${f[@]}")
        printf '%-34s %12.1f %12.1f %10s %10.2f %10.2f\n' "$fs" "$om" "$fm" "$(pct "$om" "$fm")" \
            "$(median "${ot[@]}")" "$(median "${ft[@]}")"
        echo "    runs: ours ${o[*]} | fio ${f[*]}"
    done
}

# -------------------------------------------------------------------------------------- network
bench_network() {
    echo "== network goodput between two namespaces, veth shaped with tc tbf in both directions: ours (1 s after 0.25 s warm-up, per direction) vs iperf3 -t 6 -O 1 (receiver side)"
    printf '%-10s %-9s %12s %12s %10s %14s\n' link direction "ours MB/s" "iperf3 MB/s" diff "ours s (both)"
    local a="gvb-a-$tag" b="gvb-b-$tag"
    ip netns add "$a"; cleanup_cmds+=("ip netns del $a")
    ip netns add "$b"; cleanup_cmds+=("ip netns del $b")
    ip link add "gvba$tag" type veth peer name "gvbb$tag"
    ip link set "gvba$tag" netns "$a"; ip link set "gvbb$tag" netns "$b"
    ip -n "$a" addr add 10.250.0.1/24 dev "gvba$tag"; ip -n "$b" addr add 10.250.0.2/24 dev "gvbb$tag"
    ip -n "$a" link set "gvba$tag" up; ip -n "$b" link set "gvbb$tag" up
    ip -n "$a" link set lo up; ip -n "$b" link set lo up
    ip netns exec "$a" "$bin" --state-dir "$state" check --serve 10.250.0.1:4242 2>/dev/null &
    local srv=$!
    cleanup_cmds+=("kill $srv")
    ip netns exec "$a" iperf3 -s -D -p 5201 --pidfile "$work/iperf3-$tag.pid"
    cleanup_cmds+=("kill \$(cat $work/iperf3-$tag.pid)")
    sleep 0.5
    local m="$work/net.yaml"
    manifest "      network:
        minTransferRate: \"1MB/s\"" > "$m"
    local rate
    for rate in 20 50 100; do
        local bytes=$((rate * 1000000)) burst
        burst=$((bytes / 250 > 32768 ? bytes / 250 : 32768))
        for side in "$a gvba$tag" "$b gvbb$tag"; do
            set -- $side
            ip netns exec "$1" tc qdisc replace dev "$2" root tbf rate "$((bytes * 8))bit" burst "$burst" latency 50ms
        done
        local -a os=() orc=() is=() ir=() ot=()
        for _ in $(seq "$runs"); do
            local j
            j=$(ip netns exec "$b" "$bin" --state-dir "$state" check --manifest "$m" --peers 10.250.0.1:4242 --output json 2>/dev/null || true)
            os+=("$(jq -r '.checks[] | select(.id | endswith(":rate:send")) | .measured | split(" ")[0]' <<<"$j")")
            orc+=("$(jq -r '.checks[] | select(.id | endswith(":rate:receive")) | .measured | split(" ")[0]' <<<"$j")")
            ot+=("$(jq -r '[.checks[] | select(.id | test(":rate:")) | .duration_ms] | add / 1000' <<<"$j")")
            is+=("$(ip netns exec "$b" iperf3 -c 10.250.0.1 -t 6 -O 1 -J | jq -r '.end.sum_received.bits_per_second / 8e6')")
            ir+=("$(ip netns exec "$b" iperf3 -c 10.250.0.1 -t 6 -O 1 -R -J | jq -r '.end.sum_received.bits_per_second / 8e6')")
        done
        local m1 m2 i1 i2 t
        m1=$(median "${os[@]}"); m2=$(median "${orc[@]}"); i1=$(median "${is[@]}"); i2=$(median "${ir[@]}"); t=$(median "${ot[@]}")
        printf '%-10s %-9s %12.1f %12.1f %10s %14.2f\n' "$rate MB/s" send "$m1" "$i1" "$(pct "$m1" "$i1")" "$t"
        printf '%-10s %-9s %12.1f %12.1f %10s\n' "" receive "$m2" "$i2" "$(pct "$m2" "$i2")"
        echo "    runs: send ours ${os[*]} | iperf3 ${is[*]}; receive ours ${orc[*]} | iperf3 ${ir[*]}"
    done
}

# ---------------------------------------------------------------------------------------- suite
bench_suite() {
    local sample=cluster-image/tests/fixtures/sample-cluster/app.yaml
    echo "== whole suite, sample manifest (profile db: 2 custom scripts, 4 volumes, 7 ports, kernel basics), wall time"
    local -a quick=() full=()
    for _ in $(seq "$runs"); do
        local t0
        t0=$(now_ms); "$bin" --state-dir "$state" check --manifest "$sample" --skip-rate-tests >/dev/null 2>&1 || true
        quick+=($(( $(now_ms) - t0 )))
        t0=$(now_ms); "$bin" --state-dir "$state" check --manifest "$sample" >/dev/null 2>&1 || true
        full+=($(( $(now_ms) - t0 )))
    done
    printf '%-46s %8s ms   (runs: %s)\n' "without rate tests (--skip-rate-tests)" "$(median "${quick[@]}")" "${quick[*]}"
    printf '%-46s %8s ms   (runs: %s)\n' "with disk rate and fdatasync tests" "$(median "${full[@]}")" "${full[*]}"
}

echo "gravity: $bin; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $runs runs each"
case $what in
    disk) bench_disk ;;
    network) bench_network ;;
    suite) bench_suite ;;
    all) bench_suite; bench_disk; bench_network ;;
    *) echo "usage: $0 [disk|network|suite|all] [RUNS]" >&2; exit 2 ;;
esac
