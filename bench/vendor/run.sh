#!/usr/bin/env bash
# Vendoring a set of images and pushing them into a cluster registry: ours against `skopeo copy`
# of the same images, in the same run, alternating, against the same two local registries
# (Debian's docker-registry on loopback: a source, and a target standing in for planet's).
#
#   bench/vendor/run.sh [TOTAL_MB] [IMAGES] [RUNS]      (defaults: 512 MB, 6 images, 3 runs)
#
# pull: `tele build` of a cluster image whose ImageSet lists the images (its "vendored ... in"
#       line: discovery, download, verification; packing the tarball is reported apart) against
#       `skopeo copy docker://... oci:DIR:...` per image into one shared layout.
# push: vendor's push (the code of `gravity install`'s images phase; examples/push.rs) of the
#       built image's registry/ against `skopeo copy oci:... docker://...` per image, each into
#       an empty target registry.
# Needs the release binaries (make release), docker-registry, skopeo, python3, bc.
# Work files go to bench/.work/vendor (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
total_mb=${1:-512}
count=${2:-6}
runs=${3:-3}
bin=target/x86_64-unknown-linux-gnu/release
work=$PWD/bench/.work/vendor
rm -rf "$work"
mkdir -p "$work"

[[ -x $bin/tele && -x $bin/gravity ]] || { echo "build the release binaries first: make release" >&2; exit 1; }
cargo build --release --target x86_64-unknown-linux-gnu -q -p registry --example push
push_bin=$bin/examples/push

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -a pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_registry NAME: starts an empty registry, sets $port.
start_registry() {
    local dir=$work/registry-$1
    rm -rf "$dir"; mkdir -p "$dir"
    port=$(free_port)
    cat > "$dir/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}}
http: {addr: 127.0.0.1:$port}
YAML
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "registry $1 did not start: $(cat "$dir/log")" >&2; exit 1
}
stop_last_registry() { local p=${pids[-1]}; kill "$p"; wait "$p" 2>/dev/null || true; unset 'pids[-1]'; }

echo "generating $count images, $total_mb MB in all (one shared base layer)..." >&2
python3 bench/vendor/generate.py "$work/fixtures" "$total_mb" "$count"
start_registry source; src=127.0.0.1:$port
images=()
for i in $(seq 0 $((count - 1))); do
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/fixtures:app-$i" "docker://$src/acme/app-$i:1.0"
    images+=("$src/acme/app-$i:1.0")
done

app=$work/cluster
mkdir -p "$app"
printf 'apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: bench\n  resourceVersion: 1.0.0\n' > "$app/app.yaml"
{ printf 'apiVersion: cluster.gravitational.io/v1beta1\nkind: ImageSet\nmetadata: {name: bench}\nspec:\n  images:\n'
  for i in "${images[@]}"; do printf '  - image: %s\n' "$i"; done; } > "$app/images.yaml"

now() { date +%s.%N; }
declare -a pull_ours pull_ours_total pull_skopeo push_ours push_skopeo
for r in $(seq "$runs"); do
    # pull
    out=$work/image.tar
    rm -f "$out"
    start=$(now)
    "$bin/tele" build "$app/app.yaml" -o "$out" --gravity "$bin/gravity" --insecure-registry "$src" 2>"$work/tele.log"
    end=$(now)
    t_total=$(echo "$end - $start" | bc -l)
    t=$(sed -n 's/^vendored .* in \([0-9.]*\)\(m\?s\)$/\1 \2/p' "$work/tele.log" | awk '{ if ($2=="ms") print $1/1000; else print $1 }')
    pull_ours+=("$t"); pull_ours_total+=("$t_total")
    printf 'run %d pull  ours   %6.2f s (tele build in all: %.2f s)\n' "$r" "$t" "$t_total"

    rm -rf "$work/skopeo-layout"
    start=$(now)
    for i in "${images[@]}"; do
        skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$i" "oci:$work/skopeo-layout:$i"
    done
    end=$(now)
    t=$(echo "$end - $start" | bc -l); pull_skopeo+=("$t")
    printf 'run %d pull  skopeo %6.2f s\n' "$r" "$t"

    # push, each into an empty registry
    rm -rf "$work/unpacked"; mkdir -p "$work/unpacked"
    tar -xf "$out" -C "$work/unpacked" registry
    start_registry target; dst=127.0.0.1:$port
    start=$(now)
    "$push_bin" "$work/unpacked/registry" "$dst" >"$work/push.log"
    end=$(now)
    stop_last_registry
    t=$(echo "$end - $start" | bc -l); push_ours+=("$t")
    printf 'run %d push  ours   %6.2f s (%s)\n' "$r" "$t" "$(cut -d: -f2- "$work/push.log" | sed 's/^ //')"

    start_registry target; dst=127.0.0.1:$port
    start=$(now)
    for i in "${images[@]}"; do
        skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/skopeo-layout:$i" "docker://$dst/${i#*/}"
    done
    end=$(now)
    stop_last_registry
    t=$(echo "$end - $start" | bc -l); push_skopeo+=("$t")
    printf 'run %d push  skopeo %6.2f s\n' "$r" "$t"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
unique_mb=$(du -sm "$work/unpacked/registry/blobs" | cut -f1)
echo
echo "$count images, $unique_mb MB of distinct blobs, medians of $runs runs:"
printf '  pull  ours (tele vendoring):       %6.2f s   (whole tele build: %.2f s)\n' "$(median "${pull_ours[@]}")" "$(median "${pull_ours_total[@]}")"
printf '  pull  skopeo copy, per image:      %6.2f s\n' "$(median "${pull_skopeo[@]}")"
printf '  push  ours (install images phase): %6.2f s\n' "$(median "${push_ours[@]}")"
printf '  push  skopeo copy, per image:      %6.2f s\n' "$(median "${push_skopeo[@]}")"
