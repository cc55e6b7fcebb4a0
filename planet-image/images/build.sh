#!/bin/bash
# Build (or find in the cache) the cluster's system container images, written
# as one OCI image layout: the pod sandbox `pause` (pause.c, gcc, static) and
# CoreDNS (coredns/, from its Go module, static).
#
#   planet-image/images/build.sh [--cache-dir DIR]
#
# The LAST line of stdout is the absolute path of the layout directory (with
# versions.json beside index.json). Progress goes to stderr. See README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly oci_lib=$here/../../scripts/lib/oci-layout.sh
# shellcheck source=../../scripts/lib/oci-layout.sh
. "$oci_lib"
export SOURCE_DATE_EPOCH=1700000000
# The names the images have in the cluster's registry (the registry part is
# dropped on push: `pause:3.10`, `coredns:<version>`).
readonly pause_version=3.10
readonly registry=registry.local:5000

log() { echo "images: $*" >&2; }
die() {
	echo "images: ERROR: $*" >&2
	exit 1
}

cache_root=${GRAVITY_IMAGES_CACHE:-/var/cache/gravity/images}
while (($#)); do
	case $1 in
	--cache-dir) cache_root=${2:?--cache-dir needs a directory}; shift 2 ;;
	--cache-dir=*) cache_root=${1#*=}; shift ;;
	-h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

export PATH=/usr/local/go/bin:$PATH
for tool in go gcc jq gzip tar sha256sum flock; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/setup-host installs it; Go >= 1.26 in /usr/local/go)"
done
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
unset GOOS GOARCH GOAMD64 GOEXPERIMENT GODEBUG

# --- cache key: the recipe files, the Go toolchain and gcc --------------------
manifest=$(
	echo "go $(go env GOVERSION) $(go env GOOS GOARCH GOAMD64 | paste -sd/)"
	echo "gcc $(gcc -dumpfullversion) $(gcc -dumpmachine)"
	cd "$here" && find . -type f ! -name README.md | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
	echo "oci-layout.sh $(sha256sum <"$oci_lib" | cut -d' ' -f1)"
)
key=$(sha256sum <<<"$manifest" | cut -d' ' -f1)
readonly manifest key

existing=$cache_root
until [[ -d $existing ]]; do existing=$(dirname "$existing"); done
if top=$(git -C "$existing" rev-parse --show-toplevel 2>/dev/null); then
	die "cache directory $cache_root is inside the git checkout $top; give one outside (--cache-dir or GRAVITY_IMAGES_CACHE)"
fi
mkdir -p "$cache_root"
cache=$(cd "$cache_root" && pwd)
result=$cache/$key
if [[ -f $result/versions.json ]]; then
	log "cached: key ${key:0:12} ($result)"
	echo "$result"
	exit 0
fi
log "no cache entry for key ${key:0:12}: building (recipe, Go or gcc changed, or first build)"

exec 9>"$cache/.lock-$key"
flock 9
if [[ -f $result/versions.json ]]; then
	echo "$result"
	exit 0
fi
build=$cache/.build-$key.$$
trap 'rm -rf --one-file-system -- "$build"' EXIT
mkdir -p "$build/tmp"
export GOTMPDIR=$build/tmp
out=$build/out
started=$(date +%s)

# --- the binaries ---------------------------------------------------------------
mkdir -p "$build/pause" "$build/coredns"
gcc -static -Os -s -Wall -Wextra -Werror -DPAUSE_VERSION="\"$pause_version\"" \
	-o "$build/pause/pause" "$here/pause.c"
coredns_version=$(go -C "$here/coredns" list -m -f '{{.Version}}' github.com/coredns/coredns)
log "CoreDNS $coredns_version: fetching modules and compiling (a few minutes the first time)"
go -C "$here/coredns" build -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=go-module" \
	-o "$build/coredns/coredns" .
"$build/coredns/coredns" -version | grep -q "CoreDNS-${coredns_version#v}" ||
	die "the CoreDNS binary does not report version $coredns_version"
"$build/pause/pause" -v | grep -q "$pause_version" || die "pause does not report version $pause_version"

# --- the layout -------------------------------------------------------------------
oci_layout_begin "$out"
oci_layout_image "$registry/pause:$pause_version" "$build/pause" \
	'{"Entrypoint": ["/pause"], "User": "65535:65535"}'
oci_layout_image "$registry/coredns:${coredns_version#v}" "$build/coredns" \
	'{"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}}}'
oci_layout_end
jq -n --arg p "$pause_version" --arg c "${coredns_version#v}" --arg k "$key" \
	'{pause: $p, coredns: $c, key: $k}' >"$out/versions.json"
chmod 0755 "$out"
mv -T "$out" "$result"
log "built key ${key:0:12} in $(($(date +%s) - started)) s: $result"
echo "$result"
