#!/usr/bin/env bash
# Unpacking a large cluster image: `gravity image unpack` against `tar -I 'zstd -T0' -xf`, in the
# same run, on the same input, alternating, page cache dropped before each run when possible.
#
#   bench/unpack/run.sh [SIZE_MB] [RUNS]      (defaults: 1024 MB, 3 runs each)
#
# Needs the release binaries (make release). Work files go to bench/.work/unpack (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${1:-1024}
runs=${2:-3}
bin=target/x86_64-unknown-linux-gnu/release
work=bench/.work/unpack
mkdir -p "$work"
image="$work/bench-$size_mb.tar.zst"

if [[ ! -f $image ]]; then
    echo "generating a ${size_mb} MB image with many files..." >&2
    src="$work/src"
    rm -rf "$src"
    python3 bench/unpack/generate.py "$src" "$size_mb"
    "$bin/tele" build "$src/app.yaml" -o "$image" --gravity "$bin/gravity" -q
fi
files=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['files']))" <(tar --zstd -xOf "$image" index.json))
echo "image: $image ($(du -h "$image" | cut -f1) compressed, $files files)"

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }

declare -a ours ours_sync tars
for i in $(seq "$runs"); do
    for tool in tar ours ours_sync; do
        out="$work/out-$tool"
        rm -rf "$out"
        drop_caches
        start=$(now)
        case $tool in
            tar)
                mkdir -p "$out"
                tar -I 'zstd -T0' -xf "$image" -C "$out" ;;
            ours)
                "$bin/gravity" image unpack --no-sync "$image" "$out" >/dev/null ;;
            ours_sync)
                "$bin/gravity" image unpack "$image" "$out" >/dev/null ;;
        esac
        end=$(now)
        t=$(echo "$end - $start" | bc -l)
        case $tool in
            tar) tars+=("$t") ;;
            ours) ours+=("$t") ;;
            ours_sync) ours_sync+=("$t") ;;
        esac
        printf 'run %d %-10s %6.2f s\n' "$i" "$tool" "$t"
    done
done
rm -rf "$work"/out-*

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t_tar=$(median "${tars[@]}")
t_ours=$(median "${ours[@]}")
t_sync=$(median "${ours_sync[@]}")
echo
printf 'median  GNU tar + zstd -T0:                     %6.2f s\n' "$t_tar"
printf 'median  gravity image unpack (verified):        %6.2f s   ratio tar/ours %.2f\n' "$t_ours" "$(echo "$t_tar / $t_ours" | bc -l)"
printf 'median  gravity image unpack (verified + sync): %6.2f s\n' "$t_sync"
echo "(gravity verifies every file's SHA-256 against the index; tar checks nothing)"
